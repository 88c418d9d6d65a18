"""Limit precision: when a stream cut by a limit really ends, against the setting.

What it means: the gateway is set with a stream limit (max_stream_seconds = 1 s, the model never
stopping) and, separately, an idle timeout (0.5 s, the model silent after three tokens). The
client times, over SSE and WebSocket, from sending the request (stream limit) or from the last
token (idle timeout) to the terminal event, and the figure is the largest difference from the
setting, over every sample.
Why the target (within 50 ms): a limit is a promise to the operator about cost and to the client
about when an answer ends; a timer that drifts by more than a few event-loop turns is broken.
"""

from __future__ import annotations

import statistics
import time

from bench import wire
from bench.process import server
from bench.servers import LIMIT_IDLE_SECONDS, LIMIT_STREAM_SECONDS

SAMPLES = 4


def read_to_terminal(sock, buffer: bytes) -> tuple[float | None, float]:
    """Read until the terminal event; return (time the third token arrived, time it ended)."""
    third = None
    sock.settimeout(10)
    while True:
        if third is None and b'"index":2' in buffer:
            third = time.perf_counter()
        if wire.TERMINAL.search(buffer):
            return third, time.perf_counter()
        chunk = sock.recv(1 << 16)
        if not chunk:
            return third, time.perf_counter()
        buffer = buffer[-2048:] + chunk  # a terminal event is shorter than this


def one(kind: str, port: int, n: int, idle: bool) -> float:
    """Seconds the stream lasted past its starting point, for one stream."""
    if kind == "sse":
        sock, buffer = wire.connect(port), b""
        started = time.perf_counter()
        sock.sendall(wire.sse_request("gateway", port, 1_000_000))
    else:
        sock, pending = wire.ws_open(port, "/v1/chat")
        buffer = bytes(pending)
        started = time.perf_counter()
        sock.sendall(wire.ws_frame(wire.ws_ask(f"limit{n}", 1_000_000)))
    with sock:
        third, ended = read_to_terminal(sock, buffer)
    return ended - (third if idle else started)


def precision(limit: str) -> dict:
    idle = limit == "idle"
    setting = LIMIT_IDLE_SECONDS if idle else LIMIT_STREAM_SECONDS
    with server("gateway-cut-idle" if idle else "gateway-cut-stream") as (port, _pid):
        lasted = []
        for kind in ("sse", "ws"):
            one(kind, port, 0, idle)  # the first stream of each kind warms up, uncounted
            lasted += [one(kind, port, n, idle) for n in range(1, SAMPLES + 1)]
    errors_ms = [(seconds - setting) * 1e3 for seconds in lasted]
    return {
        "setting_s": setting,
        "samples": len(errors_ms),
        "errors_ms": errors_ms,
        "median_ms": statistics.median(errors_ms),
        "worst_ms": max(errors_ms, key=abs),
    }


def measure() -> dict:
    return {"stream": precision("stream"), "idle": precision("idle")}
