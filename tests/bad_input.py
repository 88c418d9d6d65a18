"""The bad-input catalogue: every kind of bad input, how it is sent, and what it gets.

One table, `CATALOGUE`, drives `test_bad_input.py` (one test per kind, against a real gateway
on a loopback port, with real clients, raw sockets where httpx will not send the input) and
writes `docs/reliability.md` (`python tests/reliability_doc.py`). A kind's `send` does what its
`how` says and reports what came back as an `Outcome`; the test compares it with `expected`.

`owner` names the change that makes a kind pass when it is not the bad-input work: those kinds
are written against the names the team reserved (408 `request_timeout`, 431
`headers_too_large`, 403 `origin_not_allowed`, ...) and fail until that change is merged.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from support import API_KEY, QUESTION
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from reference_impl.contract import validate as contract

# Deadlines for what should come back at once; generous, so a slow machine never fails.
WAIT = 10.0
# A trickle or a stall is given this long to be answered (the tests set a 0.5 s read timeout).
SLOW_CLIENT_WAIT = 3.0
DOCUMENT = QUESTION["document_id"]
ASK = {"type": "ask", "id": "q1", "question": QUESTION["question"], "document_id": DOCUMENT}


@dataclass(frozen=True)
class Expected:
    """What a kind of bad input gets. HTTP: `status` and the problem's `code` (code None: the
    request is answered normally). WebSocket: the `error` message's `code` (None: answered
    normally) and the `close` code (None: the connection stays open); `status` is set only when
    the handshake itself is refused."""

    status: int | None = None
    code: str | None = None
    close: int | None = None

    def describe(self) -> str:
        if self.status is not None and self.code is None:
            return f"{self.status}, answered normally"
        if self.status is not None:
            return f"{self.status} `{self.code}`"
        said = f"`error` `{self.code}`" if self.code else "answered normally"
        if self.close is None:
            return f"{said}, the connection stays open"
        if self.code is None:
            return f"closed {self.close}, no message"
        return f"{said}, then closed {self.close}"


@dataclass
class Outcome:
    """What came back: the same fields as `Expected`, plus every text received (to check that
    none leaks a traceback, a path or an internal name) and the WebSocket message types."""

    status: int | None = None
    code: str | None = None
    close: int | None = None
    texts: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    note: str = ""

    def matches(self, expected: Expected) -> bool:
        return (self.status, self.code, self.close) == (
            expected.status,
            expected.code,
            expected.close,
        )


@dataclass
class Context:
    """What a kind's `send` works with: the gateway under test and the fixture to start more."""

    gateway: Any
    start_gateway: Callable[..., Any]


@dataclass(frozen=True)
class Kind:
    name: str
    channel: str  # "HTTP" or "WebSocket"
    how: str  # how it is sent, for the page
    expected: Expected
    send: Callable[[Context], Outcome]
    settings: dict[str, Any] = field(default_factory=dict)
    owner: str | None = None  # the change that makes it pass, when not the bad-input work


# --- HTTP ------------------------------------------------------------------------------------

AUTH = {"Authorization": f"Bearer {API_KEY}"}
JSON = {"Content-Type": "application/json"}


def http_outcome(response: httpx.Response) -> Outcome:
    outcome = Outcome(status=response.status_code, texts=[response.text])
    media = response.headers.get("content-type", "")
    if media.startswith("application/problem+json"):
        body = response.json()
        assert body["status"] == response.status_code, body
        assert body["request_id"] == response.headers.get("x-request-id"), body
        outcome.code = body["code"]
    elif response.status_code >= 400:
        outcome.note = f"not a problem object: {media} {response.text[:80]!r}"
    return outcome


