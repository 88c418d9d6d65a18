"""The per-token path of an SSE stream: the hand-written delta encoder, the send hook, and the
clean-up that replaced the generator wrapping every chunk; and the WebSocket chat's delta encoder.

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
from reference_impl.wire_sse import WatchedEventSourceResponse

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


def test_every_byte_of_a_stream_goes_out_through_the_send_hook_the_gateway_overrides(
    start_gateway, monkeypatch
):
    # WatchedEventSourceResponse replaces sse-starlette's per-send cancel scope with its
    # watchdog by overriding this method. If a new sse-starlette renamed it, or stopped sending
    # through it, the override would be silently dead (and every send would pay for a cancel
    # scope again); fail here instead.
    assert "_send_with_timeout" in WatchedEventSourceResponse.__dict__
    overridden = WatchedEventSourceResponse._send_with_timeout
    through_the_hook: list[bytes] = []

    def recording_hook(self, send, message):
        through_the_hook.append(message.get("body", b""))
        return overridden(self, send, message)

    monkeypatch.setattr(WatchedEventSourceResponse, "_send_with_timeout", recording_hook)
    gateway = start_gateway()
    client = gateway.client()
    with client.http.stream("POST", "/v1/ask/stream", json=QUESTION) as response:
        received = response.read()
    assert response.status_code == 200 and received.count(b"event: delta") >= 2
    assert b"".join(through_the_hook) == received


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
