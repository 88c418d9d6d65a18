"""course/processes.py: what a notebook starts beside its kernel (a redis-server, the gateway
as N workers) is replaced when its cell runs again and stopped by the Clean-up cell.

Real processes on OS-chosen ports; `python -m course.serve --workers 2` is the command line
`make gateway` runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from redis_server import MISSING, REDIS_SERVER

from course import measure, processes

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def clean_up():
    yield
    processes.stop_all()


def needs_redis() -> None:
    if REDIS_SERVER is None and not os.environ.get("CI"):
        pytest.skip(MISSING)


def test_without_redis_server_on_path_the_notebook_gets_one_line_saying_how_to_install_it(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert processes.redis_server_path() is None
    with pytest.raises(FileNotFoundError) as missing:
        processes.RedisServer()
    message = str(missing.value)
    assert "\n" not in message
    assert "redis-server is not on PATH" in message and "apt-get install redis-server" in message


def test_a_redis_started_again_under_its_name_replaces_the_first_and_stop_all_stops_it(clean_up):
    needs_redis()
    first = processes.RedisServer(name="nb-redis").start()
    assert processes.ping(first.port)
    second = processes.RedisServer(name="nb-redis").start()
    assert not first.alive, "the first server is stopped when its cell runs again"
    assert second.alive and processes.ping(second.port)
    assert second.url == f"redis://127.0.0.1:{second.port}/0"
    folder = Path(second.folder)
    assert folder.is_dir()
    assert processes.stop_all() == ["nb-redis"]
    assert not second.alive and not processes.ping(second.port)
    assert not folder.exists(), "its working folder is removed"


def test_workers_started_again_replace_the_first_gateway_and_stop_all_stops_every_worker(
    clean_up,
):
    settings = {
        "GATEWAY_API_KEYS": "burst-key",
        "GATEWAY_RATE_LIMIT_RPS": "0.001",  # no refill during the test
        "GATEWAY_RATE_LIMIT_BURST": "2",
    }
    first = processes.WorkerGateway(2, settings, name="nb-workers").start()
    assert "PER WORKER: each of the 2 workers" in first.limits_line
    assert httpx.get(f"{first.url}/healthz", timeout=10).status_code == 200
    second = processes.WorkerGateway(2, settings, name="nb-workers").start()
    assert not first.alive, "the first gateway is stopped when its cell runs again"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{first.url}/healthz", timeout=5)
    # Enough requests that both workers get some: each lets its own burst of 2 through.
    burst = measure.burst(second.url, "burst-key", 24)
    assert burst.accepted + burst.refused == 24 and len(burst.answered_s) == 24
    assert 2 <= burst.accepted <= 4, burst.statuses
    processes.stop_all()
    assert not second.alive
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{second.url}/healthz", timeout=5)


def test_a_burst_counts_what_the_rate_limit_let_through_and_refused(start_gateway):
    gateway = start_gateway(rate_limit_rps=0.001, rate_limit_burst=3)
    burst = measure.burst(gateway.url, gateway.settings.api_keys[0], 5)
    assert burst.statuses == [200, 200, 200, 429, 429]
    assert (burst.accepted, burst.refused) == (3, 2)
    assert burst.answered_s == sorted(burst.answered_s)
    with pytest.raises(RuntimeError, match="401"):
        measure.burst(gateway.url, "not-a-key", 1)
