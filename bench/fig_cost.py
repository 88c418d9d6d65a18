"""Per-token server cost and time to first token, against the baselines, side by side.

What it means: the time a client waits for a long answer from a model that costs nothing is the
server's own cost per token; the same stream from sse-starlette as it ships, from a hand-written
SSE `StreamingResponse` (the floor: nothing a server can do is cheaper) and from the gateway,
with every limit on, gives the price of the gateway's checks as ratios.
Why these targets: a gateway whose checks cost more per token than the framework itself would
be the wrong design (<= 1.0x bare sse-starlette), and a floor of pure byte-pushing leaves room for
the limits, the guard and the contract's encoder, but not much (<= 1.6x the floor). Time to
first token added by the gateway (edge checks, admission, the guard's start) must stay far below
what a person or a model could notice (<= 0.3 ms p50): the model's own first token takes
hundreds of milliseconds. A bare WebSocket endpoint (accept, then send pre-encoded messages) is
WebSocket's floor, so the chat is held to the floor's target (<= 1.6x).

Each server runs alone in its own process on CPU 0, the client on CPU 1; only ratios and
differences between servers measured in the same run are compared.
"""

from __future__ import annotations

import statistics

from bench import wire
from bench.process import server

TOKENS = 20_000
ROUNDS = 5
TTFT_SAMPLES = 300
WARM_UP = 20
WS_TOKENS = 20_000


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def sse_server(kind: str) -> dict[str, float]:
    """µs per token (median of ROUNDS streams) and time to first token (ms) of one server."""
    with server(kind) as (port, _pid):
        with wire.connect(port) as sock:
            for _ in range(WARM_UP):
                wire.sse_once(sock, wire.sse_request(kind, port, 100))
            # First tokens first: on the gateway they were seen to slow down after long
            # streams, and a server fresh from warm-up is the fair comparison.
            ttft = [
                wire.sse_once(sock, wire.sse_request(kind, port, 1))[0] * 1e3
                for _ in range(TTFT_SAMPLES)
            ]
            per_token = []
            for _ in range(ROUNDS):
                _, total = wire.sse_once(sock, wire.sse_request(kind, port, TOKENS))
                per_token.append(total / TOKENS * 1e6)
    return {
        "us_per_token": statistics.median(per_token),
        "ttft_p50_ms": statistics.median(ttft),
        "ttft_p99_ms": percentile(ttft, 99),
    }


def ws_server(kind: str) -> dict[str, float]:
    """µs per token of one WebSocket server (median of ROUNDS answers on one connection)."""
    path = "/v1/chat" if kind.startswith("gateway") else "/chat"
    with server(kind) as (port, _pid):
        sock, _ = wire.ws_open(port, path)
        with sock:
            per_token = []
            for n in range(ROUNDS + 1):
                if kind.startswith("gateway"):
                    message = wire.ws_ask(f"cost{n}", WS_TOKENS)
                else:
                    message = str(WS_TOKENS)
                seconds = wire.ws_once(sock, message)
                if n:  # the first answer warms up
                    per_token.append(seconds / WS_TOKENS * 1e6)
    return {"us_per_token": statistics.median(per_token)}


def measure() -> dict:
    sse = {kind: sse_server(kind) for kind in ("sse-bare", "sse-floor", "gateway-instant")}
    ws = {kind: ws_server(kind) for kind in ("ws-bare", "gateway-instant")}
    gateway, bare = sse["gateway-instant"], sse["sse-bare"]
    return {
        "sse": sse,
        "ws": ws,
        "sse_ratio_bare": gateway["us_per_token"] / bare["us_per_token"],
        "sse_ratio_floor": gateway["us_per_token"] / sse["sse-floor"]["us_per_token"],
        "ws_ratio_bare": ws["gateway-instant"]["us_per_token"] / ws["ws-bare"]["us_per_token"],
        "ttft_added_p50_ms": gateway["ttft_p50_ms"] - bare["ttft_p50_ms"],
        "ttft_added_p99_ms": gateway["ttft_p99_ms"] - bare["ttft_p99_ms"],
    }
