"""The WebSocket chat's speed targets (/v1/chat), one uvicorn worker.

Targets (issue: reference gateway):
- 200 concurrent chats at 100 tokens/s each: no token lost or reordered (delta indexes 0..n-1
  in every chat), p99 gap between two tokens <= 25 ms, measured from the client's receive times;
- an idle chat connection costs <= 40 KiB of server memory (VmRSS of the server process before
  and after opening many authenticated idle connections, divided by their number);
- cancel to model stopped <= 5 ms p50 with a stalled model. Measured at the client, from sending
  `cancel` to receiving `end` (stop_reason cancelled): the server stops the model before it sends
  `end`, so this is an upper bound. The moment the model stream stopped is also recorded in the
  server (same monotonic clock) and shown for comparison.

The gateway (bench/ws_servers.py) runs in its own process pinned to CPU 0, a fresh one per
target; this client is one asyncio process with many `websockets` connections, on CPU 1. The
machine is shared: a concurrency round in which the server or the client had to wait for a CPU
that another process held (schedstat run delay) is run again, and the gaps are judged on the
median of 3 clean rounds (see CLEAN_WAIT_MS, MAX_ROUNDS).
Loopback only. Results go to .bench/ws-results.json; the exit status is 1 when a target is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "bench-key"  # the key bench/ws_servers.py accepts
DOCUMENT = "api-gateway-websocket-limits"
QUESTION = "How long can a connection stay idle?"

CHATS = 200
TOKENS = 200  # per chat: 2 s at 100 tokens/s; the runaway model is cut at max_tokens
ROUNDS = 3  # clean rounds wanted: rounds in which other processes left the two CPUs alone
MAX_ROUNDS = 8  # a round another process competed in is run again, up to this many in all
# A round is clean when the server and the client together waited at most this long for a CPU
# (schedstat run delay). Quiet machine: 30-45 ms per round (kernel threads); another session's
# test run on the machine: 200-1,300 ms, and gap p99 30-50 ms instead of 12-15.
CLEAN_WAIT_MS = 100.0
IDLE_CONNECTIONS = 500
CANCEL_WARMUP = 10
CANCEL_SAMPLES = 100
STALL_SETTLE_SECONDS = (
    0.03  # after the 3rd token the model sleeps one interval (10 ms), then stalls
)
CONNECT_AT_ONCE = 50
PHASE_SECONDS = 60.0  # every phase gives up after this: the whole run stays bounded

GAP_P99_MS = 25.0
IDLE_KIB = 40.0
CANCEL_P50_MS = 5.0


# --- the server process ---------------------------------------------------------------------


def start(kind: str) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "ws_servers.py"), kind],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    line = process.stdout.readline()
    if not line.strip().isdigit():
        process.kill()
        process.wait()
        raise RuntimeError(f"the {kind} server did not start")
    port = int(line)
    deadline = time.monotonic() + 20  # it prints its port just before it starts listening
    while True:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return process, port
        except ConnectionRefusedError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                process.wait()
                raise
            time.sleep(0.05)


def status_kib(pid: int, field: str) -> int:
    """A memory field of /proc/<pid>/status (VmRSS, VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU time every process on the machine used so far (user, system, irq, steal)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def run_queue_wait(pid: int | str) -> float:
    """Seconds the threads of a process were ready to run but waited for a CPU (schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


# --- the client -----------------------------------------------------------------------------


async def open_chat(port: int) -> ClientConnection:
    return await connect(
        f"ws://127.0.0.1:{port}/v1/chat",
        additional_headers={"Authorization": f"Bearer {API_KEY}"},
        compression=None,
        proxy=None,  # loopback only, whatever the environment says about proxies
        ping_interval=None,
        max_queue=1024,
        open_timeout=10,
    )


async def open_chats(port: int, count: int) -> list[ClientConnection]:
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def one() -> ClientConnection:
        async with gate:
            return await open_chat(port)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def close_all(connections: list[ClientConnection]) -> None:
    await asyncio.gather(*(ws.close() for ws in connections), return_exceptions=True)


def ask(ask_id: str, max_tokens: int) -> str:
    message = {
        "type": "ask",
        "id": ask_id,
        "question": QUESTION,
        "document_id": DOCUMENT,
        "max_tokens": max_tokens,
    }
    return json.dumps(message)


async def stream_chat(ws: ClientConnection, ask_id: str, go: asyncio.Event) -> dict:
    """Ask once `go` is set; receive the whole answer with the receive time of every delta."""
    await go.wait()
    await ws.send(ask(ask_id, TOKENS))
    times: list[float] = []
    indexes: list[int] = []
    terminal = None
    async for raw in ws:
        now = time.perf_counter()
        message = json.loads(raw)
        kind = message["type"]
        if kind == "delta" and message["id"] == ask_id:
            times.append(now)
            indexes.append(message["index"])
        elif kind in ("end", "error"):
            terminal = message
            break
    return {"times": times, "indexes": indexes, "terminal": terminal}


async def concurrency_round(port: int, pid: int, round_no: int) -> dict:
    connections = await open_chats(port, CHATS)
    try:
        go = asyncio.Event()
        tasks = [
            asyncio.create_task(stream_chat(ws, f"r{round_no}c{n}", go))
            for n, ws in enumerate(connections)
        ]
        cpu_before, busy_before = cpu_seconds(pid), busy_seconds()
        client_before = time.process_time()
        waited_before = run_queue_wait(pid) + run_queue_wait("self")
        started = time.perf_counter()
        go.set()
        chats = await asyncio.gather(*tasks)
        wall = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu_before
        client = time.process_time() - client_before
        others = busy_seconds() - busy_before - cpu - client
        waited = run_queue_wait(pid) + run_queue_wait("self") - waited_before
    finally:
        await close_all(connections)
    gaps, lost, reordered, bad_ends = [], 0, 0, []
    for chat in chats:
        indexes, times = chat["indexes"], chat["times"]
        lost += max(0, TOKENS - len(set(indexes)))
        reordered += sum(1 for position, index in enumerate(indexes) if index != position)
        gaps.extend((b - a) * 1e3 for a, b in zip(times, times[1:], strict=False))
        terminal = chat["terminal"] or {}
        if terminal.get("type") != "end" or terminal.get("stop_reason") != "max_tokens":
            bad_ends.append(terminal)
    delivered = sum(len(chat["indexes"]) for chat in chats)
    return {
        "wall_s": wall,
        "gap_p50_ms": percentile(gaps, 50),
        "gap_p99_ms": percentile(gaps, 99),
        "gap_max_ms": max(gaps),
        "tokens": delivered,
        "lost": lost,
        "reordered": reordered,
        "bad_ends": len(bad_ends),
        "first_bad_end": bad_ends[0] if bad_ends else None,
        "server_cpu_us_per_token": cpu / max(delivered, 1) * 1e6,
        "server_cores": cpu / wall,
        "client_cores": client / wall,
        # Other processes on this 2-core machine compete with the server and the client.
        "other_cores": max(0.0, others / wall),
        # Time the server and the client were ready but another thread had their CPU.
        "run_queue_wait_ms": waited * 1e3,
    }


async def concurrency(port: int, pid: int) -> dict:
    await close_all([await open_chat(port)])  # warm up the server's import and caches
    runs: list[dict] = []
    while len(runs) < MAX_ROUNDS:
        async with asyncio.timeout(PHASE_SECONDS):
            runs.append(await concurrency_round(port, pid, len(runs)))
        if sum(r["run_queue_wait_ms"] <= CLEAN_WAIT_MS for r in runs) >= ROUNDS:
            break
    # Judge on the clean rounds; on a machine busy throughout, on every round (and say so).
    clean = [r for r in runs if r["run_queue_wait_ms"] <= CLEAN_WAIT_MS]
    rounds = clean or runs
    return {
        "chats": CHATS,
        "tokens_per_chat": TOKENS,
        "rounds": runs,
        "clean_rounds": len(clean),
        "gap_p99_ms": statistics.median(r["gap_p99_ms"] for r in rounds),
        "gap_p50_ms": statistics.median(r["gap_p50_ms"] for r in rounds),
        "gap_max_ms": max(r["gap_max_ms"] for r in rounds),
        "wall_s": statistics.median(r["wall_s"] for r in rounds),
        "lost": sum(r["lost"] for r in runs),
        "reordered": sum(r["reordered"] for r in runs),
        "bad_ends": sum(r["bad_ends"] for r in runs),
        "server_cpu_us_per_token": statistics.median(r["server_cpu_us_per_token"] for r in rounds),
        "server_cores": statistics.median(r["server_cores"] for r in rounds),
        "client_cores": statistics.median(r["client_cores"] for r in rounds),
        "other_cores_max": max(r["other_cores"] for r in runs),
        "server_peak_rss_mib": status_kib(pid, "VmHWM") / 1024,
    }


async def settled_rss(pid: int) -> int:
    """VmRSS once it stops moving (the server may still be finishing handshakes)."""
    await asyncio.sleep(0.5)
    previous = status_kib(pid, "VmRSS")
    for _ in range(20):
        await asyncio.sleep(0.2)
        current = status_kib(pid, "VmRSS")
        if current == previous:
            return current
        previous = current
    return previous


async def idle_memory(port: int, pid: int) -> dict:
    async with asyncio.timeout(PHASE_SECONDS):
        # Warm up: the first connections import and allocate what every later one shares.
        await close_all(await open_chats(port, 20))
        before = await settled_rss(pid)
        half = await open_chats(port, IDLE_CONNECTIONS // 2)
        middle = await settled_rss(pid)
        rest = await open_chats(port, IDLE_CONNECTIONS - len(half))
        after = await settled_rss(pid)
        connections = half + rest
        # Every connection is still open and authenticated: a ping must come back as a pong.
        await asyncio.gather(*(ws.send('{"type":"ping"}') for ws in connections))
        pongs = await asyncio.gather(*(ws.recv() for ws in connections))
        await close_all(connections)
    alive = sum(1 for raw in pongs if json.loads(raw).get("type") == "pong")
    return {
        "connections": IDLE_CONNECTIONS,
        "alive": alive,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": (after - before) / IDLE_CONNECTIONS,
        "kib_per_connection_second_half": (after - middle) / (IDLE_CONNECTIONS - len(half)),
    }


def model_stops(port: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            "GET", "/bench/model-stops", headers={"Authorization": f"Bearer {API_KEY}"}
        )
        return json.loads(connection.getresponse().read())["stopped"]
    finally:
        connection.close()


async def cancel_once(ws: ClientConnection, ask_id: str) -> tuple[float, float]:
    """Ask, wait for the model to stall after its third token, cancel.

    Returns (time the cancel was sent, seconds until the `end` arrived)."""
    await ws.send(ask(ask_id, TOKENS))
    while True:
        message = json.loads(await ws.recv())
        if message["type"] == "delta" and message["index"] == 2:
            break
        if message["type"] in ("end", "error"):
            raise RuntimeError(f"the answer ended before the model stalled: {message}")
    await asyncio.sleep(STALL_SETTLE_SECONDS)
    cancel = json.dumps({"type": "cancel", "id": ask_id})
    sent = time.perf_counter()
    await ws.send(cancel)
    while True:
        raw = await ws.recv()
        received = time.perf_counter()
        message = json.loads(raw)
        if message["type"] in ("end", "error") and message["id"] == ask_id:
            break
    if message["type"] != "end" or message.get("stop_reason") != "cancelled":
        raise RuntimeError(f"a cancel was not answered with end/cancelled: {message}")
    return sent, received - sent


async def cancellation(port: int) -> dict:
    async with asyncio.timeout(PHASE_SECONDS):
        ws = await open_chat(port)
        try:
            samples = [
                await cancel_once(ws, f"cancel{n}") for n in range(CANCEL_WARMUP + CANCEL_SAMPLES)
            ]
        finally:
            await ws.close()
    stops = model_stops(port)
    if len(stops) != len(samples):
        raise RuntimeError(f"{len(samples)} asks but {len(stops)} model streams stopped")
    samples, stops = samples[CANCEL_WARMUP:], stops[CANCEL_WARMUP:]
    to_end = [seconds * 1e3 for _, seconds in samples]
    to_stop = [(stop - sent) * 1e3 for (sent, _), stop in zip(samples, stops, strict=True)]
    return {
        "samples": len(to_end),
        "cancel_to_end_p50_ms": statistics.median(to_end),
        "cancel_to_end_p99_ms": percentile(to_end, 99),
        "cancel_to_model_stopped_p50_ms": statistics.median(to_stop),
        "cancel_to_model_stopped_p99_ms": percentile(to_stop, 99),
    }


# --- the run --------------------------------------------------------------------------------


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_phase(runner: asyncio.Runner, kind: str, phase) -> dict:
    process, port = start(kind)
    try:
        return runner.run(phase(port, process.pid))
    finally:
        process.kill()
        process.wait()


def report(results: dict) -> dict[str, bool]:
    c, i, x = results["concurrency"], results["idle"], results["cancel"]
    checks = {
        f"{CHATS} chats at 100 tokens/s: no token lost or reordered": (
            c["lost"] == 0 and c["reordered"] == 0 and c["bad_ends"] == 0
        ),
        f"{CHATS} chats at 100 tokens/s: gap p99 <= {GAP_P99_MS:g} ms": (
            c["gap_p99_ms"] <= GAP_P99_MS
        ),
        f"idle connection <= {IDLE_KIB:g} KiB of server RSS": (
            i["kib_per_connection"] <= IDLE_KIB and i["alive"] == i["connections"]
        ),
        f"cancel to model stopped p50 <= {CANCEL_P50_MS:g} ms (cancel -> end at the client)": (
            x["cancel_to_end_p50_ms"] <= CANCEL_P50_MS
        ),
    }
    rows = [
        ("chats x tokens at 100/s", f"{CHATS} x {TOKENS}"),
        ("rounds run (clean)", f"{len(c['rounds'])} ({c['clean_rounds']})"),
        ("wall s (ideal 2.0 + 0.2)", f"{c['wall_s']:.2f}"),
        ("gap p50 / p99 ms (median)", f"{c['gap_p50_ms']:.1f} / {c['gap_p99_ms']:.1f}"),
        ("gap p99 ms per round", " ".join(f"{r['gap_p99_ms']:.1f}" for r in c["rounds"])),
        ("gap max ms", f"{c['gap_max_ms']:.1f}"),
        ("lost / reordered / bad end", f"{c['lost']} / {c['reordered']} / {c['bad_ends']}"),
        ("server CPU µs per token", f"{c['server_cpu_us_per_token']:.1f}"),
        ("cores: server / client", f"{c['server_cores']:.2f} / {c['client_cores']:.2f}"),
        ("cores used by other processes", " ".join(f"{r['other_cores']:.2f}" for r in c["rounds"])),
        (
            "run-queue wait ms per round",
            " ".join(f"{r['run_queue_wait_ms']:.0f}" for r in c["rounds"]),
        ),
        ("server peak RSS MiB", f"{c['server_peak_rss_mib']:.1f}"),
        ("idle connections (alive)", f"{i['connections']} ({i['alive']})"),
        ("server RSS before / after KiB", f"{i['rss_before_kib']} / {i['rss_after_kib']}"),
        ("KiB per idle connection", f"{i['kib_per_connection']:.1f}"),
        ("  second half only", f"{i['kib_per_connection_second_half']:.1f}"),
        ("cancel samples", f"{x['samples']}"),
        (
            "cancel -> end (client) p50/p99",
            f"{x['cancel_to_end_p50_ms']:.3f} / {x['cancel_to_end_p99_ms']:.3f} ms",
        ),
        (
            "cancel -> model stopped p50/p99",
            f"{x['cancel_to_model_stopped_p50_ms']:.3f} / "
            f"{x['cancel_to_model_stopped_p99_ms']:.3f} ms",
        ),
    ]
    print("WebSocket chat /v1/chat, one worker (server CPU 0, client CPU 1)")
    for name, value in rows:
        print(f"  {name:34}{value:>28}")
    if c["clean_rounds"] < ROUNDS:
        print(
            f"  note: only {c['clean_rounds']} of {len(c['rounds'])} rounds were clean (server and "
            f"client waited <= {CLEAN_WAIT_MS:g} ms for a CPU): other processes competed for the "
            "CPUs, so the gaps are not the gateway's alone"
            + ("" if c["clean_rounds"] else " (no clean round: every round is judged)")
        )
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'MISSED'}] {name}")
    return checks


def main() -> int:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    with asyncio.Runner(loop_factory=new_loop) as runner:
        results = {
            "concurrency": run_phase(runner, "stream", concurrency),
            "idle": run_phase(runner, "stream", idle_memory),
            "cancel": run_phase(runner, "stall", lambda port, pid: cancellation(port)),
        }
    checks = report(results)
    results["checks"] = checks
    results["targets_met"] = all(checks.values())
    out = ROOT / ".bench"
    out.mkdir(exist_ok=True)
    (out / "ws-results.json").write_text(json.dumps(results, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
