"""`make bench` itself: its table names every missed target, and its clients read real servers.

No speed is judged here (that is the benchmark's job); these check that the benchmark measures
what it says and reports it honestly.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Appended, not first: `labs` must keep resolving to whichever copy the run grades.
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from bench import fig_cancel, fig_workers, report, wire  # noqa: E402
from course import processes  # noqa: E402


def results(**changes) -> dict:
    """A full set of figure results, every one within its target, with `changes` applied."""
    sse_server = {"us_per_token": 10.0, "ttft_p50_ms": 0.5, "ttft_p99_ms": 1.0}
    stream = {
        "streams": 500,
        "lost": 0,
        "reordered": 0,
        "bad_ends": 0,
        "gap_p50_ms": 10.0,
        "gap_p99_ms": 20.0,
        "server_cores": 0.9,
        "client_cores": 0.3,
        "run_queue_wait_ms": 40.0,
        "server_peak_mib": 120.0,
    }
    idle = {"connections": 500, "alive": 500, "kib_per_connection": 30.0}
    cancel = {"samples": 30, "p50_ms": 1.0, "p99_ms": 2.0, "not_stopped": 0}
    limit = {"setting_s": 1.0, "samples": 8, "median_ms": 2.0, "worst_ms": 10.0}
    values = {
        "cost": {
            "sse": {"sse-bare": sse_server, "sse-floor": sse_server, "gateway-instant": sse_server},
            "ws": {"ws-bare": {"us_per_token": 10.0}, "gateway-instant": {"us_per_token": 12.0}},
            "sse_ratio_bare": 0.95,
            "sse_ratio_floor": 1.4,
            "ws_ratio_bare": 1.2,
            "ttft_added_p50_ms": 0.2,
            "ttft_added_p99_ms": 0.5,
        },
        "concurrency": {"sse": dict(stream), "ws": dict(stream)},
        "idle": {"sse": dict(idle), "ws": dict(idle)},
        "cancel": {
            f"{k}_{m}": dict(cancel) for k in ("sse", "ws") for m in ("emitting", "stalled")
        },
        "limits": {"stream": dict(limit), "idle": dict(limit, setting_s=0.5)},
        "workers": {
            "redis": {
                "available": True,
                "request_ms": {"memory": 0.5, "redis": 0.75},
                "us_per_token": {"memory": 14.0, "redis": 14.7},
                "request_ratio": 1.5,
                "token_ratio": 1.05,
            },
            "workers": {
                "workers": 2,
                "cores": 2,
                "requests": 1500,
                "concurrency": 32,
                "one_per_second": 400.0,
                "several_per_second": 520.0,
                "ratio": 1.3,
            },
        },
    }
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = values
        for key in parents:
            target = target[key]
        target[leaf] = value
    return values


MACHINE = {
    "date": "2026-11-29 03:00 UTC",
    "cpu": "Some CPU",
    "cores": 2,
    "os": "Linux",
    "python": "3.11",
    "packages": {"uvicorn": "0"},
}


def test_every_target_met_means_no_missed_row_and_every_figure_is_in_the_table():
    table = report.rows(results())
    assert report.missed(table) == []
    text = report.markdown(table, MACHINE, 100.0)
    assert "MISSED" not in text
    assert "Targets missed: 0." in text
    for figure in ("per-token", "first token", "lost", "p99 gap", "idle", "Cancel", "precision"):
        assert figure in text


def test_a_missed_target_is_marked_and_named():
    table = report.rows(results(concurrency__sse__gap_p99_ms=198.0, cost__ttft_added_p50_ms=0.36))
    failed = [row.figure for row in report.missed(table)]
    assert failed == [
        "Time to first token added by the gateway, p50",
        "500 SSE streams at 100 tokens/s, one worker: p99 gap between tokens",
    ]
    text = report.markdown(table, MACHINE, 100.0)
    assert "Targets missed: 2:" in text
    assert "198.0 ms" in text and "| MISSED |" in text


def test_a_lost_token_or_a_model_never_stopped_is_a_miss_whatever_the_times():
    table = report.rows(results(concurrency__ws__lost=1, cancel__ws_stalled__not_stopped=1))
    assert len(report.missed(table)) == 2


def test_the_redis_and_workers_rows_give_each_ratio_with_the_numbers_behind_it():
    text = report.markdown(report.rows(results()), MACHINE, 1.0)
    assert "one short request (rate check, admission, release), Redis / in memory | 1.50x" in text
    assert "(0.750 / 0.500 ms)" in text
    assert "per-token cost of a long stream, Redis / in memory | 1.05x (14.7 / 14.0 µs)" in text
    assert "2 workers against one: short streamed answers per second | 1.30x (520 / 400" in text


def test_without_redis_server_the_redis_row_says_why_instead_of_being_left_out():
    missing = {"available": False, "reason": "redis-server is not on PATH"}
    text = report.markdown(report.rows(results(workers__redis=missing)), MACHINE, 1.0)
    assert "Limits shared in Redis: cost per request and per token | n/a (redis-server" in text
    assert "2 workers against one" in text


def test_the_machine_and_versions_head_the_document():
    text = report.markdown(report.rows(results()), MACHINE, 1.0)
    assert "Some CPU, 2 cores" in text and "uvicorn 0" in text and "2026-11-29" in text


def test_server_frames_are_read_whole_even_when_they_arrive_in_pieces():
    small, large = b'{"type":"delta"}', b"x" * 70_000
    stream = (
        struct.pack("!BB", 0x81, len(small))
        + small
        + struct.pack("!BBQ", 0x81, 127, len(large))
        + large
    )
    buffer, frames = bytearray(), []
    for at in range(0, len(stream), 1000):
        buffer += stream[at : at + 1000]
        frames += wire.ws_frames(buffer)
    assert frames == [(1, small), (1, large)] and buffer == bytearray()


def test_the_cancel_figure_sees_the_model_stop_for_every_client_that_left(monkeypatch):
    """The bench-only timed model, behind the real gateway in its own process, records one stop
    per client gone, for SSE and WebSocket, so the cancel figure measures real stops."""
    monkeypatch.setattr(fig_cancel, "SAMPLES", 3)
    monkeypatch.setattr(fig_cancel, "WARM_UP", 1)
    for kind in ("sse", "ws"):
        measured = fig_cancel.latency(kind, stalled=True)
        assert measured["samples"] == 3
        assert measured["not_stopped"] == 0


def needs_redis() -> None:
    from redis_server import MISSING, REDIS_SERVER

    if REDIS_SERVER is None and not os.environ.get("CI"):
        pytest.skip(MISSING)


@pytest.mark.timeout(240)
def test_the_redis_figure_compares_the_gateway_on_redis_with_in_memory_on_real_servers():
    needs_redis()
    measured = fig_workers.redis_cost(samples=3, rounds=1)
    assert measured["available"]
    for mode in ("memory", "redis"):
        assert measured["request_ms"][mode] > 0 and measured["us_per_token"][mode] > 0
    assert measured["request_ratio"] == pytest.approx(
        measured["request_ms"]["redis"] / measured["request_ms"]["memory"]
    )
    assert processes.Started.running == {}, "the bench's redis-server is stopped"


@pytest.mark.timeout(240)
def test_the_workers_figure_gets_every_answer_from_one_worker_and_from_two():
    measured = fig_workers.several_workers(workers=2, requests=12, concurrency=3)
    assert measured["one_per_second"] > 0 and measured["several_per_second"] > 0
    assert measured["ratio"] == pytest.approx(
        measured["several_per_second"] / measured["one_per_second"]
    )
    assert processes.Started.running == {}, "both gateways are stopped"
