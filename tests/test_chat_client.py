"""course/chat_client.py: the notebook's chat client, against a real gateway on uvicorn.

The client checks every message against contract/asyncapi.yaml, so these tests also fail when
the gateway drifts from the contract. Waits are conditions with deadlines (the next message,
the server's close), never sleeps; no test holds a speed target.
"""

from __future__ import annotations

import contextlib

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from support import API_KEY

from course.chat_client import ChatClient, get_ticket, text_of
from reference_impl.contract.validate import ContractViolation

pytestmark = pytest.mark.timeout(60)

DOCUMENT = "api-gateway-websocket-limits"
QUESTION = "How long can a connection stay idle?"
STALL = {"fake_behavior": "stall", "idle_timeout_seconds": 30}


@pytest.fixture
def chat():
    """chat(ws_url, key=API_KEY, ticket=None) opens a ChatClient closed after the test."""
    clients = contextlib.ExitStack()

    def open_chat(ws_url: str, key: str | None = API_KEY, ticket: str | None = None):
        return clients.enter_context(ChatClient(ws_url, key=key, ticket=ticket))

    with clients:
        yield open_chat


def types(messages):
    return [m["type"] for m in messages]


# --- a full exchange -----------------------------------------------------------------------------


def test_ask_returns_start_deltas_and_end_and_close_says_1000(start_gateway, chat):
    gateway = start_gateway()
    client = chat(gateway.server.ws_url)
    client.ask("q1", QUESTION, DOCUMENT)
    answer = client.answer("q1")
    assert answer[0]["type"] == "start" and answer[-1]["type"] == "end"
    assert set(types(answer[1:-1])) == {"delta"}
    assert [m["index"] for m in answer[1:-1]] == list(range(len(answer) - 2))
    assert answer[-1]["stop_reason"] == "end_turn"
    assert answer[-1]["usage"]["output_tokens"] == len(answer) - 2
    assert "10 minutes" in text_of(answer)
    assert client.received() == answer
    assert client.close() == (1000, "")


def test_ask_sends_an_inline_document_and_follow_ups_name_none(start_gateway, chat):
    client = chat(start_gateway().server.ws_url)
    document = "Wombats dig long burrows. Their droppings are cube shaped."
    client.ask("q1", "What shape are the droppings?", document=document)
    assert "cube" in text_of(client.answer("q1"))
    client.ask("q2", "What do wombats dig?")
    assert "burrows" in text_of(client.answer("q2"))
    assert client.sent() == [
        {
            "type": "ask",
            "id": "q1",
            "question": "What shape are the droppings?",
            "document": document,
        },
        {"type": "ask", "id": "q2", "question": "What do wombats dig?"},
    ]


def test_the_log_keeps_both_directions_in_order_with_rising_times(start_gateway, chat):
    client = chat(start_gateway().server.ws_url)
    sent_at = client.ping()
    assert client.recv() == {"type": "pong"}
    client.ask("q1", QUESTION, DOCUMENT, max_tokens=3)
    client.answer("q1")
    assert [e.direction for e in client.log] == ["->", "<-", "->"] + ["<-"] * 5
    times = [e.at for e in client.log]
    assert times == sorted(times) and times[0] == sent_at
    assert client.sent() == [
        {"type": "ping"},
        {"type": "ask", "id": "q1", "question": QUESTION, "document_id": DOCUMENT, "max_tokens": 3},
    ]


def test_transcript_folds_each_run_of_deltas_into_one_line_unless_asked(start_gateway, chat):
    client = chat(start_gateway().server.ws_url)
    client.ask("q1", QUESTION, DOCUMENT, max_tokens=3)
    answer = client.answer("q1")
    client.close()
    folded = client.transcript(width=500).splitlines()
    assert len(folded) == 5, folded
    assert "-> ask q1: 'How long can a connection stay idle?'" in folded[0]
    assert "'max_tokens': 3" in folded[0]
    assert f"<- start q1 {answer[0]['request_id']}" in folded[1]
    assert f"<- delta x3 q1 until {client.log[4].at:.3f} s: {text_of(answer)!r}" in folded[2]
    assert "<- end q1 stop_reason=max_tokens" in folded[3] and "output_tokens=3" in folded[3]
    assert folded[4].strip() == "closed 1000 ''"
    every = client.transcript(every_delta=True, width=500).splitlines()
    assert [line.split()[3] for line in every[2:5]] == ["delta"] * 3
    assert "#2:" in every[4]
    assert all(len(line) <= 60 for line in client.transcript(width=60).splitlines())


def test_transcript_ends_with_the_close_code_the_gateway_sent(start_gateway, chat):
    client = chat(start_gateway().server.ws_url, key="wrong")
    assert client.wait_closed() == (4401, "unauthorized")
    lines = client.transcript(width=500).splitlines()
    assert "<- error None unauthorized (401" in lines[0]
    assert lines[-1].strip() == "closed 4401 'unauthorized'"


# --- the contract is the yardstick ---------------------------------------------------------------


def test_a_message_off_the_contract_is_refused_before_it_is_sent(start_gateway, chat):
    client = chat(start_gateway().server.ws_url)
    with pytest.raises(ContractViolation):
        client.send({"type": "ask", "id": "q1"})  # no question
    with pytest.raises(ContractViolation):
        client.ask("not an id!", QUESTION, DOCUMENT)
    assert client.log == []
    client.ping()
    assert client.recv() == {"type": "pong"}, "the gateway got nothing before the ping"


