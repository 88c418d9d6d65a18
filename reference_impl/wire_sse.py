"""The SSE wire layer: guard items in, the contract's event stream out.

Every stream is `start`, then `delta`s, then exactly one terminal event, `end` or `error`, and
then it closes. Every event has an id, counting up from 1, so a client can tell it missed one.
An error after the first token cannot change the HTTP status any more (200 was sent), so the
`error` event's problem object carries the status the error would have had. Keep-alive
`: ping` comments come from sse-starlette's ping task, written by our encoder (`PingComment`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse
from starlette.types import Message, Receive, Scope, Send

from . import sse
from .errors import GatewayError, problem_from, problem_response
from .guard import Delta, Finished, end_data
from .request_id import new_request_id

# How long stopping a model and settling a stream may take before it is given up.
CLOSE_TIMEOUT_SECONDS = 5.0


async def sse_body(
    first: Delta | Finished,
    rest: AsyncIterator[Delta | Finished],
    start_data: dict[str, Any],
    request_id: str,
) -> AsyncIterator[bytes]:
    """Encode one stream: `start`, the guard's items from `first` on, then one terminal event.

    `rest` raises GatewayError when the stream fails; that becomes the terminal `error` event.
    """
    # BEGIN SOLUTION lab03: send start, then deltas, then exactly one terminal event, ids from 1
    event_id = 1
    yield sse.encode_json_event("start", start_data, id=event_id)
    item = first
    try:
        while isinstance(item, Delta):
            event_id += 1
            yield sse.encode_delta_event(item.index, item.text, event_id)
            item = await anext(rest)
        yield sse.encode_json_event("end", end_data(item), id=event_id + 1)
    except GatewayError as error:
        yield sse.encode_json_event("error", problem_from(error, request_id), id=event_id + 1)
    # END SOLUTION


class PingComment(ServerSentEvent):
    """sse-starlette's keep-alive, written by our encoder: a comment line and no blank line."""

    def encode(self) -> bytes:
        return sse.encode_comment("ping")


class SendWatchdog:
    """Ends a stream whose client stopped reading: one send blocked for `limit` seconds.

    sse-starlette can time every send itself, but that arms and cancels a timer per event, which
    costs more than the rest of a token's work. Here a send only notes when it started, and one
    timer looks now and then, so a stuck client is still dropped within about `limit` seconds.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.loop = asyncio.get_running_loop()
        self.sending_since: float | None = None
        self.sender: asyncio.Task | None = None
        self.fired = False  # whether it dropped the stream
        self.handle = self.loop.call_later(limit, self.check)

    def check(self) -> None:
        now, since = self.loop.time(), self.sending_since
        if since is not None and now - since >= self.limit and self.sender is not None:
            self.fired = True
            self.sender.cancel()  # the client has not read for `limit` s: drop the stream
            return
        wait = self.limit if since is None else since + self.limit - now
        self.handle = self.loop.call_later(max(wait, 0.001), self.check)

    def stop(self) -> None:
        self.handle.cancel()


class WatchedEventSourceResponse(EventSourceResponse):
    """sse-starlette's response, with the send timeout kept by a `SendWatchdog`, and a
    clean-up callback that runs once, however the stream ends.

    `on_close(stopped_because)` is where the caller learns the response is over: for a
    resumable answer (resumable.py), that its reader left. It runs after the response has
    finished or failed, outside sse-starlette's task group, so a cancelled stream (client
    gone, send timeout, shutdown) still runs it to the end. It is told "send_timeout" when
    the watchdog dropped the stream, "client_disconnect" otherwise (which counts only when
    the stream had not reached its end).

    A server that stops ends every open stream through `OpenStreams`: the answers it reads
    write their terminal `error` (`shutting_down`) first (resumable.py), and a stream still
    open after that is ended with `end_with`, which writes one `error` event itself.
    """

    def __init__(
        self,
        *args,
        send_timeout: float,
        on_close: Callable[[str], Awaitable[None]] | None = None,
        open_streams: OpenStreams | None = None,
        on_fail: Callable[[GatewayError], object] | None = None,
        **kwargs,
    ) -> None:
        # sse-starlette ends every stream itself when it sees the server exiting, with no
        # terminal event; the gateway's shutdown ends each one first (`end_with`), so
        # sse-starlette is asked to wait for that as long as a shutdown may take.
        grace = open_streams.grace_seconds if open_streams is not None else 0
        super().__init__(*args, shutdown_grace_period=grace, **kwargs)
        self.stall_limit = send_timeout
        self.on_close = on_close
        self.open_streams = open_streams
        self.on_fail = on_fail  # records an error from outside the stream (StreamSession.fail)
        self.task: asyncio.Task | None = None
        self.streaming = False  # inside sse-starlette's own __call__, where a cancel lands
        self.ending_error: GatewayError | None = None
        self.ended = asyncio.Event()
        self.messages_sent = 0  # the response start, the events and the pings
        self.pings_sent = 0

    def end_with(self, error: GatewayError) -> None:
        """End the stream now with `error` as its terminal event (a shutdown): its task is
        cancelled where it waits, and writes the event itself (see `__call__`)."""
        if self.streaming and self.ending_error is None and self.task is not None:
            self.ending_error = error
            self.task.cancel()

    async def _ping(self, send: Send) -> None:
        # Pings carry no id: counted apart, so the id of a terminal event written here is known.
        async def counted_send(message: Message) -> None:
            self.pings_sent += 1
            await send(message)

        await super()._ping(counted_send)

    async def write_ending(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The terminal `error` of a stream ended from outside, once its model has stopped; a
        plain problem response if nothing was sent yet. Bounded like any send."""
        error = self.ending_error
        with anyio.move_on_after(self.stall_limit):
            if self.messages_sent == 0:
                response = problem_response(problem_from(error, self.request_id))
                await response(scope, receive, send)
                return
            event_id = self.messages_sent - self.pings_sent  # the start message is not an event
            body = sse.encode_json_event("error", problem_from(error, self.request_id), event_id)
            await send({"type": "http.response.body", "body": body, "more_body": False})

    @property
    def request_id(self) -> str:
        return dict(self.raw_headers).get(b"x-request-id", b"").decode() or new_request_id()

    def _send_with_timeout(self, send: Send, message: Message) -> Awaitable[None]:
        # sse-starlette sends every event through this, inside a cancel scope that enforces its
        # own send timeout. The scope costs more than the rest of a token's work even with no
        # timeout set, and the watchdog already keeps the limit, so the send goes straight out.
        return send(message)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watchdog = SendWatchdog(self.stall_limit)
        clock = watchdog.loop.time
        closed = False

        async def close() -> None:
            nonlocal closed
            if closed:
                return
            closed = True
            if self.on_close is not None:
                stopped_because = "send_timeout" if watchdog.fired else "client_disconnect"
                # Shielded: a stream being cancelled (client gone, shutdown) must still stop
                # its model and settle; bounded, so a model that will not close cannot hang it.
                with anyio.move_on_after(CLOSE_TIMEOUT_SECONDS, shield=True):
                    await self.on_close(stopped_because)

        async def watched_send(message: Message) -> None:
            if not message.get("more_body", True) and message["type"] == "http.response.body":
                # The last message: clean up first, so the bill and the metrics are final by
                # the time the client has the whole stream.
                await close()
            self.messages_sent += 1
            watchdog.sending_since, watchdog.sender = clock(), asyncio.current_task()
            try:
                await send(message)
            finally:
                watchdog.sending_since = None

        self.task = asyncio.current_task()
        streams = self.open_streams
        try:
            if streams is not None and streams.stopping:
                # Opened while the server stops: refused with the shutdown's error.
                self.ending_error = streams.error()
            else:
                if streams is not None:
                    streams.add(self)
                self.streaming = True
                try:
                    await super().__call__(scope, receive, watched_send)
                except asyncio.CancelledError:
                    if self.ending_error is None:
                        raise  # the client left, or the server cancels: nothing to say
                    self.task.uncancel()  # ours (end_with): the stream ends with its error
                finally:
                    self.streaming = False
            if self.ending_error is not None:
                if self.on_fail is not None:
                    self.on_fail(self.ending_error)  # so the stream is settled with it
                watchdog.stop()
                await close()  # stop the model and settle first, as for any last message
                await self.write_ending(scope, receive, send)
        finally:
            if streams is not None:
                streams.discard(self)
            self.ended.set()
            watchdog.stop()
            await close()  # the stream ended some other way: cancelled, dropped, failed


