"""The server's own bounds, and the one place that builds uvicorn's Config for the gateway.

uvicorn trusts its clients further than a gateway in front of a model may. With its defaults a
connection that never sends a request, or sends its headers a byte at a time, stays open for
good; headers are read whole whatever their size (httptools, which uvicorn picks when it is
installed, has no limit of its own); a WebSocket message of up to 16 MiB is read into memory
before the app can refuse it; and a SIGTERM waits for every connection, however long its
client takes. Each is bounded here from the settings:

- `request_read_timeout_seconds`: a connection must send a whole request head within it, from
  its opening (or from the first byte of a later request); else 408 `request_timeout`, or a
  plain close when no request had begun. The body's own deadline is the edge's (edge.read_body).
- `max_header_bytes`: the request line and headers; above it 431 `headers_too_large`, counted
  as the bytes arrive, so memory stays bounded however large the header grows.
- `max_connections`: the open connections of this worker; one more gets 503 `overloaded`.
- `keep_alive_seconds`: uvicorn's keep-alive timeout after an answer.
- `shutdown_grace_seconds`: uvicorn's graceful-shutdown timeout (see background.GatewayServer).
- `ws_max_message_bytes`: the server reads a WebSocket message of at most twice it, so one just
  over the limit still gets the chat's `error` and 1009, and a larger one is refused with 1009
  by the frame reader before its payload is read.

A text message that is not UTF-8 is closed with 1007, as uvicorn does, but logged as a
warning, not a traceback. Each refusal is a problem object from the catalogue, with
`Connection: close`; none is a traceback in the log. The command line, its workers and
BackgroundServer all build their Config with `uvicorn_config`, so all of them enforce the
same bounds.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

from .errors import problem, retry_after_header
from .request_id import new_request_id
from .settings import Settings


class WritesThisTurn:
    """The connections that took body pieces (`BodyAwareCycle.write_body`) in this turn of the
    event loop; each writes them in one piece once the loop has run what was ready. One
    callback a turn for every connection of the server: at 500 streams a turn carries many
    tokens, and a callback per connection and turn measured costlier (2026-11-29, server CPU
    per token, 500 streams at 100 tokens/s: 48-67 us against 39-57 with one per turn)."""

    def __init__(self) -> None:
        self.cycles: list[BodyAwareCycle] = []

    def add(self, cycle: BodyAwareCycle) -> None:
        if not self.cycles:
            asyncio.get_running_loop().call_soon(self.write_all)
        self.cycles.append(cycle)

    def write_all(self) -> None:
        cycles, self.cycles = self.cycles, []
        for cycle in cycles:
            cycle.write_taken()


@dataclass(frozen=True)
class ServerBounds:
    read_timeout: float
    max_header_bytes: int
    max_connections: int
    on_reject: Callable[[str], None] = lambda code: None
    # One server, one event loop: the body pieces its connections took this turn of it.
    writes: WritesThisTurn = field(default_factory=WritesThisTurn)


def problem_bytes(status_line: bytes, code: str, detail: str) -> bytes:
    """A whole HTTP/1.1 answer carrying the catalogue's problem, after which the server closes.
    A 503 says when to retry, as every 503 of the contract does."""
    request_id = new_request_id()
    retry_after = 1.0 if status_line.startswith(b"HTTP/1.1 503") else None
    body = problem(code, detail, request_id, retry_after)
    encoded = json.dumps(body, separators=(",", ":")).encode()
    head = status_line + b"content-type: application/problem+json\r\n"
    head += b"content-length: %d\r\nx-request-id: %s\r\n" % (len(encoded), request_id.encode())
    if retry_after is not None:
        head += b"retry-after: %s\r\n" % retry_after_header(retry_after).encode()
    return head + b"connection: close\r\n\r\n" + encoded


# The ASGI extension (in scope["extensions"]) through which the app closes a connection whose
# client stopped reading (wire_sse.WatchedEventSourceResponse): uvicorn has no such message.
CLOSE_CONNECTION = "gateway.close_connection"
# The ASGI extension through which the app hands the connection a piece of a streaming body
# that can go without waiting, written when the loop's turn ends (BodyAwareCycle.write_body):
# a stream's events, from the task that makes them (replay.MemoryReplay, wire_sse.DirectWrite).
WRITE_BODY = "gateway.write_body"
# The ASGI extension through which the chat sends a text message at once, when it can go
# without waiting (WebSocketProtocol.send_text_now): an answer's deltas.
SEND_TEXT = "gateway.websocket_send_text"


class HeadRefused(Exception):
    """Raised in a parser callback once the head is refused and answered."""


class HeadReading:
    """Where reading a connection's next request head stands. One attribute of the protocol,
    not four: uvicorn's protocol has 27, and past 29 an instance's attributes no longer share
    their class's keys, which cost 1.3 KiB of every connection (2026-11-29)."""

    __slots__ = ("reading", "bytes", "size", "timer")

    def __init__(self) -> None:
        self.reading = True  # between requests, or inside a request line and headers
        self.bytes = 0  # as read from the socket, while reading a head
        self.size = 0  # as parsed: the request line and headers
        self.timer: asyncio.TimerHandle | None = None


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline and a size limit on every request head and
    a cap on open connections. Nothing here runs per body chunk or per response byte."""

    def __init__(self, *args: Any, bounds: ServerBounds, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bounds = bounds
        self.head = HeadReading()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.bounds.max_connections:
            self.refuse(
                b"HTTP/1.1 503 Service Unavailable\r\n",
                "overloaded",
                "The gateway has as many connections open as it serves; retry shortly.",
            )
            return
        # A connection that sends nothing is closed after the read timeout, as is a slow head.
        self.head.timer = self.loop.call_later(self.bounds.read_timeout, self.head_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.head.reading:
            if self.head.timer is None and self.answered():  # a later request begins
                self.head.timer = self.loop.call_later(self.bounds.read_timeout, self.head_too_slow)
            # Counted before parsing: httptools gathers a header's value whole before handing
            # it on, so this is the only place that sees a large header while it grows.
            self.head.bytes += len(data)
        # uvicorn's own data_received, but a head refused by a callback is not "invalid HTTP".
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if not self.transport.is_closing():  # else refused in a callback, and answered
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        if self.head.reading and self.head.bytes > self.bounds.max_header_bytes:
            self.refuse_large_head()

    def on_url(self, url: bytes) -> None:
        self.head.size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head.size += len(name) + len(value)
        super().on_header(name, value)

    def on_message_begin(self) -> None:
        self.head.size = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self.head.reading = False
        self.stop_head_timer()
        if self.head.size > self.bounds.max_header_bytes:  # a whole head in one read
            self.refuse_large_head()
            raise HeadRefused  # stops the parser: this request goes no further
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.__class__ = BodyAwareCycle  # before its task first runs
            extensions = self.scope.setdefault("extensions", {})
            extensions[CLOSE_CONNECTION] = self.cycle.close_connection
            extensions[WRITE_BODY] = self.cycle.write_body
            self.cycle.writes = self.bounds.writes

    def refuse_large_head(self) -> None:
        self.refuse(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
            "headers_too_large",
            f"The request line and headers may be at most {self.bounds.max_header_bytes} bytes.",
        )

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.head.reading, self.head.bytes = True, 0

    def shutdown(self) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_started:
            # Still reading a request's body as the server stops: that body is not waited for.
            # The client is told why; the route reading it sees a client gone, and ends.
            self.refuse(
                b"HTTP/1.1 503 Service Unavailable\r\n",
                "shutting_down",
                "The gateway is restarting; send the request again.",
            )
            return
        super().shutdown()

    def send_400_response(self, msg: str) -> None:
        # Malformed HTTP (a bad chunk size, a broken request line): the catalogue's problem
        # instead of uvicorn's plain text, unless an answer is already under way.
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()
            return
        self.refuse(
            b"HTTP/1.1 400 Bad Request\r\n", "invalid_request", "The request is not valid HTTP."
        )

    def head_too_slow(self) -> None:
        self.head.timer = None
        if self.transport.is_closing():
            return
        if self.head.bytes == 0:  # no request begun: just an idle connection
            self.transport.close()
            return
        self.refuse(
            b"HTTP/1.1 408 Request Timeout\r\n",
            "request_timeout",
            f"The request's headers did not arrive within {self.bounds.read_timeout:g} s.",
        )

    def answered(self) -> bool:
        """No answer is being written on this connection now."""
        return self.cycle is None or self.cycle.response_complete

    def refuse(self, status_line: bytes, code: str, detail: str) -> None:
        self.stop_head_timer()
        if self.transport.is_closing():
            return
        if not self.answered() and self.cycle.response_started:
            # A pipelined request refused while an answer streams: its bytes cannot be mixed
            # into that answer, so the connection just closes.
            self.transport.close()
            return
        self.bounds.on_reject(code)
        self.transport.write(problem_bytes(status_line, code, detail))
        self.transport.close()

    def stop_head_timer(self) -> None:
        if self.head.timer is not None:
            self.head.timer.cancel()
            self.head.timer = None


class BodyAwareCycle(RequestResponseCycle):
    """uvicorn's request cycle, but an answer that starts before the request's body has all
    arrived (a refusal, or a route that reads none) closes the connection after it, and says
    so (`Connection: close`): the rest of the body is not worth waiting for, a client trickling
    it would hold the connection, and a client told nothing would send its next request on a
    connection about to close."""

    taken: list[bytes] | None = None  # body pieces from `write_body`, not yet written
    writes: WritesThisTurn

    async def send(self, message) -> None:
        if message["type"] == "http.response.start" and self.more_body:
            self.keep_alive = False
        if self.taken:
            self.write_taken()  # what the app wrote before this message goes out first
        await super().send(message)

    def write_body(self, data: bytes) -> bool:
        """Take `data` as the next piece of a started, chunked body, to be written once the
        event loop has run what is ready now (scope["extensions"][WRITE_BODY]); False when it
        cannot be taken: the answer has not started or is complete, the client is gone, or
        its buffer is full (then the caller sends it as an ASGI message, which waits for the
        client as uvicorn does).

        It is what `send` does with a body message, minus the ASGI layers: a stream's events
        go out from the task that makes them, without waking the response's task and
        without passing through every middleware, each of which passes a body through
        unchanged. Pieces taken in one turn of the loop go out in one write (a model that
        never waits makes many), and an ASGI message sent meanwhile goes after them.
        """
        if (
            self.disconnected
            or self.flow.write_paused
            or not self.chunked_encoding
            or self.response_complete
            or not data
        ):
            return False
        if self.taken is None:
            self.taken = []
            self.writes.add(self)
        self.taken.append(data)
        return True

    def write_taken(self) -> None:
        taken, self.taken = self.taken, None
        if taken and not self.disconnected and not self.transport.is_closing():
            data = taken[0] if len(taken) == 1 else b"".join(taken)
            self.transport.write(b"%x\r\n%b\r\n" % (len(data), data))

    def close_connection(self) -> None:
        """Give up on this answer and close the connection now (scope["extensions"]
        [CLOSE_CONNECTION]): for a client that stopped reading, whose sends would wait for it
        for ever. The app may return at once; it is not an error of the app's."""
        if not self.response_complete:
            self.disconnected = True  # as if the client had gone: nothing more is sent
            self.message_event.set()
            self.flow.resume_writing()  # a send waiting for the client returns
        self.transport.close()


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, but a text message that is not UTF-8 (the client's
    mistake) is closed with 1007 as uvicorn does, with a warning instead of a traceback; and
    the app may send a text message without the ASGI layers (SEND_TEXT)."""

    def handle_connect(self, event) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # the handshake was accepted; the app's task has not run yet
            scope["extensions"][SEND_TEXT] = self.send_text_now

    def send_text_now(self, text: str) -> bool:
        """Send `text` as one message now, if it can go without waiting (scope["extensions"]
        [SEND_TEXT]); False when it cannot: the connection is not open (not accepted yet,
        closing, closed, the client gone) or the client's buffer is full. Then the caller
        sends it as an ASGI message, which waits for the client as uvicorn does.

        It is what `send` does with a `websocket.send` message, minus the ASGI layers
        (Starlette's WebSocket, every middleware's wrapper, the wait for the buffer): the
        chat sends one message per token, and they cost more than the rest of its work.
        """
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.initial_response is not None
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        try:
            self.conn.send_text(text.encode())
        except InvalidState:
            return False
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type != "text" or self.close_sent:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        try:
            text = data.decode()
        except UnicodeDecodeError:
            self.logger.warning("Invalid UTF-8 in a WebSocket text message; closed with 1007.")
            self.conn.send_close(1007)
            self.handle_parser_exception()
            return
        self.queue.put_nowait({"type": "websocket.receive", "text": text})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()


def uvicorn_options(settings: Settings, on_reject: Callable[[str], None] | None = None) -> dict:
    """The uvicorn.Config options that enforce the settings' server bounds."""
    bounds = ServerBounds(
        read_timeout=settings.request_read_timeout_seconds,
        max_header_bytes=settings.max_header_bytes,
        max_connections=settings.max_connections,
        on_reject=on_reject or ServerBounds.on_reject,
    )
    return {
        "http": functools.partial(BoundedHttpProtocol, bounds=bounds),
        # If uvicorn is told to use h11 instead, it bounds the head with its own limit (400).
        "ws": WebSocketProtocol,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "ws_max_size": 2 * settings.ws_max_message_bytes,
        "ws_per_message_deflate": settings.ws_per_message_deflate,
        "timeout_keep_alive": settings.keep_alive_seconds,
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
    }


def uvicorn_config(app: Any, **options: Any) -> uvicorn.Config:
    """uvicorn's Config for `app`: the server options the app names (the gateway's bounds, in
    `app.state.uvicorn_options`), then `options`, which win."""
    app_options = getattr(getattr(app, "state", None), "uvicorn_options", None) or {}
    return uvicorn.Config(app, **{**app_options, **options})
