"""Lab 07: the WebSocket chat (reference_impl/wire_ws.py and chat.py).

Three tasks: route each client message on its `type` (the rest goes to the `$default` route),
cancel an answer so the model stops at once, and enforce the per-connection limits (message
size, message rate). Every message is checked against contract/asyncapi.yaml by the client.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from test_websocket_chat import ask, chat  # noqa: F401  (chat is a fixture)

lab07 = pytest.mark.lab("07")
# The Lab Tasks of notebook 07, as its "Lab Task N" headings number them.
lab07_task = {n: pytest.mark.lab("07", task=n) for n in (1, 2, 3)}
pytestmark = pytest.mark.timeout(60)


def frame(text: str | None = None, data: bytes | None = None) -> dict:
    """An ASGI `websocket.receive` message, as the chat's receive loop gets it."""
    message = {"type": "websocket.receive"}
    if text is not None:
        message["text"] = text
    if data is not None:
        message["bytes"] = data
    return message


# --- task 1: routing ---------------------------------------------------------------------------


@lab07_task[1]
@pytest.mark.parametrize(
    "message",
    [
        {"type": "ask", "id": "q1", "question": "Why?", "document_id": "bedrock-streaming"},
        {"type": "cancel", "id": "q1"},
        {"type": "ping"},
    ],
)
def test_each_client_message_is_routed_on_its_type(impl, message):
    routed = impl.wire_ws.route(frame(json.dumps(message)))
    assert routed.route == message["type"] and routed.message == message


@lab07_task[1]
@pytest.mark.parametrize(
    ("received", "message_id"),
    [
        (frame("{not json"), None),
        (frame(data=b'{"type": "ping"}'), None),
        (frame(json.dumps({"type": "subscribe", "id": "s1"})), "s1"),
        (frame(json.dumps({"type": "ask", "id": "q2"})), "q2"),
        (frame(json.dumps({"type": "ping", "extra": 1})), None),
        (frame(json.dumps("ping")), None),
    ],
)
def test_everything_else_goes_to_the_default_route_as_invalid_request(impl, received, message_id):
    with pytest.raises(impl.wire_ws.Unroutable) as refused:
        impl.wire_ws.route(received)
    assert refused.value.code == "invalid_request" and refused.value.message_id == message_id


@lab07_task[1]
def test_bad_frames_get_an_error_message_and_the_connection_stays_open(start_gateway, chat):  # noqa: F811
    client = chat(start_gateway())
    client.send_raw("{not json")
    error = client.recv()
    assert error["type"] == "error" and error["problem"]["code"] == "invalid_request"
    client.send({"type": "ping"})
    assert client.recv() == {"type": "pong"}
    client.send(ask(max_tokens=3))
    assert [m["type"] for m in client.answer()] == ["start", "delta", "delta", "delta", "end"]


# --- task 2: cancellation --------------------------------------------------------------------


class StallingModel:
    """Three tokens, then silence until cancelled; records when its stream was closed."""

    name = "stalling"

    def __init__(self, impl) -> None:
        self.impl = impl
        self.closed_at: float | None = None

    async def stream(self, request):
        try:
            for word in (" one", " two", " three"):
                yield self.impl.model.TextDelta(word)
            await asyncio.Event().wait()
            yield self.impl.model.ModelStop("end_turn", request.prompt_tokens, 3)
        finally:
            self.closed_at = time.perf_counter()


@lab07_task[2]
def test_cancel_stops_a_stalled_model_and_ends_with_stop_reason_cancelled(
    impl,
    start_gateway,
    chat,  # noqa: F811
):
    model = StallingModel(impl)
    gateway = start_gateway(model=model, idle_timeout_seconds=30)
    client = chat(gateway)
    client.send(ask())
    client.until(lambda m: m["type"] == "delta" and m["index"] == 2)
    sent = time.perf_counter()
    client.send({"type": "cancel", "id": "q1"})
    end = client.recv()
    assert end["type"] == "end" and end["id"] == "q1" and end["stop_reason"] == "cancelled"
    assert end["usage"]["output_tokens"] == 3
    assert model.closed_at is not None and model.closed_at - sent < 1.0
    assert gateway.metric("gateway_streams_active") == 0
    # The connection takes the next question.
    client.send({"type": "ping"})
    assert client.recv() == {"type": "pong"}


@lab07_task[2]
def test_cancel_frees_the_connection_for_a_new_ask(impl, start_gateway, chat):  # noqa: F811
    gateway = start_gateway(model=StallingModel(impl), idle_timeout_seconds=30)
    client = chat(gateway)
    client.send(ask())
    client.until(lambda m: m["type"] == "delta")
    client.send({"type": "cancel", "id": "q1"})
    client.until(lambda m: m["type"] == "end")
    client.send(ask(id="q2"))
    assert client.until(lambda m: m["type"] == "start")[-1]["id"] == "q2"


# --- task 3: per-connection limits -----------------------------------------------------------


@lab07_task[3]
def test_a_message_above_the_size_limit_closes_the_connection_1009(start_gateway, chat):  # noqa: F811
    gateway = start_gateway(ws_max_message_bytes=500)
    client = chat(gateway)
    client.send({"type": "ping"})
    assert client.recv() == {"type": "pong"}
    client.send_raw(json.dumps(ask(question="x" * 600)))
    assert client.closed() == (1009, "message too big")
    assert gateway.metric("gateway_model_requests_total", model="fake-docqa") == 0


@lab07_task[3]
def test_messages_over_the_rate_are_refused_then_the_connection_is_closed_1008(
    start_gateway,
    chat,  # noqa: F811
):
    gateway = start_gateway(
        ws_messages_per_second=0.001, ws_message_burst=2, ws_rate_limited_before_close=3
    )
    client = chat(gateway)
    for _ in range(2):
        client.send({"type": "ping"})
        assert client.recv() == {"type": "pong"}
    for _ in range(2):
        client.send({"type": "ping"})
        refused = client.recv()
        assert refused["type"] == "error" and refused["problem"]["code"] == "rate_limited"
    client.send({"type": "ping"})
    assert client.closed() == (1008, "rate limit exceeded")
