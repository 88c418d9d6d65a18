"""The gateway as several worker processes on one port: `python -m reference_impl --workers N`.

Every worker keeps its own limits in memory unless GATEWAY_REDIS_URL is set, so N workers let
N times a key's burst through. The command line says so, and this test measures it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKERS, BURST = 3, 5
# Spawning three workers, each importing the app, is slow on a busy two-core machine.
START_DEADLINE = 90.0


class WorkerGateway:
    """`python -m reference_impl --workers N` on an OS-chosen port, its output collected."""

    def __init__(self, workers: int, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reference_impl", "--port", "0", "--workers", str(workers)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **env},
            cwd=ROOT,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.changed = threading.Condition()
        threading.Thread(target=self.collect, daemon=True).start()

    def collect(self) -> None:
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()

    def wait_for(self, condition, what: str) -> None:
        deadline = time.monotonic() + START_DEADLINE
        with self.changed:
            while not condition(self.lines):
                left = deadline - time.monotonic()
                assert left > 0 and self.process.poll() is None, f"no {what}: {self.lines}"
                self.changed.wait(left)

    @property
    def url(self) -> str:
        return re.search(r"on (http://127\.0\.0\.1:\d+)", self.lines[0]).group(1)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


@pytest.fixture
def start_workers():
    started: list[WorkerGateway] = []

    def start(workers: int, **env: str) -> WorkerGateway:
        gateway = WorkerGateway(workers, env)
        started.append(gateway)
        gateway.wait_for(lambda lines: any("limits:" in line for line in lines), "limits line")
        # Each worker logs this once its app is up; it listens on the shared socket right after.
        gateway.wait_for(
            lambda lines: sum("Application startup complete" in ln for ln in lines) == workers,
            f"{workers} workers started",
        )
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


LIMITS = {
    "GATEWAY_API_KEYS": "worker-key",
    "GATEWAY_RATE_LIMIT_RPS": "0.001",  # no refill during the test: a key gets its burst, once
    "GATEWAY_RATE_LIMIT_BURST": str(BURST),
}


def burst(gateway: WorkerGateway, sent: int) -> int:
    """How many of `sent` requests, each on a new connection, got through."""
    headers = {"Authorization": "Bearer worker-key"}
    passed = 0
    # One new connection a request: the kernel gives each to whichever worker accepts first.
    for _ in range(sent):
        response = httpx.get(f"{gateway.url}/v1/documents", headers=headers, timeout=30)
        assert response.status_code in (200, 429), response.text
        passed += response.status_code == 200
    return passed


@pytest.mark.timeout(180)
def test_in_memory_limits_are_per_worker_so_three_workers_let_more_than_one_burst_through(
    start_workers,
):
    gateway = start_workers(WORKERS, **LIMITS)
    assert any(f"PER WORKER: each of the {WORKERS} workers" in ln for ln in gateway.lines)
    # Enough requests that every worker gets some: each one lets its own burst through.
    passed = burst(gateway, 8 * WORKERS * BURST)
    assert BURST < passed <= WORKERS * BURST, f"{passed} got through"


@pytest.mark.timeout(180)
def test_on_redis_three_workers_let_exactly_one_burst_through(start_workers, redis_url):
    gateway = start_workers(WORKERS, GATEWAY_REDIS_URL=redis_url, **LIMITS)
    assert any(f"shared by the {WORKERS} workers in Redis" in ln for ln in gateway.lines)
    assert burst(gateway, 8 * WORKERS * BURST) == BURST


def test_the_command_line_refuses_zero_workers():
    refused = subprocess.run(
        [sys.executable, "-m", "reference_impl", "--port", "0", "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert refused.returncode == 2 and "--workers must be 1 or more" in refused.stderr