def test_a_server_message_off_the_contract_fails_recv(impl):
    async def drifting(websocket):
        await websocket.accept()
        await websocket.send_json({"type": "end", "id": "q1", "stop_reason": "done"})
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/v1/chat", drifting)])
    server = impl.background.BackgroundServer(app, name="test-drifting-chat").start()
    try:
        with ChatClient(server.ws_url, key=API_KEY) as client:
            with pytest.raises(ContractViolation, match="'end'"):
                client.recv()
            assert client.received() == []
    finally:
        server.stop()


def test_raw_frames_are_sent_as_they_are_and_logged_by_size(start_gateway, chat):
    client = chat(start_gateway().server.ws_url)
    client.send_raw("{not json")
    error = client.recv()
    assert error["type"] == "error" and error["problem"]["code"] == "invalid_request"
    assert client.log[0].message is None and client.log[0].size == 9
    assert "raw frame, 9 bytes" in client.transcript(width=500).splitlines()[0]


# --- cancel, busy and follow-ups -----------------------------------------------------------------


def test_cancel_ends_the_answer_with_cancelled_and_the_log_times_it(start_gateway, chat):
    gateway = start_gateway(**STALL)
    client = chat(gateway.server.ws_url)
    client.ask("q1", QUESTION, DOCUMENT)
    client.until(lambda m: m["type"] == "delta" and m["index"] == 2)
    cancelled_at = client.cancel("q1")
    end = client.recv()
    assert end["type"] == "end" and end["stop_reason"] == "cancelled"
    assert end["usage"]["output_tokens"] == 3
    assert client.log[-1].message == end and client.log[-1].at >= cancelled_at
    assert gateway.metric("gateway_model_tokens_generated_total", model="fake-docqa") == 3


def test_until_gives_up_at_its_deadline_when_nothing_comes(start_gateway, chat):
    client = chat(start_gateway(**STALL).server.ws_url)
    client.ask("q1", QUESTION, DOCUMENT)
    with pytest.raises(TimeoutError):
        client.until(lambda m: m["type"] == "end", timeout=0.2)
    assert types(client.received()) == ["start", "delta", "delta", "delta"]


def test_asking_twice_gets_busy_for_the_second_ask_only(start_gateway, chat):
    client = chat(start_gateway(**STALL).server.ws_url)
    client.ask("q1", QUESTION, DOCUMENT)
    client.until(lambda m: m["type"] == "delta")
    client.ask("q2", QUESTION)
    [busy] = client.answer("q2")
    assert busy["problem"]["code"] == "busy" and busy["problem"]["status"] == 409
    client.cancel("q1")
    assert client.answer("q1")[-1]["stop_reason"] == "cancelled"


def test_a_follow_up_without_document_id_uses_the_conversation(start_gateway, chat):
    gateway = start_gateway()
    client = chat(gateway.server.ws_url)
    client.ask("q1", QUESTION, DOCUMENT)
    client.answer("q1")
    client.ask("q2", "And what code is used?")
    follow_up = client.answer("q2")
    assert "document_id" not in client.sent()[-1]
    fresh = chat(gateway.server.ws_url)
    fresh.ask("q2", "And what code is used?", DOCUMENT)
    alone = fresh.answer("q2")
    assert follow_up[-1]["usage"]["input_tokens"] > alone[-1]["usage"]["input_tokens"]
    assert text_of(follow_up) != text_of(alone)


# --- connecting and closing ----------------------------------------------------------------------


def test_a_ticket_from_get_ticket_opens_one_connection_once(start_gateway, chat):
    gateway = start_gateway()
    ticket = get_ticket(gateway.url, API_KEY)
    assert ticket.startswith("tkt_")
    browser = chat(gateway.server.ws_url, key=None, ticket=ticket)
    assert browser.url.endswith(f"/v1/chat?ticket={ticket}")
    browser.ask("q1", QUESTION, DOCUMENT, max_tokens=2)
    assert browser.answer("q1")[-1]["stop_reason"] == "max_tokens"
    again = chat(gateway.server.ws_url, key=None, ticket=ticket)
    assert again.wait_closed() == (4401, "unauthorized")
    assert "already used" in again.received()[0]["problem"]["detail"]


def test_get_ticket_needs_a_valid_key(start_gateway):
    gateway = start_gateway()
    with pytest.raises(httpx.HTTPStatusError) as refused:
        get_ticket(gateway.url, "wrong")
    assert refused.value.response.status_code == 401


def test_wait_closed_returns_1009_for_a_message_above_the_size_limit(start_gateway, chat):
    gateway = start_gateway(ws_max_message_bytes=500)
    client = chat(gateway.server.ws_url)
    client.ask("q1", "x" * 600, DOCUMENT)
    assert client.log[-1].size > 500
    assert client.wait_closed() == (1009, "message too big")
    assert client.close() == (1009, "message too big"), "close() keeps the gateway's code"
    assert client.close_status() == (1009, "message too big")


def test_transcript_shows_an_errors_detail_in_full_however_narrow(start_gateway, chat):
    client = chat(start_gateway().server.ws_url, key="wrong")
    assert client.wait_closed() == (4401, "unauthorized")
    detail = next(m for m in client.received() if m["type"] == "error")["problem"]["detail"]
    error_line = client.transcript(width=40).splitlines()[0]
    assert error_line.endswith(detail) and "…" not in error_line
