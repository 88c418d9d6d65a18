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

Every server runs in its own process on CPU 0, all started together and measured in turn (only
one is busy at a time), the client on CPU 1; only ratios and differences between servers
measured in the same run are compared.
"""

from __future__ import annotations

import contextlib
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


def sse_ttft(kind: str, port: int) -> list[float]:
    """Milliseconds to the first delta of one-token streams, after a warm-up."""
    with wire.connect(port) as sock:
        for _ in range(WARM_UP):
            wire.sse_once(sock, wire.sse_request(kind, port, 100))
        return [
            wire.sse_once(sock, wire.sse_request(kind, port, 1))[0] * 1e3
            for _ in range(TTFT_SAMPLES)
        ]


def sse_round(kind: str, port: int) -> float:
    """µs per token of one long stream."""
    with wire.connect(port) as sock:
        _, total = wire.sse_once(sock, wire.sse_request(kind, port, TOKENS))
    return total / TOKENS * 1e6


def ws_round(kind: str, port: int, n: int) -> float:
    """µs per token of one long answer on a new connection."""
    gateway = kind.startswith("gateway")
    sock, _ = wire.ws_open(port, "/v1/chat" if gateway else "/chat")
    with sock:
        message = wire.ws_ask(f"cost{n}", WS_TOKENS) if gateway else str(WS_TOKENS)
        return wire.ws_once(sock, message) / WS_TOKENS * 1e6


def interleaved(servers: dict[str, int], one_round) -> dict[str, float]:
    """µs per token of each server: rounds taken in turn (a, b, c, a, b, c...), so a busy spell
    on the machine hits every server alike, and the fastest round of each, because other
    processes can only slow a round down, never speed it up. The first round warms up."""
    rounds: dict[str, list[float]] = {kind: [] for kind in servers}
    for n in range(ROUNDS + 1):
        for kind, port in servers.items():
            rounds[kind].append(one_round(kind, port, n))
    return {kind: min(values[1:]) for kind, values in rounds.items()}


def measure() -> dict:
    sse_kinds, ws_kinds = (
        ("sse-bare", "sse-floor", "gateway-instant"),
        ("ws-bare", "gateway-instant"),
    )
    with contextlib.ExitStack() as stack:
        ports = {kind: stack.enter_context(server(kind))[0] for kind in sse_kinds + ("ws-bare",)}
        # First tokens first: on the gateway they were seen to slow down after long streams,
        # and a server fresh from its warm-up is the fair comparison.
        ttft = {kind: sse_ttft(kind, ports[kind]) for kind in sse_kinds}
        sse_cost = interleaved(
            {kind: ports[kind] for kind in sse_kinds}, lambda kind, port, n: sse_round(kind, port)
        )
        ws_cost = interleaved({kind: ports[kind] for kind in ws_kinds}, ws_round)
    sse = {
        kind: {
            "us_per_token": sse_cost[kind],
            "ttft_p50_ms": statistics.median(ttft[kind]),
            "ttft_p99_ms": percentile(ttft[kind], 99),
        }
        for kind in sse_kinds
    }
    ws = {kind: {"us_per_token": ws_cost[kind]} for kind in ws_kinds}
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
