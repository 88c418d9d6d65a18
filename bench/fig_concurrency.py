"""500 SSE streams and 500 WebSocket chats at 100 tokens/s each, on one worker.

What it means: every stream's deltas must arrive complete and in order (indexes 0..n-1), and
the gap between two tokens of one stream, as the client sees it, shows whether the one event
loop keeps up: at 100 tokens/s a token is due every 10 ms, so a p99 gap of 50 ms means one
token in a hundred arrives five intervals late. Peak server memory (VmHWM) is what the server
needed for the whole round.
Why these targets: losing or reordering a token is a broken answer (0); 50 ms is below what a
reader notices in text that appears word by word. 500 concurrent streams is a busy single
instance; the figure shows whether one worker carries it.

The clients are asyncio protocols on raw sockets in one process on CPU 1, so no client library's
per-message cost is counted; the client's CPU share is recorded to show it was not the limit.

What it took (2026-11-29, the course VM, server CPU per token delivered at 500 streams, runs
of three rounds, noisy to +-20%): an SSE answer's events used to wake two tasks per token, the
answer's maker and its reader, the reader under the app's whole middleware and routing stack
(about 20 coroutines resumed per token): 87-95 us per token, a p99 gap of 80-100 ms. Now the
maker hands each event to its waiting reader's connection itself (wire_sse.DirectWrite,
server_bounds.WRITE_BODY: written once per loop turn, past the ASGI layers), and the chat
sends its messages straight to its connection when they need not wait (SEND_TEXT): 39-57 us
per SSE token. Both still fill the server's one core at 500 streams (they leave it 20 us per
token, and the loopback write alone measured 11-18 us here), so the p50 gap is above 10 ms;
the p99 gap is what a reader sees of that. A second worker needs a core of its own
(fig_workers).
"""

from __future__ import annotations

import asyncio
import statistics
import time

from bench import wire
from bench.process import cpu_seconds, run_queue_wait, server, status_kib

STREAMS = 500
TOKENS = 200  # per stream: 2 s at 100 tokens/s; the runaway model is cut at max_tokens
ROUNDS = 3
CONNECT_AT_ONCE = 50
ROUND_SECONDS = 60.0


class Stream(asyncio.Protocol):
    """One SSE stream or one chat over a raw socket, recording when each delta arrived."""

    def __init__(self, kind: str, port: int, ask_id: str) -> None:
        self.kind, self.port, self.ask_id = kind, port, ask_id
        self.buffer = bytearray()
        self.upgraded = kind == "sse"
        self.ready = asyncio.get_running_loop().create_future()
        self.done = asyncio.get_running_loop().create_future()
        self.indexes: list[int] = []
        self.times: list[float] = []
        self.terminal = b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        if self.kind == "ws":
            transport.write(wire.ws_handshake("/v1/chat", self.port))
        else:
            self.ready.set_result(None)

    def go(self) -> None:
        if self.kind == "ws":
            self.transport.write(wire.ws_frame(wire.ws_ask(self.ask_id, TOKENS)))
        else:
            self.transport.write(wire.sse_request("gateway", self.port, TOKENS))

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buffer += data
        if not self.upgraded:
            if b"\r\n\r\n" not in self.buffer:
                return
            head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
            self.upgraded = True
            self.buffer = bytearray(rest)
            if not head.startswith(b"HTTP/1.1 101"):
                self.finish(head)
            self.ready.set_result(None)
        if self.kind == "ws":
            messages = [payload for _opcode, payload in wire.ws_frames(self.buffer)]
        else:
            cut = self.buffer.rfind(b"\n\n")
            if cut < 0:
                return
            messages = bytes(self.buffer[: cut + 2]).split(b"\n\n")
            del self.buffer[: cut + 2]
        for message in messages:
            found = wire.INDEX.search(message)
            if found and b"delta" in message:
                self.indexes.append(int(found[1]))
                self.times.append(now)
            elif wire.TERMINAL.search(message):
                self.finish(message)

    def finish(self, terminal: bytes) -> None:
        if not self.done.done():
            self.terminal = terminal
            self.done.set_result(None)
        self.transport.close()

    def connection_lost(self, exc) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before it was ready"))
        if not self.done.done():
            self.done.set_result(None)


async def open_streams(kind: str, port: int, round_no: int) -> list[Stream]:
    loop, gate = asyncio.get_running_loop(), asyncio.Semaphore(CONNECT_AT_ONCE)

    async def one(n: int) -> Stream:
        async with gate:
            _, stream = await loop.create_connection(
                lambda: Stream(kind, port, f"r{round_no}s{n}"), "127.0.0.1", port
            )
            await stream.ready
            return stream

    return list(await asyncio.gather(*(one(n) for n in range(STREAMS))))


async def one_round(kind: str, port: int, pid: int, round_no: int) -> dict:
    streams = await open_streams(kind, port, round_no)
    server_before, client_before = cpu_seconds(pid), time.process_time()
    waited_before = run_queue_wait(pid) + run_queue_wait("self")
    started = time.perf_counter()
    for stream in streams:
        stream.go()
    async with asyncio.timeout(ROUND_SECONDS):
        await asyncio.gather(*(stream.done for stream in streams))
    wall = time.perf_counter() - started
    gaps, lost, reordered, bad_ends = [], 0, 0, 0
    for stream in streams:
        lost += max(0, TOKENS - len(set(stream.indexes)))
        reordered += sum(1 for at, index in enumerate(stream.indexes) if index != at)
        gaps.extend((b - a) * 1e3 for a, b in zip(stream.times, stream.times[1:], strict=False))
        bad_ends += b"max_tokens" not in stream.terminal
        stream.transport.close()
    return {
        "wall_s": wall,
        "gap_p50_ms": statistics.median(gaps),
        "gap_p99_ms": statistics.quantiles(gaps, n=100, method="inclusive")[98],
        "gap_max_ms": max(gaps),
        "lost": lost,
        "reordered": reordered,
        "bad_ends": bad_ends,
        "server_cores": (cpu_seconds(pid) - server_before) / wall,
        "client_cores": (time.process_time() - client_before) / wall,
        "run_queue_wait_ms": (run_queue_wait(pid) + run_queue_wait("self") - waited_before) * 1e3,
    }


async def rounds(kind: str) -> dict:
    with server("gateway-stream") as (port, pid):
        runs = [await one_round(kind, port, pid, n) for n in range(ROUNDS)]
        peak_mib = status_kib(pid, "VmHWM") / 1024
    return {
        "streams": STREAMS,
        "tokens_per_stream": TOKENS,
        "rounds": runs,
        "lost": sum(r["lost"] for r in runs),
        "reordered": sum(r["reordered"] for r in runs),
        "bad_ends": sum(r["bad_ends"] for r in runs),
        "gap_p50_ms": statistics.median(r["gap_p50_ms"] for r in runs),
        "gap_p99_ms": statistics.median(r["gap_p99_ms"] for r in runs),
        "server_cores": statistics.median(r["server_cores"] for r in runs),
        "client_cores": statistics.median(r["client_cores"] for r in runs),
        "run_queue_wait_ms": statistics.median(r["run_queue_wait_ms"] for r in runs),
        "server_peak_mib": peak_mib,
    }


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed, as uvicorn uses it: the cheapest client loop there is."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def measure() -> dict:
    with asyncio.Runner(loop_factory=new_loop) as runner:
        return {"sse": runner.run(rounds("sse")), "ws": runner.run(rounds("ws"))}
