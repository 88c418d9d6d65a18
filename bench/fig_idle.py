"""Server memory per idle SSE stream and per idle WebSocket chat.

What it means: the server's resident memory (VmRSS) before and after opening many connections
that wait, divided by their number. An idle SSE stream is an answer whose model has gone quiet
(the stalling model, after three tokens); an idle chat is an authenticated WebSocket with nothing
asked. Both are checked alive at the end (the stream still open, the chat answering a ping).
Why the target (<= 40 KiB): chat users leave tabs open and models pause; a gateway instance
should hold tens of thousands of waiting clients in a few hundred MiB.
"""

from __future__ import annotations

import socket
import time

from bench import wire
from bench.process import server, status_kib

CONNECTIONS = 500
WARM_UP = 20
READ_SECONDS = 30.0


def settled_rss(pid: int, deadline_seconds: float = 5.0) -> int:
    """VmRSS once two readings 0.2 s apart agree (the server may still be finishing work)."""
    previous, deadline = status_kib(pid, "VmRSS"), time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)
        current = status_kib(pid, "VmRSS")
        if current == previous:
            break
        previous = current
    return previous


def read_until(sock: socket.socket, marker: bytes, buffer: bytes = b"") -> bytes:
    sock.settimeout(READ_SECONDS)
    while marker not in buffer:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        buffer += chunk
    return buffer


def open_sse(port: int, count: int) -> list[socket.socket]:
    """`count` streams, each once its model went quiet after its third token (index 2)."""
    socks = [wire.connect(port) for _ in range(count)]
    for sock in socks:
        sock.sendall(wire.sse_request("gateway", port, 1000))
    for sock in socks:
        read_until(sock, b'"index":2')
    return socks


def open_ws(port: int, count: int) -> list[socket.socket]:
    return [wire.ws_open(port, "/v1/chat")[0] for _ in range(count)]


def per_connection(kind: str) -> dict:
    opener = open_sse if kind == "sse" else open_ws
    server_kind = "gateway-stall" if kind == "sse" else "gateway-stream"
    with server(server_kind) as (port, pid):
        for sock in opener(port, WARM_UP):  # the first ones allocate what all later ones share
            sock.close()
        before = settled_rss(pid)
        socks = opener(port, CONNECTIONS)
        after = settled_rss(pid)
        alive = 0
        for sock in socks:
            if kind == "ws":
                sock.sendall(wire.ws_frame('{"type":"ping"}'))
                alive += b"pong" in read_until(sock, b"pong")
            else:  # an idle stream still open: no terminal event, the socket not closed
                sock.setblocking(False)
                try:
                    alive += b"event: " not in sock.recv(1 << 16)
                except BlockingIOError:
                    alive += 1
            sock.close()
    return {
        "connections": CONNECTIONS,
        "alive": alive,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": (after - before) / CONNECTIONS,
    }


def measure() -> dict:
    return {"sse": per_connection("sse"), "ws": per_connection("ws")}