def post(
    path: str = "/v1/ask", *, body: Any = None, content: Any = None, headers=None, method="POST"
) -> Callable[[Context], Outcome]:
    """POST (or `method`) with httpx: `body` as JSON, or `content` as the raw body."""

    def send(context: Context) -> Outcome:
        sent_headers = {**AUTH, **JSON, **(headers or {})}
        sent_headers = {name: value for name, value in sent_headers.items() if value is not None}
        with httpx.Client(base_url=context.gateway.url, timeout=WAIT) as client:
            data = json.dumps(body).encode() if body is not None else content
            response = client.request(method, path, content=data, headers=sent_headers)
        return http_outcome(response)

    return send


def raw_request(head: bytes, body: bytes = b"") -> bytes:
    """A request for a raw socket; a Host and the API key are added after the request line."""
    line, _, rest = head.partition(b"\r\n")
    auth = f"Authorization: Bearer {API_KEY}\r\n".encode()
    return line + b"\r\nHost: gateway\r\n" + auth + rest + b"\r\n" + body


def parse_response(raw: bytes) -> Outcome:
    """The first HTTP response in `raw` bytes."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(body)))
    response = httpx.Response(status, headers=headers, content=body[:length])
    return http_outcome(response)


def read_response(sock: socket.socket, deadline: float) -> bytes:
    """Read until the server closes, or a whole response with a Content-Length is in."""
    received = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
        head, found, body = received.partition(b"\r\n\r\n")
        if found:
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length" and len(body) >= int(value):
                    return received
    return received


def raw(
    data: bytes, *, then: bytes = b"", every: float = 0.0, wait: float = WAIT
) -> Callable[[Context], Outcome]:
    """Send `data` on a raw socket, then `then` one byte every `every` seconds (a trickle),
    until the server answers or `wait` seconds have passed."""

    def send(context: Context) -> Outcome:
        deadline = time.monotonic() + wait
        with socket.create_connection(("127.0.0.1", context.gateway.server.port), WAIT) as sock:
            sock.sendall(data)
            for byte in then:
                # Pacing the client, and listening: the trickle stops once the server answers.
                ready, _, _ = select.select([sock], [], [], every)
                if ready or time.monotonic() > deadline:
                    break
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break  # the server closed the connection: read its answer
            received = read_response(sock, deadline)
        if not received:
            return Outcome(note=f"no answer within {wait:g} s")
        return parse_response(received)

    return send


def stream_answered(context: Context, body: dict[str, Any]) -> Outcome:
    result = context.gateway.client().stream(body)
    outcome = Outcome(status=result.response.status_code, texts=[e["data"] for e in result.events])
    if result.response.status_code != 200:
        outcome.code = result.response.json()["code"]
    elif result.names[-1] != "end":
        outcome.note = f"the stream ended with {result.names[-1]}"
        outcome.code = json.loads(result.events[-1]["data"]).get("code")
    return outcome


def streamed(body: dict[str, Any]) -> Callable[[Context], Outcome]:
    return lambda context: stream_answered(context, body)


def streamed_bytes(content: bytes) -> Callable[[Context], Outcome]:
    """POST `content` as it is to the stream, checked against the contract to its end."""

    def send(context: Context) -> Outcome:
        with httpx.Client(base_url=context.gateway.url, timeout=WAIT) as client:
            with client.stream(
                "POST", "/v1/ask/stream", content=content, headers={**AUTH, **JSON}
            ) as response:
                body = response.read()
        found = contract.validate_response(
            "POST", "/v1/ask/stream", response.status_code, response.headers, body
        )
        if response.status_code != 200:
            return http_outcome(
                httpx.Response(response.status_code, headers=response.headers, content=body)
            )
        outcome = Outcome(status=200, texts=[event["data"] for event in found])
        if found[-1]["event"] != "end":
            outcome.code = json.loads(found[-1]["data"]).get("code")
        return outcome

    return send


def deep_json(levels: int) -> bytes:
    return b'{"question": ' + b"[" * levels + b"]" * levels + b', "document_id": "x"}'


def nested_body(levels: int) -> bytes:
    """A body that is nothing but `levels` nested arrays."""
    return b"[" * levels + b"]" * levels


def body_with(field_json: str) -> bytes:
    """An ask whose question is the JSON string literal `field_json`, as the bytes sent."""
    return f'{{"question": {field_json}, "document_id": "{DOCUMENT}"}}'.encode()


CHUNKED_OVER = [b'{"question": "', *[b"x" * 1000] * 80, b'", "document_id": "x"}']


def chunked(chunks: list[bytes]) -> Callable[[Context], Outcome]:
    return post(content=iter(chunks))


# --- WebSocket ---------------------------------------------------------------------------------

TERMINAL = frozenset({"error", "end", "pong"})


def open_chat(context: Context, *, key: str | None = API_KEY, query: str = "", headers=None):
    sent_headers = dict(headers or {})
    if key is not None:
        sent_headers["Authorization"] = f"Bearer {key}"
    return connect(
        f"{context.gateway.server.ws_url}/v1/chat{query}",
        additional_headers=sent_headers,
        compression=None,
        open_timeout=WAIT,
        max_size=None,
    )


def receive(ws: ClientConnection, outcome: Outcome, stop_at=TERMINAL) -> dict[str, Any] | None:
    """The next message whose type is in `stop_at` (None when the connection closed); every
    message on the way is recorded in `outcome`."""
    while True:
        text = ws.recv(timeout=WAIT)
        outcome.texts.append(text if isinstance(text, str) else repr(text))
        message = json.loads(text)
        outcome.types.append(message["type"])
        if message["type"] in stop_at:
            return message


def still_open(ws: ClientConnection, outcome: Outcome) -> None:
    """Ping until a pong comes back (the connection is open), honouring a rate limit's
    retry_after, or record the close code when the server closed it."""
    deadline = time.monotonic() + WAIT
    try:
        while time.monotonic() < deadline:
            ws.send(json.dumps({"type": "ping"}))
            message = receive(ws, outcome, stop_at={"pong", "error"})
            if message["type"] == "pong":
                return
            # A client honouring Retry-After: pacing the client, not waiting for the server.
            threading.Event().wait(message["problem"].get("retry_after_seconds") or 0.05)
        raise AssertionError("no pong within the deadline")
    except ConnectionClosed:
        outcome.close = ws.protocol.close_code


def chat_outcome(ws: ClientConnection, outcome: Outcome, stop_at=TERMINAL) -> Outcome:
    """Read up to the first error (its code) or normal answer, then whether it stays open."""
    try:
        message = receive(ws, outcome, stop_at)
        if message["type"] == "error":
            outcome.code = message["problem"]["code"]
    except ConnectionClosed:
        outcome.close = ws.protocol.close_code
        return outcome
    still_open(ws, outcome)
    return outcome


def frames(*sent: Any, stop_at=TERMINAL, **connect_options) -> Callable[[Context], Outcome]:
    """Send each of `sent` (a dict as JSON text, a str as text, bytes as a binary frame, a
    list as one fragmented message), then read what comes back."""

    def send(context: Context) -> Outcome:
        outcome = Outcome()
        try:
            connection = open_chat(context, **connect_options)
        except InvalidStatus as refused:
            response = refused.response
            outcome.status = response.status_code
            body = response.body or b""
            outcome.texts.append(body.decode("utf-8", "replace"))
            if body:
                outcome.code = json.loads(body).get("code")
            return outcome
        with connection as ws:
            with contextlib.suppress(ConnectionClosed):  # closed early: read why below
                for frame in sent:
                    ws.send(json.dumps(frame) if isinstance(frame, dict) else frame)
            return chat_outcome(ws, outcome, stop_at)

    return send


def invalid_utf8_text_frame(context: Context) -> Outcome:
    outcome = Outcome()
    with open_chat(context) as ws:
        ws.send(b'{"type": "ping", "x": "\xff\xfe"}', text=True)  # a text frame, not UTF-8
        return chat_outcome(ws, outcome)


def ask_text(question_json: str) -> str:
    """An ask whose question is the JSON string literal `question_json`, as sent."""
    return f'{{"type":"ask","id":"q1","question":{question_json},"document_id":"{DOCUMENT}"}}'


def ask_while_streaming_with_same_id(context: Context) -> Outcome:
    outcome = Outcome()
    with open_chat(context) as ws:
        ws.send(json.dumps(ASK))
        receive(ws, outcome, stop_at={"delta"})
        ws.send(json.dumps(ASK))  # the same id while q1 still streams
        message = receive(ws, outcome, stop_at={"error"})
        outcome.code = message["problem"]["code"]
        ws.send(json.dumps({"type": "cancel", "id": "q1"}))
        receive(ws, outcome, stop_at={"end"})
        still_open(ws, outcome)
    return outcome


def ticket(context: Context, gateway: Any = None) -> str:
    gateway = gateway or context.gateway
    with httpx.Client(base_url=gateway.url, headers=AUTH, timeout=WAIT) as client:
        response = client.post("/v1/chat/tickets")
    assert response.status_code == 201, response.text
    return response.json()["ticket"]


def with_ticket(ticket_of: Callable[[Context], str]) -> Callable[[Context], Outcome]:
    def send(context: Context) -> Outcome:
        return frames({"type": "ping"}, key=None, query=f"?ticket={ticket_of(context)}")(context)

    return send


def reused_ticket(context: Context) -> str:
    used = ticket(context)
    outcome = frames({"type": "ping"}, key=None, query=f"?ticket={used}")(context)
    assert outcome.close is None and outcome.types[-1] == "pong", outcome
    return used


def expired_ticket(context: Context) -> str:
    issued = ticket(context)
    lifetime = context.gateway.settings.ws_ticket_seconds
    expires = time.monotonic() + lifetime
    while time.monotonic() <= expires:  # the ticket's lifetime, measured, not slept blindly
        select.select([], [], [], lifetime / 5)
    return issued


def foreign_ticket(context: Context) -> str:
    """A ticket issued by another gateway, which shares nothing with this one."""
    return ticket(context, context.start_gateway())


def many_connections(context: Context) -> Outcome:
    """200 connections from one key, all held open at once; the first refusal is reported."""
    limit = context.gateway.settings.ws_max_connections_per_key
    outcome = Outcome()
    opened, refused = 0, 0
    with contextlib.ExitStack() as held:  # every connection stays open until the end
        for _ in range(200):
            ws = held.enter_context(open_chat(context))
            opened += 1
            with contextlib.suppress(ConnectionClosed):  # a refused one may be closed already
                ws.send(json.dumps({"type": "ping"}))
            try:
                message = receive(ws, Outcome())
            except ConnectionClosed:
                message = None
            if message is not None and message["type"] == "pong":
                continue
            refused += 1
            if refused == 1:
                outcome.texts.append(json.dumps(message))
                outcome.code = message["problem"]["code"] if message else None
                with_close = Outcome()
                still_open(ws, with_close)
                outcome.close = with_close.close
        assert opened - refused == limit, (opened, refused, limit)
    return outcome


# --- the catalogue -----------------------------------------------------------------------------

HARDENING = "server hardening"
SECURITY = "security"
TIMEOUT = {"request_read_timeout_seconds": 0.5}
HEAD = b"POST /v1/ask HTTP/1.1\r\nContent-Type: application/json\r\n"
GOOD_BODY = json.dumps(QUESTION).encode()

CATALOGUE: list[Kind] = [
    # HTTP: the body's size and framing
    Kind(
        "oversized body with Content-Length",
        "HTTP",
        "a body above `max_request_bytes` (1000 here), its size declared",
        Expected(413, "request_too_large"),
        post(body={**QUESTION, "question": "x" * 2000}),
        {"max_request_bytes": 1000},
    ),
    Kind(
        "oversized body without Content-Length",
        "HTTP",
        "80 KB sent chunked (no Content-Length), counted while read",
        Expected(413, "request_too_large"),
        chunked(CHUNKED_OVER),
        {"max_request_bytes": 1000},
    ),
    Kind(
        "Content-Length promising more than is sent",
        "HTTP",
        "raw socket: `Content-Length: 500`, 10 bytes of body, then nothing",
        Expected(408, "request_timeout"),
        raw(raw_request(HEAD + b"Content-Length: 500\r\n", b'{"question'), wait=SLOW_CLIENT_WAIT),
        TIMEOUT,
        HARDENING,
    ),
    Kind(
        "Content-Length smaller than the body",
        "HTTP",
        "raw socket: `Content-Length: 10` before a whole ask; the rest is read as a next request",
        Expected(400, "invalid_request"),
        raw(raw_request(HEAD + b"Content-Length: 10\r\n", GOOD_BODY)),
        owner=HARDENING,
    ),
    Kind(
        "body trickling in",
        "HTTP",
        "raw socket: a whole head, then the body one byte every 0.1 s",
        Expected(408, "request_timeout"),
        raw(
            raw_request(HEAD + f"Content-Length: {len(GOOD_BODY)}\r\n".encode()),
            then=GOOD_BODY,
            every=0.1,
            wait=SLOW_CLIENT_WAIT,
        ),
        TIMEOUT,
        HARDENING,
    ),
    Kind(
        "headers trickling in",
        "HTTP",
        "raw socket: the request line, then the headers one byte every 0.1 s",
        Expected(408, "request_timeout"),
        raw(
            b"POST /v1/ask HTTP/1.1\r\n",
            then=b"Host: gateway\r\nX-Slow: " + b"s" * 200 + b"\r\n\r\n",
            every=0.1,
            wait=SLOW_CLIENT_WAIT,
        ),
        TIMEOUT,
        HARDENING,
    ),
    # HTTP: the body's JSON
    Kind(
        "malformed JSON",
        "HTTP",
        "`{nope` as application/json",
        Expected(400, "invalid_request"),
        post(content=b"{nope"),
    ),
    Kind(
        "empty body",
        "HTTP",
        "no body at all, as application/json",
        Expected(400, "invalid_request"),
        post(content=b""),
    ),
    Kind(
        "body not UTF-8",
        "HTTP",
        "an ask whose question holds the byte 0xff",
        Expected(400, "invalid_request"),
        post(content=body_with('"caf\xff"').replace("\xff".encode(), b"\xff")),
    ),
    Kind(
        "body not an object",
        "HTTP",
        'a JSON array `["question"]`',
        Expected(400, "invalid_request"),
        post(body=["question"]),
    ),
    Kind(
        "duplicate keys",
        "HTTP",
        "`question` twice in one object (which one wins is up to the parser: refused)",
        Expected(400, "invalid_request"),
        post(content=body_with('"first", "question": "second"')),
    ),
    Kind(
        "deeply nested JSON",
        "HTTP",
        "10,000 nested arrays (more than 32 levels is refused)",
        Expected(400, "invalid_request"),
        post(content=nested_body(10_000)),
    ),
    Kind(
        "nested JSON in a field",
        "HTTP",
        "`question` holding 500 nested arrays",
        Expected(400, "invalid_request"),
        post(content=deep_json(500)),
    ),
    Kind(
        "huge max_tokens",
        "HTTP",
        "`max_tokens: 10**30`",
        Expected(400, "max_tokens_exceeded"),
        post(body={**QUESTION, "max_tokens": 10**30}),
    ),
    Kind(
        "negative max_tokens",
        "HTTP",
        "`max_tokens: -5`",
        Expected(400, "invalid_request"),
        post(body={**QUESTION, "max_tokens": -5}),
    ),
    Kind(
        "fractional max_tokens",
        "HTTP",
        "`max_tokens: 2.5`",
        Expected(400, "invalid_request"),
        post(body={**QUESTION, "max_tokens": 2.5}),
    ),
    Kind(
        "max_tokens out of float range",
        "HTTP",
        "`max_tokens: 1e400` (infinite as a double)",
        Expected(400, "invalid_request"),
        post(content=body_with('"q", "max_tokens": 1e400')),
    ),
    Kind(
        "NaN",
        "HTTP",
        "`max_tokens: NaN` (not JSON, though Python reads it)",
        Expected(400, "invalid_request"),
        post(content=body_with('"q", "max_tokens": NaN')),
    ),
    Kind(
        "NUL in a string",
        "HTTP",
        "a question with `\\u0000` in it, on `POST /v1/ask/stream`",
        Expected(400, "invalid_request"),
        post("/v1/ask/stream", content=body_with('"idle\\u0000timeout"')),
    ),
    Kind(
        "lone surrogate in a string",
        "HTTP",
        "a question with `\\ud800` and no low surrogate after it",
        Expected(400, "invalid_request"),
        post("/v1/ask/stream", content=body_with('"idle\\ud800timeout"')),
    ),
    Kind(
        "control characters in a string",
        "HTTP",
        "a question with BEL, ESC and a tab (text like any other)",
        Expected(200),
        streamed({**QUESTION, "question": "How long\x07 can a\x1b[2J connection\tstay idle?"}),
    ),
    Kind(
        "right-to-left marks in a string",
        "HTTP",
        "a question with U+200F and U+202E (Hebrew and Arabic text need them)",
        Expected(200),
        streamed({**QUESTION, "question": "\u200fHow long can a\u202e connection stay idle?"}),
    ),
    Kind(
        "emoji as an escaped surrogate pair",
        "HTTP",
        "a question with `\\ud83d\\ude00` (a pair is one character, not a lone surrogate)",
        Expected(200),
        streamed_bytes(body_with('"How long can a connection stay idle? \\ud83d\\ude00"')),
    ),
    Kind(
        "unknown field",
        "HTTP",
        "an ask with `temperature: 0.2`",
        Expected(400, "invalid_request"),
        post(body={**QUESTION, "temperature": 0.2}),
    ),
    Kind(
        "path traversal in document_id",
        "HTTP",
        '`document_id: "../../etc/passwd"`',
        Expected(400, "invalid_request"),
        post(body={"question": "q", "document_id": "../../etc/passwd"}),
    ),
    # HTTP: the request's head
    Kind(
        "wrong content type",
        "HTTP",
        "the ask as `text/plain`",
        Expected(415, "unsupported_media_type"),
        post(body=QUESTION, headers={"Content-Type": "text/plain"}),
    ),
    Kind(
        "missing content type",
        "HTTP",
        "the ask with no Content-Type",
        Expected(415, "unsupported_media_type"),
        post(body=QUESTION, headers={"Content-Type": None}),
    ),
    Kind(
        "missing key",
        "HTTP",
        "no Authorization header",
        Expected(401, "unauthorized"),
        post(body=QUESTION, headers={"Authorization": None}),
    ),
    Kind(
        "empty key",
        "HTTP",
        "`Authorization: Bearer ` with nothing after it",
        Expected(401, "unauthorized"),
        raw(
            raw_request(HEAD + b"Content-Length: %d\r\n" % len(GOOD_BODY), GOOD_BODY).replace(
                f"Bearer {API_KEY}".encode(), b"Bearer "
            )
        ),
    ),
    Kind(
        "wrong key",
        "HTTP",
        "`Authorization: Bearer wrong`",
        Expected(401, "unauthorized"),
        post(body=QUESTION, headers={"Authorization": "Bearer wrong"}),
    ),
    Kind(
        "key in the query string",
        "HTTP",
        "`?api_key=<a valid key>` and no header (never echoed)",
        Expected(401, "unauthorized"),
        post(f"/v1/ask?api_key={API_KEY}", body=QUESTION, headers={"Authorization": None}),
    ),
    Kind(
        "64 KB Authorization header",
        "HTTP",
        "raw socket: `Authorization: Bearer` and 64 KB of key",
        Expected(431, "headers_too_large"),
        raw(
            b"GET /v1/documents HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer "
            + b"k" * 65536
            + b"\r\n\r\n"
        ),
        owner=HARDENING,
    ),
    Kind(
        "unsupported method",
        "HTTP",
        "`DELETE /v1/ask`",
        Expected(405, "method_not_allowed"),
        post(method="DELETE"),
    ),
    Kind(
        "unknown method",
        "HTTP",
        "raw socket: `BREW /v1/ask` (the HTTP parser refuses the method)",
        Expected(400, "invalid_request"),
        raw(raw_request(b"BREW /v1/ask HTTP/1.1\r\nContent-Length: 0\r\n")),
        owner=HARDENING,
    ),
    Kind(
        "unknown path",
        "HTTP",
        "`POST /v2/nothing`",
        Expected(404, "not_found"),
        post("/v2/nothing", body=QUESTION),
    ),
    Kind(
        "path traversal in the path",
        "HTTP",
        "`GET /v1/documents/..%2f..%2fetc%2fpasswd`",
        Expected(404, "not_found"),
        post("/v1/documents/..%2f..%2fetc%2fpasswd", method="GET"),
    ),
    Kind(
        "Last-Event-ID with CR/LF",
        "HTTP",
        "raw socket: `Last-Event-ID: 3` followed by a bare CR and another header",
        Expected(400, "invalid_request"),
        raw(
            raw_request(
                b"POST /v1/ask/stream HTTP/1.1\r\nLast-Event-ID: 3\rX-Injected: 1\r\n"
                + b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(GOOD_BODY)}\r\n".encode(),
                GOOD_BODY,
            )
        ),
        owner=HARDENING,
    ),
    # WebSocket: frames and messages
    Kind(
        "binary frame",
        "WebSocket",
        "a binary frame",
        Expected(code="invalid_request"),
        frames(b"\x00\x01"),
    ),
    Kind(
        "invalid UTF-8",
        "WebSocket",
        "a text frame whose bytes are not UTF-8 (RFC 6455 fails the connection)",
        Expected(close=1007),
        invalid_utf8_text_frame,
    ),
    Kind(
        "oversized message",
        "WebSocket",
        "a message above `ws_max_message_bytes` (1000 here), under twice it",
        Expected(code="request_too_large", close=1009),
        frames({**ASK, "question": "x" * 1500}),
        {"ws_max_message_bytes": 1000},
    ),
    Kind(
        "far oversized message",
        "WebSocket",
        "a message above twice `ws_max_message_bytes`: the server refuses it unread, no `error`",
        Expected(close=1009),
        frames({**ASK, "question": "x" * 5000}),
        {"ws_max_message_bytes": 1000},
    ),
    Kind(
        "fragmented message",
        "WebSocket",
        "a `ping` sent in three fragments (reassembled: answered)",
        Expected(),
        frames(['{"type"', ': "pi', 'ng"}']),
    ),
    Kind(
        "fragmented oversized message",
        "WebSocket",
        "14 fragments of 100 bytes, over `ws_max_message_bytes` (1000 here) together",
        Expected(code="request_too_large", close=1009),
        frames(['{"type": "ping", "x": "', *["x" * 100] * 14, '"}']),
        {"ws_max_message_bytes": 1000},
    ),
    Kind(
        "invalid JSON",
        "WebSocket",
        "`{nope`",
        Expected(code="invalid_request"),
        frames("{nope"),
    ),
    Kind(
        "deeply nested JSON message",
        "WebSocket",
        "10,000 nested arrays",
        Expected(code="invalid_request"),
        frames(nested_body(10_000).decode()),
    ),
    Kind(
        "duplicate keys in a message",
        "WebSocket",
        "an ask with `question` twice",
        Expected(code="invalid_request"),
        frames(ask_text('"first", "question": "second"')),
    ),
    Kind(
        "NUL in a question",
        "WebSocket",
        "an ask whose question holds `\\u0000` (refused before any `start`)",
        Expected(code="invalid_request"),
        frames(ask_text('"idle\\u0000timeout"')),
    ),
    Kind(
        "lone surrogate in a question",
        "WebSocket",
        "an ask whose question holds `\\udc00` (refused before any `start`)",
        Expected(code="invalid_request"),
        frames(ask_text('"idle\\udc00timeout"')),
    ),
    Kind(
        "right-to-left marks in a question",
        "WebSocket",
        "an ask with U+200F and U+202E in its question",
        Expected(),
        frames({**ASK, "question": "\u200fHow long can a\u202e connection stay idle?"}),
    ),
    Kind(
        "unknown type",
        "WebSocket",
        '`{"type": "hello"}`',
        Expected(code="invalid_request"),
        frames({"type": "hello", "id": "h1"}),
    ),
    Kind(
        "missing id",
        "WebSocket",
        "an ask without `id`",
        Expected(code="invalid_request"),
        frames({key: value for key, value in ASK.items() if key != "id"}),
    ),
    Kind(
        "duplicate id",
        "WebSocket",
        "a second ask with the id of the answer still streaming",
        Expected(code="busy"),
        ask_while_streaming_with_same_id,
        {"fake_tokens_per_second": 20.0},
    ),
    Kind(
        "cancel for an unknown id",
        "WebSocket",
        '`{"type": "cancel", "id": "nope"}` with nothing streaming',
        Expected(code="invalid_request"),
        frames({"type": "cancel", "id": "nope"}),
    ),
    Kind(
        "message flood",
        "WebSocket",
        "12 messages at once, over a burst of 3 (then the client waits as told)",
        Expected(code="rate_limited"),
        frames(*[{"type": "ping"}] * 12, stop_at={"error"}),
        {"ws_messages_per_second": 20.0, "ws_message_burst": 3, "ws_rate_limited_before_close": 50},
    ),
    Kind(
        "ping flood",
        "WebSocket",
        "200 pings at once, and on while rate limited",
        Expected(code="rate_limited", close=1008),
        frames(*[{"type": "ping"}] * 200, stop_at={"error"}),
    ),
    # WebSocket: the handshake
    Kind(
        "no credentials",
        "WebSocket",
        "no Authorization header and no ticket",
        Expected(code="unauthorized", close=4401),
        frames({"type": "ping"}, key=None),
    ),
    Kind(
        "key in the query string",
        "WebSocket",
        "`?api_key=<a valid key>` and no header",
        Expected(code="unauthorized", close=4401),
        frames({"type": "ping"}, key=None, query=f"?api_key={API_KEY}"),
    ),
    Kind(
        "reused ticket",
        "WebSocket",
        "a ticket that already opened a connection",
        Expected(code="unauthorized", close=4401),
        with_ticket(reused_ticket),
    ),
    Kind(
        "expired ticket",
        "WebSocket",
        "a ticket used after its lifetime (`ws_ticket_seconds`, 0.05 s here)",
        Expected(code="unauthorized", close=4401),
        with_ticket(expired_ticket),
        {"ws_ticket_seconds": 0.05},
    ),
    Kind(
        "foreign ticket",
        "WebSocket",
        "a ticket issued by another gateway that shares no store with this one",
        Expected(code="unauthorized", close=4401),
        with_ticket(foreign_ticket),
    ),
    Kind(
        "foreign Origin",
        "WebSocket",
        "`Origin: https://evil.example` on the handshake (refused before accept)",
        Expected(status=403, code="origin_not_allowed"),
        frames({"type": "ping"}, headers={"Origin": "https://evil.example"}),
        owner=SECURITY,
    ),
    Kind(
        "hundreds of connections from one key",
        "WebSocket",
        "200 connections held open at once, above `ws_max_connections_per_key` (8)",
        Expected(code="rate_limited", close=1013),
        many_connections,
    ),
]
