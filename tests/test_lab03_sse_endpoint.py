"""Lab 03: the SSE endpoint's event sequence (reference_impl/wire_sse.py).

The guard's items are scripted, so these checks need only labs 01 and 03.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from reference_impl.contract import validate as contract

lab03 = pytest.mark.lab("03")
START = {
    "request_id": "req_00000000000000aa",
    "model": "fake-docqa",
    "limits": {
        "max_tokens": 8,
        "max_stream_seconds": 30.0,
        "first_token_timeout_seconds": 5.0,
        "idle_timeout_seconds": 5.0,
    },
}


def encode(impl, items, error=None):
    """Run sse_body over scripted guard items; return the SSE text."""
    wire = impl.wire_sse

    async def rest():
        for item in items[1:]:
            yield item
        if error is not None:
            raise error

    async def run():
        chunks = [c async for c in wire.sse_body(items[0], rest(), START, START["request_id"])]
        return b"".join(chunks).decode()

    return asyncio.run(run())


def finished(impl, reason="end_turn", output=2):
    return impl.guard.Finished(reason, 10, output, 1.5, 20.0)


@lab03
def test_a_stream_is_start_then_deltas_then_end_with_ids_from_one(impl):
    Delta = impl.guard.Delta
    text = encode(impl, [Delta(0, "Hello"), Delta(1, " world"), finished(impl)])
    events = impl.sse.parse_stream(text)
    assert [e["event"] for e in events] == ["start", "delta", "delta", "end"]
    assert [e["id"] for e in events] == ["1", "2", "3", "4"]
    assert json.loads(events[0]["data"]) == START
    assert json.loads(events[2]["data"]) == {"index": 1, "text": " world"}
    end = json.loads(events[3]["data"])
    assert end["stop_reason"] == "end_turn" and end["usage"] == {
        "input_tokens": 10,
        "output_tokens": 2,
    }
    contract.validate_stream(events)


@lab03
def test_an_error_after_the_first_token_is_one_terminal_error_event(impl):
    Delta = impl.guard.Delta
    error = impl.errors.GatewayError("idle_timeout", "No token for 5 s.")
    text = encode(impl, [Delta(0, "a"), Delta(1, "b")], error=error)
    events = impl.sse.parse_stream(text)
    assert [e["event"] for e in events] == ["start", "delta", "delta", "error"]
    problem = json.loads(events[-1]["data"])
    assert problem["code"] == "idle_timeout" and problem["status"] == 504
    assert problem["request_id"] == START["request_id"] and events[-1]["id"] == "4"
    contract.validate_stream(events)


@lab03
def test_an_empty_answer_is_start_then_end(impl):
    text = encode(impl, [finished(impl, output=0)])
    events = impl.sse.parse_stream(text)
    assert [e["event"] for e in events] == ["start", "end"]
    contract.validate_stream(events)


@lab03
def test_nothing_follows_the_terminal_event(impl):
    Delta = impl.guard.Delta
    text = encode(impl, [Delta(0, "a"), finished(impl, output=1), Delta(1, "late")])
    assert "late" not in text
    names = [e["event"] for e in impl.sse.parse_stream(text)]
    assert names == ["start", "delta", "end"]
