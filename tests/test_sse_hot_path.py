"""The per-token path of an SSE stream: the hand-written delta encoder, the gateway's own send
loop, and the clean-up that replaced the generator wrapping every chunk; and the WebSocket chat's
delta encoder.

They exist for speed (`make bench`); these tests make sure none changed what a client sees or
what is billed.
"""

from __future__ import annotations

import asyncio
import json

from hypothesis import given
from hypothesis import strategies as st
from support import QUESTION

from reference_impl import sse, wire_ws
from reference_impl.guard import Delta

# Any text a model may send: line breaks, quotes, backslashes, control and non-BMP characters,
# and lone surrogates (a model's output is not always well-formed Unicode).
TEXT = st.text(st.characters(exclude_categories=()))


@given(index=st.integers(min_value=0, max_value=10**9), text=TEXT, id=st.integers(1, 10**9))
def test_the_delta_encoder_writes_the_same_bytes_as_the_general_one(index, text, id):
    fast = sse.encode_delta_event(index, text, id)
    assert fast == sse.encode_json_event("delta", {"index": index, "text": text}, id=id)
    (event,) = sse.parse_stream(fast.decode())
    assert event == {"event": "delta", "id": str(id), "data": event["data"]}
    assert json.loads(event["data"]) == {"index": index, "text": text}


@given(ask_id=TEXT, index=st.integers(min_value=0, max_value=10**9), text=TEXT)
def test_the_chat_delta_encoder_writes_the_same_text_as_the_general_one(ask_id, index, text):
    fast = wire_ws.encode_delta(ask_id, index, text)
    assert fast == wire_ws.encode(wire_ws.answer_message(ask_id, Delta(index, text)))
    assert json.loads(fast) == {"type": "delta", "id": ask_id, "index": index, "text": text}


def test_the_stream_is_sent_by_the_gateways_own_loop_not_sse_starlettes(start_gateway, monkeypatch):
    # WatchedEventSourceResponse keeps sse-starlette's headers and settings but sends the
    # stream itself (one task, pings from the watchdog's timer). If a change sent it through
    # sse-starlette's task group again, every stream would pay for four tasks; fail here.
    from sse_starlette.sse import EventSourceResponse

    used: list[str] = []

    async def sse_starlettes_loop(self, send):
        used.append("_stream_response")

    monkeypatch.setattr(EventSourceResponse, "_stream_response", sse_starlettes_loop)
    gateway = start_gateway()
    client = gateway.client()
    with client.http.stream("POST", "/v1/ask/stream", json=QUESTION) as response:
        received = response.read()
    assert response.status_code == 200 and received.count(b"event: delta") >= 2
    assert received.rstrip().rsplit(b"\n\n", 1)[-1].count(b"event: end") == 1
    assert used == []


class ModelThatWillNotClose:
    """Answers, then hangs in its clean-up: the close step must give up on it, not the stream."""

    name = "stuck-on-close"

    async def stream(self, request):
        from reference_impl.model import ModelStop, TextDelta

        try:
            for word in ("one", " two", " three"):
                yield TextDelta(word)
            yield ModelStop("end_turn", request.prompt_tokens, 3)
        finally:
            await asyncio.Event().wait()  # never set


def test_a_model_that_will_not_close_cannot_hang_the_stream_or_its_bill(start_gateway, monkeypatch):
    from reference_impl import wire_sse

    monkeypatch.setattr(wire_sse, "CLOSE_TIMEOUT_SECONDS", 0.3)
    gateway = start_gateway(model=ModelThatWillNotClose())
    result = gateway.client().stream(QUESTION)  # returns only once the stream has closed
    assert result.names == ["start", "delta", "delta", "delta", "end"]
    # Settled although the model never finished closing: slot freed, tokens billed.
    assert gateway.metric("gateway_streams_active") == 0
    assert gateway.metric("gateway_model_tokens_generated_total", model="stuck-on-close") == 3
