"""`make bench`: the gateway's speed targets, measured against a bare sse-starlette endpoint.

Targets (issue: reference gateway):
- per-token server cost with every limit on <= 1.3x the bare endpoint;
- time to first token added by the gateway <= 0.5 ms p50.
Both servers run in one session on this machine, each in its own process pinned to CPU 0,
with a raw-socket client on CPU 1, so only the ratio and the difference are compared.

The gateway can come out below 1.0: the bare endpoint is sse-starlette as it ships, which wraps
every send in a cancel scope (a few µs per event, even with no timeout set), while the gateway
keeps its send timeout on one watchdog timer instead (wire_sse.WatchedEventSourceResponse).
Results go to .bench/results.json; the exit status is 1 when a target is missed.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKENS = 20_000
ROUNDS = 3
TTFT_SAMPLES = 300
BODY = json.dumps(
    {
        "question": "What is the idle timeout?",
        "document_id": "api-gateway-websocket-limits",
        "max_tokens": TOKENS,
    }
).encode()


def start(kind: str) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "servers.py"), kind],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    return process, int(process.stdout.readline())


def request(kind: str, port: int, tokens: int) -> bytes:
    if kind == "bare":
        return (f"GET /stream?n={tokens} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").encode()
    body = BODY.replace(str(TOKENS).encode(), str(tokens).encode())
    return (
        f"POST /v1/ask/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer bench-key\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def stream_once(sock: socket.socket, payload: bytes) -> tuple[float, float]:
    """Send one request; return (seconds to the first delta, seconds to the end of the body).

    Both servers answer with chunked transfer encoding, whose last chunk is `0\\r\\n\\r\\n`."""
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
        if tail.endswith(b"\r\n0\r\n\r\n"):
            return first or 0.0, time.perf_counter() - started


def connect(port: int, timeout: float = 20.0) -> socket.socket:
    """Connect once the server listens (it prints its port just before it starts serving)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port))
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def measure(kind: str) -> dict[str, float]:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    process, port = start(kind)
    try:
        per_token = []
        for _ in range(ROUNDS):
            with connect(port) as sock:
                _, total = stream_once(sock, request(kind, port, TOKENS))
            per_token.append(total / TOKENS * 1e6)
        ttft = []
        with connect(port) as sock:
            for _ in range(TTFT_SAMPLES):
                first, _ = stream_once(sock, request(kind, port, 1))
                ttft.append(first * 1e3)
        return {
            "us_per_token": statistics.median(per_token),
            "ttft_p50_ms": statistics.median(ttft),
            "ttft_p99_ms": statistics.quantiles(ttft, n=100)[98],
        }
    finally:
        process.kill()
        process.wait()


def main() -> int:
    bare, gateway = measure("bare"), measure("gateway")
    ratio = gateway["us_per_token"] / bare["us_per_token"]
    added = gateway["ttft_p50_ms"] - bare["ttft_p50_ms"]
    checks = {"per-token cost ratio <= 1.3": ratio <= 1.3, "TTFT added p50 <= 0.5 ms": added <= 0.5}
    print(f"{'':24}{'bare sse-starlette':>20}{'gateway':>12}")
    print(f"{'µs per token':24}{bare['us_per_token']:>20.1f}{gateway['us_per_token']:>12.1f}")
    print(f"{'TTFT p50 ms':24}{bare['ttft_p50_ms']:>20.3f}{gateway['ttft_p50_ms']:>12.3f}")
    print(f"{'TTFT p99 ms':24}{bare['ttft_p99_ms']:>20.3f}{gateway['ttft_p99_ms']:>12.3f}")
    print(f"per-token ratio {ratio:.2f}, TTFT added {added:.3f} ms")
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'MISSED'}] {name}")
    out = ROOT / ".bench"
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(
        json.dumps(
            {
                "bare": bare,
                "gateway": gateway,
                "ratio": ratio,
                "ttft_added_ms": added,
                "targets_met": all(checks.values()),
            },
            indent=2,
        )
    )
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
