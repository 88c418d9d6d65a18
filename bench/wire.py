"""What the raw-socket clients send and how they read the answers, with no client library.

Throughput clients speak HTTP/1.1 and WebSocket by hand: a library's per-message cost would
land on the client's CPU and could make the client, not the server, the bottleneck.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import struct
import time

from bench.servers import API_KEY

DOCUMENT = "api-gateway-websocket-limits"
QUESTION = "How long can a connection stay idle?"
INDEX = re.compile(rb'"index":\s*(\d+)')
TERMINAL = re.compile(rb'"type":\s*"(end|error)"|event: (end|error)\n')
CHUNKED_END = b"\r\n0\r\n\r\n"


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


# --- SSE over HTTP/1.1 ------------------------------------------------------------------------


def ask_body(max_tokens: int) -> bytes:
    return json.dumps(
        {"question": QUESTION, "document_id": DOCUMENT, "max_tokens": max_tokens}
    ).encode()


def sse_request(kind: str, port: int, tokens: int) -> bytes:
    """The request for one stream of `tokens` deltas: a baseline's GET or the gateway's POST."""
    if not kind.startswith("gateway"):
        return f"GET /stream?n={tokens} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    body = ask_body(tokens)
    return (
        f"POST /v1/ask/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def sse_once(sock: socket.socket, payload: bytes) -> tuple[float, float]:
    """Send one request; return (seconds to the first delta, seconds to the end of the body).

    Every server answers with chunked transfer encoding, whose last chunk is `0\\r\\n\\r\\n`."""
    started = time.perf_counter()
    sock.sendall(payload)
    tail, first = b"", None
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        tail = tail[-64:] + chunk
        if first is None and b"event: delta" in tail:
            first = time.perf_counter() - started
        if tail.endswith(CHUNKED_END):
            return first or 0.0, time.perf_counter() - started


# --- WebSocket (RFC 6455) -----------------------------------------------------------------------


def ws_handshake(path: str, port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {API_KEY}\r\n\r\n"
    ).encode()


def ws_frame(text: str | bytes, opcode: int = 0x1) -> bytes:
    """One masked client frame (a client must mask; a zero mask leaves the payload as it is)."""
    payload = text.encode() if isinstance(text, str) else text
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return header + b"\0\0\0\0" + payload


def ws_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Take every complete server frame (unmasked) off the front of `buffer`: (opcode, payload)."""
    frames, at = [], 0
    while len(buffer) - at >= 2:
        opcode, size = buffer[at] & 0x0F, buffer[at + 1] & 0x7F
        start = at + 2
        if size == 126:
            if len(buffer) - at < 4:
                break
            size, start = struct.unpack_from("!H", buffer, at + 2)[0], at + 4
        elif size == 127:
            if len(buffer) - at < 10:
                break
            size, start = struct.unpack_from("!Q", buffer, at + 2)[0], at + 10
        if len(buffer) < start + size:
            break
        frames.append((opcode, bytes(buffer[start : start + size])))
        at = start + size
    del buffer[:at]
    return frames


def ws_open(port: int, path: str) -> tuple[socket.socket, bytearray]:
    """Connect and upgrade; return the socket and whatever arrived after the 101 response."""
    sock = connect(port)
    sock.sendall(ws_handshake(path, port))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("the server closed the connection during the handshake")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"the upgrade was refused: {head[:80]!r}")
    return sock, bytearray(rest)


def ws_ask(ask_id: str, max_tokens: int) -> str:
    message = {
        "type": "ask",
        "id": ask_id,
        "question": QUESTION,
        "document_id": DOCUMENT,
        "max_tokens": max_tokens,
    }
    return json.dumps(message)


def ws_once(sock: socket.socket, message: str) -> float:
    """Send one message; return the seconds until a frame saying `end` or `error` arrived."""
    started = time.perf_counter()
    sock.sendall(ws_frame(message))
    buffer = bytearray()
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        buffer += chunk
        for _opcode, payload in ws_frames(buffer):
            if TERMINAL.search(payload):
                return time.perf_counter() - started