class OpenStreams:
    """The SSE streams of one app that are open now, so a shutdown can end each one with an
    `error` event `shutting_down` (the chat's connections get theirs from chat.ChatHub); and
    the requests still waiting for a model before their answer starts (`until_shutdown`),
    which get a 503 `shutting_down` instead of being cut when the grace period is over."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.open: set[WatchedEventSourceResponse] = set()
        self.waiting: dict[asyncio.Task, Callable[[GatewayError], object]] = {}
        self.stopping = False

    @contextlib.asynccontextmanager
    async def until_shutdown(self, on_fail: Callable[[GatewayError], object]):
        """Run the block, unless the server stops first: then `on_fail` records the error
        (StreamSession.fail), the block is cancelled where it waits, and GatewayError
        `shutting_down` is raised in its place."""
        if self.stopping:
            raise self.error()
        task = asyncio.current_task()
        self.waiting[task] = on_fail
        try:
            yield
        except asyncio.CancelledError:
            if not self.stopping or task.cancelling() == 0:
                raise
            task.uncancel()
            raise self.error() from None
        finally:
            self.waiting.pop(task, None)

    @staticmethod
    def error() -> GatewayError:
        return GatewayError(
            "shutting_down",
            "The gateway is restarting; reconnect and ask again.",
            retry_after_seconds=1.0,
        )

    def add(self, stream: WatchedEventSourceResponse) -> None:
        self.open.add(stream)

    def discard(self, stream: WatchedEventSourceResponse) -> None:
        self.open.discard(stream)

    async def shutdown(
        self, end_answers: Callable[[GatewayError], Awaitable[None]] | None = None
    ) -> None:
        """End every open stream with `shutting_down`, and wait until each has said so.

        `end_answers` ends the answers the streams read (resumable.py): each writes its own
        terminal `error`, with its next id, and its readers deliver it and end as usual. A
        stream still open half a grace period later (a reader that is not reading) is ended
        from here, with an `error` of its own."""
        self.stopping = True
        for task, on_fail in list(self.waiting.items()):
            on_fail(self.error())
            task.cancel()
        if end_answers is not None:
            await end_answers(self.error())
            with anyio.move_on_after(self.grace_seconds / 2):
                for stream in list(self.open):
                    await stream.ended.wait()
        streams = list(self.open)
        for stream in streams:
            stream.end_with(self.error())
        for stream in streams:
            await stream.ended.wait()
