"""The SSE wire layer: guard items in, the contract's event stream out.

Every stream is `start`, then `delta`s, then exactly one terminal event, `end` or `error`, and
then it closes. Every event has an id, counting up from 1, so a client can tell it missed one.
An error after the first token cannot change the HTTP status any more (200 was sent), so the
`error` event's problem object carries the status the error would have had. Keep-alive
`: ping` comments (written by our encoder) go out when the stream has sent
nothing for `ping_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from sse_starlette.sse import EventSourceResponse
from starlette.types import Message, Receive, Scope, Send

from . import sse
from .disconnect import ClientGone, unless_disconnected
from .errors import GatewayError, problem_from, problem_response
from .guard import Delta, Finished, end_data
from .server_bounds import CLOSE_CONNECTION, WRITE_BODY

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


class SendWatchdog:
    """Ends a stream whose client stopped reading: one send blocked for `limit` seconds; and,
    when given `on_idle`, calls it once the stream has sent nothing for `idle_every` seconds
    (an SSE stream's keep-alive ping).

    sse-starlette can time every send itself, but that arms and cancels a timer per event, which
    costs more than the rest of a token's work. Here a send only notes when it started, and one
    timer looks now and then, so a stuck client is still dropped within about `limit` seconds,
    and an idle stream pings without a task of its own waiting for the moment.
    """

    def __init__(
        self,
        limit: float,
        idle_every: float = 0.0,
        on_idle: Callable[[], object] | None = None,
    ) -> None:
        self.limit = limit
        self.idle_every = idle_every if on_idle is not None else 0.0
        self.on_idle = on_idle
        self.loop = asyncio.get_running_loop()
        self.sending_since: float | None = None
        self.last_sent = self.loop.time()  # when the last send began
        self.sender: asyncio.Task | None = None
        self.fired = False  # whether it dropped the stream
        self.handle = self.loop.call_later(self.next_look(self.last_sent), self.check)

    def next_look(self, now: float) -> float:
        """Seconds until something may be due: a stuck send or, idle, the next ping."""
        since = self.sending_since
        if since is not None:
            return max(since + self.limit - now, 0.001)
        wait = self.limit
        if self.idle_every > 0:
            wait = min(wait, self.last_sent + self.idle_every - now)
        return max(wait, 0.001)

    def check(self) -> None:
        now, since = self.loop.time(), self.sending_since
        if since is not None and now - since >= self.limit and self.sender is not None:
            self.fired = True
            self.sender.cancel()  # the client has not read for `limit` s: drop the stream
            return
        if since is None and self.idle_every > 0 and now - self.last_sent >= self.idle_every:
            self.last_sent = now  # once per quiet spell, even if the ping cannot go out
            self.on_idle()
        self.handle = self.loop.call_later(self.next_look(now), self.check)

    def stop(self) -> None:
        self.handle.cancel()


class DirectWrite:
    """How the task that makes a stream's events can write one to the stream's connection
    itself, while the stream's reader waits for it (replay.MemoryReplay does).

    `write(event) -> bool` is set by the response while its body streams, on a server that
    offers it (server_bounds.WRITE_BODY), and None otherwise; False means it could not be
    taken (the client's buffer is full, or the stream is ending), and the reader sends it the
    usual way. Why: at 100 tokens/s an event handed to a waiting reader wakes a second task
    per token, one whose stack is the app's whole middleware and routing stack. Measured on
    the course VM (2026-11-29, 500 streams at 100 tokens/s on one worker, server CPU per token
    delivered, runs of three rounds): 87-95 us with every event woken through its reader,
    39-57 us written by its maker.
    """

    __slots__ = ("write",)

    def __init__(self) -> None:
        self.write: Callable[[bytes], bool] | None = None


class WatchedEventSourceResponse(EventSourceResponse):
    """sse-starlette's response (its headers, its settings, its answer to HEAD), streamed by a
    loop of the gateway's own: the events are sent from the request's own task, a
    `SendWatchdog` keeps the send timeout and the pings, and one watcher task notices a
    client that leaves; plus a clean-up callback that runs once, however the stream ends.

    Why not sse-starlette's own loop: it runs four tasks per stream in a task group (the
    stream, the pings, the client's disconnect, the server's exit), and arms a cancel scope
    per send. Measured on the course VM (2026-11-29, in process, the ASGI call to the first
    delta, p50): 150-240 us for sse-starlette's loop against 30-60 us for a bare
    `StreamingResponse`; an idle stream held 24 asyncio Events, and 14 with this loop
    (tracemalloc). The server's exit is not watched here: the gateway's server ends
    every open stream itself (`OpenStreams`, background.GatewayServer).

    `direct`, when given, is offered to whoever writes the body's events (see `DirectWrite`):
    while the body waits for its next event, its writer may write the event itself. So the
    request's task is not woken per event, which would resume every coroutine of its stack:
    the app's whole middleware and routing stack, about 20 of them.

    `on_close(stopped_because)` is where the caller learns the response is over: for a
    resumable answer (resumable.py), that its reader left. It runs before the last message
    goes out, or, when the stream ended otherwise, after it ended; a cancelled stream (client
    gone, send timeout, shutdown) still runs it to the end (shielded; it should not wait long).
    It is told "send_timeout" when the watchdog dropped the stream, "client_disconnect"
    otherwise (which counts only when the stream had not reached its end).

    A server that stops ends every open stream through `OpenStreams`: the answers it reads
    write their terminal `error` (`shutting_down`) first (resumable.py), and a stream still
    open after that is ended with `end_with`, which writes one `error` event itself.
    """

    def __init__(
        self,
        *args,
        request_id: str,
        send_timeout: float,
        on_close: Callable[[str], Awaitable[None]] | None = None,
        open_streams: OpenStreams | None = None,
        on_fail: Callable[[GatewayError], object] | None = None,
        direct: DirectWrite | None = None,
        **kwargs,
    ) -> None:
        # sse-starlette's headers say no caching and no proxy buffering (`X-Accel-Buffering`);
        # the request id is added as raw bytes (its MutableHeaders would cost 5 of 20 us).
        super().__init__(*args, **kwargs)
        self.request_id = request_id
        self.raw_headers.append((b"x-request-id", request_id.encode("latin-1")))
        self.stall_limit = send_timeout
        self.on_close = on_close
        self.open_streams = open_streams
        self.on_fail = on_fail  # records an error from outside the stream (StreamSession.fail)
        self.direct = direct
        self.task: asyncio.Task | None = None
        self.streaming = False  # sending the stream, where `end_with` cancels it
        self.ending_error: GatewayError | None = None
        self.done = False  # the stream has ended, however
        self.ending: asyncio.Future | None = None  # made only for whoever waits (`ended`)
        self.messages_sent = 0  # the response start, the events and the pings
        self.pings_sent = 0
        self.last_message_due = False  # no ping after this: the stream is ending

    async def ended(self) -> None:
        """Return once the stream has ended (at once if it has)."""
        if not self.done:
            if self.ending is None:
                self.ending = asyncio.get_running_loop().create_future()
            await asyncio.shield(self.ending)

    def end_with(self, error: GatewayError) -> None:
        """End the stream now with `error` as its terminal event (a shutdown): its task is
        cancelled where it waits, and writes the event itself (see `__call__`)."""
        if self.streaming and self.ending_error is None and self.task is not None:
            self.ending_error = error
            self.task.cancel()

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

    async def stream(self, send: Send, write: Callable[[bytes], bool] | None) -> None:
        """The head, every encoded event of the body (bytes), then the end of the body; once
        the head is out, `write` is offered to the body's writer (`direct`)."""
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        body = self.body_iterator
        direct = self.direct
        try:
            if direct is not None:
                direct.write = write
            async for data in body:
                await send({"type": "http.response.body", "body": data, "more_body": True})
        finally:
            if direct is not None:
                direct.write = None
            # However the stream ended (a send failed, the stream was cancelled), the body's
            # clean-up runs now: a replay reader says it stopped reading (resumable.py).
            with anyio.move_on_after(CLOSE_TIMEOUT_SECONDS, shield=True):
                await body.aclose()
        self.last_message_due = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"].upper() == "HEAD":
            await super().__call__(scope, receive, send)  # headers only, as sse-starlette does
            return
        self.task = task = asyncio.current_task()
        pinging: set[asyncio.Task] = set()

        def ping_now() -> None:
            if self.streaming and not self.last_message_due:
                pinger = asyncio.ensure_future(self.ping(watched_send))
                pinging.add(pinger)
                pinger.add_done_callback(pinging.discard)

        watchdog = SendWatchdog(self.stall_limit, self.ping_interval, ping_now)
        watchdog.sender = task  # a stuck send, the stream's or a ping's, drops the stream
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
            watchdog.sending_since = watchdog.last_sent = clock()
            try:
                await send(message)
            finally:
                watchdog.sending_since = None

        write_body = scope.get("extensions", {}).get(WRITE_BODY)

        def write(data: bytes) -> bool:
            # An event written straight to the connection by its maker; the response's
            # task waits for the body meanwhile, so nothing it sends can come between.
            if self.last_message_due or not write_body(data):
                return False
            self.messages_sent += 1
            watchdog.last_sent = clock()
            return True

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
                    await unless_disconnected(
                        self.stream(watched_send, write if write_body else None), receive
                    )
                except ClientGone:
                    pass  # nobody to tell: close() below says why it ended
                except asyncio.CancelledError:
                    if self.ending_error is None and not watchdog.fired:
                        raise  # the server cancels: not ours to handle
                    task.uncancel()  # ours: a shutdown's `end_with`, or the watchdog's drop
                    if watchdog.fired:
                        # The client stopped reading: no last message could reach it.
                        close_connection = scope.get("extensions", {}).get(CLOSE_CONNECTION)
                        if close_connection is not None:
                            close_connection()
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
            self.done = True
            if self.ending is not None and not self.ending.done():
                self.ending.set_result(None)
            watchdog.stop()
            for pinger in list(pinging):
                pinger.cancel()
            await close()  # the stream ended some other way: cancelled, dropped, failed

    async def ping(self, send: Send) -> None:
        """One keep-alive comment; it carries no id (counted apart, so the id of a terminal
        event written by `write_ending` is known). A ping that meets the stream's end is
        dropped: it has nothing left to keep alive."""
        self.pings_sent += 1
        ping = sse.encode_comment("ping")  # a comment line, which EventSource ignores
        message = {"type": "http.response.body", "body": ping, "more_body": True}
        with contextlib.suppress(Exception):
            await send(message)


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
                    await stream.ended()
        streams = list(self.open)
        for stream in streams:
            stream.end_with(self.error())
        for stream in streams:
            await stream.ended()
