"""The SSE wire layer: guard items in, the contract's event stream out.

Every stream is `start`, then `delta`s, then exactly one terminal event, `end` or `error`, and
then it closes. Every event has an id, counting up from 1, so a client can tell it missed one.
An error after the first token cannot change the HTTP status any more (200 was sent), so the
`error` event's problem object carries the status the error would have had. Keep-alive
`: ping` comments come from sse-starlette's ping task, written by our encoder (`PingComment`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse
from starlette.types import Message, Receive, Scope, Send

from . import sse
from .errors import GatewayError, problem_from
from .guard import Delta, Finished, end_data

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
    """

    def __init__(
        self,
        *args,
        send_timeout: float,
        on_close: Callable[[str], Awaitable[None]] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.stall_limit = send_timeout
        self.on_close = on_close

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
            watchdog.sending_since, watchdog.sender = clock(), asyncio.current_task()
            try:
                await send(message)
            finally:
                watchdog.sending_since = None

        try:
            await super().__call__(scope, receive, watched_send)
        finally:
            watchdog.stop()
            await close()  # the stream ended some other way: cancelled, dropped, failed
