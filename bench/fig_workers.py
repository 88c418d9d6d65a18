"""Limits shared in Redis, and several workers: what the one costs and what the other buys.

What it means:
- Redis: the gateway with every limit on and a model that costs nothing (bench/servers.py
  gateway-instant), its limits in its own memory and in a local Redis (gateway-instant-redis),
  side by side. Per request: the median time of a one-token stream, which meets the rate check,
  the admission and the release (three Redis round trips when shared). Per token: the server's
  cost per token of one long stream, where Redis is not asked at all. Both as a ratio against
  the in-memory mode, rounds taken in turn and the fastest kept, as for the cost figures.
- Workers: short streamed answers per second from `python -m course.serve --workers N` (what
  `make gateway` runs) against the same with one worker, many clients at once, each request on
  a new connection so the kernel hands them out among the workers.
Why no targets: the price of sharing is a round trip to a Redis on loopback here, the best case
(a Redis across a network costs its latency on every admission); and the workers need cores of
their own, which a two-core machine whose second core runs the clients does not have. Both are
shown so the trade-off is measured, not guessed; a bigger machine reads them for itself.
Without `redis-server` on PATH the Redis rows say so instead of a number.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time

from bench import fig_cost, wire
from bench.process import server
from bench.servers import API_KEY
from course import processes

REQUEST_SAMPLES = 200
ROUNDS = 5
WORKERS = 2
REQUESTS = 1500
CONCURRENCY = 32
ANSWER_TOKENS = 20
WARM_UP = 100
# The settings of the workers figure: every limit out of the way, a fast fake model.
WORKER_SETTINGS = {
    "GATEWAY_API_KEYS": API_KEY,
    "GATEWAY_RATE_LIMIT_RPS": "1000000",
    "GATEWAY_RATE_LIMIT_BURST": "1000000",
    "GATEWAY_TOKENS_PER_MINUTE": str(10**12),
    "GATEWAY_MAX_CONCURRENT_STREAMS": "100000",
    "GATEWAY_MAX_TOTAL_STREAMS": "100000",
    "GATEWAY_FAKE_TOKENS_PER_SECOND": "100000",
    "GATEWAY_FAKE_FIRST_TOKEN_SECONDS": "0",
}


# --- the cost of limits shared in Redis ----------------------------------------------------------


def request_round(port: int, samples: int) -> float:
    """Median milliseconds of one-token streams on one keep-alive connection."""
    with wire.connect(port) as sock:
        times = [
            wire.sse_once(sock, wire.sse_request("gateway", port, 1))[1] * 1e3
            for _ in range(samples)
        ]
    return statistics.median(times)


def redis_cost(samples: int = REQUEST_SAMPLES, rounds: int = ROUNDS) -> dict:
    """Per request and per token, the gateway with its limits in Redis against in memory.

    Rounds are taken in turn (memory, redis, memory, redis...) so a busy spell on the machine
    hits both alike, and the fastest round of each is kept; the first round warms up."""
    if processes.redis_server_path() is None:
        return {"available": False, "reason": "redis-server is not on PATH"}
    redis = processes.RedisServer(name="bench-redis").start()
    kinds = {"memory": "gateway-instant", "redis": "gateway-instant-redis"}
    per_request: dict[str, list[float]] = {mode: [] for mode in kinds}
    per_token: dict[str, list[float]] = {mode: [] for mode in kinds}
    try:
        with contextlib.ExitStack() as stack:
            ports = {
                mode: stack.enter_context(server(kind, env={"BENCH_REDIS_URL": redis.url}))[0]
                for mode, kind in kinds.items()
            }
            for _ in range(rounds + 1):
                for mode, port in ports.items():
                    per_request[mode].append(request_round(port, samples))
                    per_token[mode].append(fig_cost.sse_round("gateway", port))
    finally:
        redis.stop()
    request_ms = {mode: min(values[1:]) for mode, values in per_request.items()}
    us_per_token = {mode: min(values[1:]) for mode, values in per_token.items()}
    return {
        "available": True,
        "request_ms": request_ms,
        "us_per_token": us_per_token,
        "request_ratio": request_ms["redis"] / request_ms["memory"],
        "token_ratio": us_per_token["redis"] / us_per_token["memory"],
    }


# --- several workers against one ----------------------------------------------------------------


async def one_request(port: int) -> None:
    """One short streamed answer on a new connection, read to its last chunk."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(30):
            writer.write(wire.sse_request("gateway", port, ANSWER_TOKENS))
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"the gateway refused: {head.splitlines()[0]!r}")
            tail = b""
            while not tail.endswith(wire.CHUNKED_END):
                chunk = await reader.read(1 << 16)
                if not chunk:
                    raise RuntimeError("the gateway closed the connection mid-answer")
                tail = tail[-64:] + chunk
    finally:
        writer.close()


async def answers_per_second(port: int, requests: int, concurrency: int) -> float:
    """Answers per second from `concurrency` clients sending `requests` in all."""
    left = iter(range(requests))

    async def client() -> None:
        for _ in left:
            await one_request(port)

    await asyncio.gather(*(one_request(port) for _ in range(min(WARM_UP, requests))))
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


def throughput(workers: int, requests: int, concurrency: int) -> float:
    gateway = processes.WorkerGateway(
        workers, WORKER_SETTINGS, name=f"bench-workers-{workers}"
    ).start()
    try:
        return asyncio.run(answers_per_second(gateway.port, requests, concurrency))
    finally:
        gateway.stop()


def several_workers(
    workers: int = WORKERS, requests: int = REQUESTS, concurrency: int = CONCURRENCY
) -> dict:
    one = throughput(1, requests, concurrency)
    several = throughput(workers, requests, concurrency)
    return {
        "workers": workers,
        "cores": os.cpu_count(),
        "requests": requests,
        "concurrency": concurrency,
        "one_per_second": one,
        "several_per_second": several,
        "ratio": several / one,
    }


def measure() -> dict:
    return {"redis": redis_cost(), "workers": several_workers()}
