"""Server processes and what /proc says about them: start, pin, memory, CPU time."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pin_clients() -> None:
    """The clients run on CPU 1, the servers on CPU 0 (bench/servers.py), where there are two."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})


@contextlib.contextmanager
def server(
    kind: str, timeout: float = 30.0, env: dict[str, str] | None = None
) -> Iterator[tuple[int, int]]:
    """Run `python -m bench.servers KIND` (with `env` added to its environment); yield
    (port, pid) once it accepts connections."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.servers", kind],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env} if env else None,
    )
    try:
        line = process.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the {kind} server did not start")
        port = int(line)
        deadline = time.monotonic() + timeout  # it prints its port just before it listens
        while True:
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield port, process.pid
    finally:
        process.kill()
        process.wait()


def status_kib(pid: int, field: str) -> int:
    """A memory field of /proc/<pid>/status (VmRSS now, VmHWM the peak), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def cpu_seconds(pid: int | str) -> float:
    """User + system CPU time a process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_queue_wait(pid: int | str) -> float:
    """Seconds the threads of a process were ready to run but waited for a CPU (schedstat):
    how much other processes on this shared machine got in the way."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9
