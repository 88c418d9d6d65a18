"""Cancel latency: from the moment the client is gone to the moment the model's stream stops.

What it means: a client that leaves (closes its socket, as a closed tab or a dropped phone
does) must stop the model at once, or the gateway pays for tokens nobody reads. Measured for
SSE and WebSocket, with the model emitting (100 tokens/s) and with the model stalled (silent
after three tokens, the hard case: no send can fail, so the server must notice the close itself).
The server runs the fake model inside a bench-only wrapper (bench/servers.py TimedModel) that
records when each stream was closed, on CLOCK_MONOTONIC like the client; the client reads the
records from a bench-only route once it has left.
Why the target (<= 5 ms p50): within a few milliseconds the model has produced at most one more
token; a stop that waits for the next token, or for a timeout, would cost the whole answer.
"""

from __future__ import annotations

import http.client
import json
import statistics
import time

from bench import wire
from bench.process import server
from bench.servers import API_KEY

SAMPLES = 30
WARM_UP = 5
STALL_SETTLE_SECONDS = 0.03  # after its third token the model waits one interval, then stalls
STOP_DEADLINE_SECONDS = 3.0  # a model not stopped by then counts as this late


def model_stops(port: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            "GET", "/bench/model-stops", headers={"Authorization": f"Bearer {API_KEY}"}
        )
        return json.loads(connection.getresponse().read())["stopped"]
    finally:
        connection.close()


def leave_once(kind: str, port: int, n: int, stalled: bool) -> float:
    """Start an answer, wait for its third token, leave; return the moment the socket closed."""
    if kind == "sse":
        sock = wire.connect(port)
        sock.sendall(wire.sse_request("gateway", port, 100_000))
        buffer = b""
    else:
        sock, pending = wire.ws_open(port, "/v1/chat")
        sock.sendall(wire.ws_frame(wire.ws_ask(f"leave{n}", 100_000)))
        buffer = bytes(pending)
    sock.settimeout(10)
    while b'"index":2' not in buffer:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise RuntimeError("the server closed the connection before the third token")
        buffer += chunk
    if stalled:
        time.sleep(STALL_SETTLE_SECONDS)  # let the model fall silent: the case under test
    gone = time.perf_counter()
    sock.close()
    return gone


def wait_for_stops(port: int, count: int) -> list[float]:
    """The model's stop records, once there are `count` (or the deadline passed)."""
    deadline = time.monotonic() + STOP_DEADLINE_SECONDS
    while True:
        stops = model_stops(port)
        if len(stops) >= count or time.monotonic() > deadline:
            return stops
        time.sleep(0.01)


def latency(kind: str, stalled: bool) -> dict:
    with server("gateway-stall" if stalled else "gateway-emit") as (port, _pid):
        to_stop = []
        for n in range(WARM_UP + SAMPLES):
            gone = leave_once(kind, port, n, stalled)
            stops = wait_for_stops(port, n + 1)
            late = (stops[n] - gone) if len(stops) > n else STOP_DEADLINE_SECONDS
            if n >= WARM_UP:
                to_stop.append(late * 1e3)
    return {
        "samples": len(to_stop),
        "p50_ms": statistics.median(to_stop),
        "p99_ms": statistics.quantiles(to_stop, n=100, method="inclusive")[98],
        "not_stopped": sum(1 for ms in to_stop if ms >= STOP_DEADLINE_SECONDS * 1e3),
    }


def measure() -> dict:
    return {
        f"{kind}_{model}": latency(kind, model == "stalled")
        for kind in ("sse", "ws")
        for model in ("emitting", "stalled")
    }
