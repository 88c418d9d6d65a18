"""The WebSocket chat end to end: a real `websockets` client against the gateway on uvicorn.

Every message sent and received is checked against `reference_impl/contract/asyncapi.yaml`.
Waits are conditions with deadlines (a receive with a timeout, a metric reaching a value),
never sleeps. These are not lab tests: they exercise the whole chat, which in labs/ works only
once every lab up to 07 is done; the lab 07 checks are in test_lab07_websocket.py.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any

import pytest
from support import API_KEY
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from reference_impl.contract import asyncapi_validate as chat_contract
from reference_impl.contract import schemas
from reference_impl.contract import validate as contract

pytestmark = pytest.mark.timeout(60)

DOCUMENT = "api-gateway-websocket-limits"
FIRST = {"type": "ask", "id": "q1", "question": "How long can a connection stay idle?"}
TERMINAL = ("end", "error")
# Functional deadlines only: generous, so a slow machine never fails a correct gateway.
WAIT = 10.0


def ask(id: str = "q1", question: str = FIRST["question"], **extra: Any) -> dict[str, Any]:
    return {"type": "ask", "id": id, "question": question, "document_id": DOCUMENT, **extra}


class ChatClient:
    """A `websockets` client that checks every message both ways against the AsyncAPI contract."""

    def __init__(self, connection: ClientConnection) -> None:
        self.ws = connection
        self.received: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        chat_contract.validate_client_message(message)
        self.ws.send(json.dumps(message))

    def send_raw(self, data: str | bytes) -> None:
        """Send what the contract does not allow, on purpose."""
        self.ws.send(data)

    def recv(self, timeout: float = WAIT) -> dict[str, Any]:
        message = json.loads(self.ws.recv(timeout=timeout))
        chat_contract.validate_server_message(message)
        self.received.append(message)
        return message

    def until(self, predicate, timeout: float = WAIT) -> list[dict[str, Any]]:
        """Receive until `predicate(message)` holds; return the messages up to that one."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            message = self.recv(max(0.001, deadline - time.monotonic()))
            got.append(message)
            if predicate(message):
                return got

    def answer(self, ask_id: str = "q1") -> list[dict[str, Any]]:
        """The messages of one answer, `start` to its terminal message, checked for order."""
        messages = self.until(lambda m: m["type"] in TERMINAL and m["id"] == ask_id)
        mine = [m for m in messages if m.get("id") == ask_id]
        check_answer_order(mine)
        return mine

    def closed(self, timeout: float = WAIT) -> tuple[int | None, str | None]:
        """Wait for the server to close; return (code, reason). Messages before it are kept."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.recv(max(0.001, deadline - time.monotonic()))
        except ConnectionClosed:
            return self.ws.close_code, self.ws.close_reason

    def close(self) -> None:
        self.ws.close()


def check_answer_order(messages: list[dict[str, Any]]) -> None:
    """start, deltas with indexes 0, 1, 2, ..., then exactly one terminal message."""
    assert messages[0]["type"] == "start", messages[:2]
    assert messages[-1]["type"] in TERMINAL
    deltas = messages[1:-1]
    assert all(m["type"] == "delta" for m in deltas), [m["type"] for m in messages]
    assert [m["index"] for m in deltas] == list(range(len(deltas)))


def text_of(messages: list[dict[str, Any]]) -> str:
    return "".join(m["text"] for m in messages if m["type"] == "delta")


@pytest.fixture
def chat(start_gateway):
    """chat(gateway, api_key=..., query=..., headers=...) opens a checked chat connection."""
    connections = contextlib.ExitStack()

    def open_chat(
        gateway, api_key: str | None = API_KEY, query: str = "", headers=None
    ) -> ChatClient:
        headers = dict(headers or {})
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        # compression=None: the gateway does not offer permessage-deflate (settings.py says why).
        connection = connect(
            f"{gateway.server.ws_url}/v1/chat{query}",
            additional_headers=headers,
            compression=None,
            open_timeout=WAIT,
            max_size=None,
        )
        return ChatClient(connections.enter_context(connection))

    with connections:
        yield open_chat


# --- the contract -------------------------------------------------------------------------


def test_asyncapi_document_is_a_3_0_document_whose_messages_all_have_schemas():
    document = chat_contract.load_asyncapi()
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] and document["info"]["version"]
    messages = document["components"]["messages"]
    channel = document["channels"]["chat"]
    assert set(channel["messages"]) == set(messages)
    referenced = set()
    for name, operation in document["operations"].items():
        assert operation["action"] in ("send", "receive"), name
        assert operation["channel"] == {"$ref": "#/channels/chat"}, name
        for ref in operation["messages"] + operation.get("reply", {}).get("messages", []):
            assert ref["$ref"].startswith("#/channels/chat/messages/"), name
            referenced.add(ref["$ref"].rsplit("/", 1)[-1])
    assert referenced == set(messages), "every message is used by an operation"
    for name, message in messages.items():
        schema = chat_contract.resolve_payload(name)
        assert schema["properties"]["type"] == {"const": name}
        assert "type" in schema["required"]
        for example in message.get("examples", []):
            validate = (
                chat_contract.validate_client_message
                if name in ("ask", "cancel", "ping")
                else chat_contract.validate_server_message
            )
            validate(example["payload"])
    binding = channel["bindings"]["ws"]
    assert binding["method"] == "GET" and binding["bindingVersion"] == "0.1.0"
    assert set(binding["query"]["properties"]) == {"ticket"}, "no API key in the URL"


def test_every_ref_in_the_asyncapi_document_points_at_something():
    document = schemas.load_asyncapi()
    # Resolved as the checks resolve them: relative to the AsyncAPI document, offline.
    resolver = schemas.registry().resolver(base_uri=schemas.ASYNCAPI_URI)

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                assert ref.startswith(("#/", "openapi.yaml#/")), ref
                resolver.lookup(ref)  # raises when it points at nothing
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)


def test_a_websocket_ask_takes_every_field_rule_from_the_http_ask_request():
    # One ask schema: the chat's Ask adds its message fields (type, id) and refers to HTTP's
    # AskRequest for every field they share, so the two can never drift apart.
    ask_request = contract.load_contract()["components"]["schemas"]["AskRequest"]
    ask_schema = chat_contract.resolve_payload("ask")
    for name in ask_request["properties"]:
        reference = ask_schema["properties"][name]["$ref"]
        assert reference == f"openapi.yaml#/components/schemas/AskRequest/properties/{name}"
    assert set(ask_schema["properties"]) == {"type", "id", *ask_request["properties"]}


def test_the_apps_websocket_route_is_the_channel_address(start_gateway):
    app = start_gateway().app
    assert contract.app_websocket_routes(app) == {chat_contract.chat_address()} == {"/v1/chat"}


def test_the_close_codes_the_gateway_sends_are_all_documented(impl):
    description = chat_contract.load_asyncapi()["info"]["description"]
    chat = impl.load("chat")
    codes = {
        chat.GOING_AWAY,
        chat.POLICY_VIOLATION,
        chat.MESSAGE_TOO_BIG,
        chat.INTERNAL_ERROR,
        chat.SERVICE_RESTART,
        chat.TRY_AGAIN_LATER,
        chat.UNAUTHORIZED,
    }
    for code in codes:
        assert f"| {code} |" in description, code


def test_the_contract_rejects_messages_off_the_schema():
    bad = [
        {"type": "ask", "question": "no id"},
        {"type": "ask", "id": "q1", "question": ""},
        {"type": "ask", "id": "q1", "question": "q", "temperature": 1},
        {"type": "cancel"},
        {"type": "hello"},
    ]
    for message in bad:
        with pytest.raises(contract.ContractViolation):
            chat_contract.validate_client_message(message)
    with pytest.raises(contract.ContractViolation):
        chat_contract.validate_server_message({"type": "end", "id": "q1", "stop_reason": "x"})


# --- the full exchange ---------------------------------------------------------------------


def test_ask_is_answered_with_start_deltas_and_end(start_gateway, chat):
    gateway = start_gateway()
    client = chat(gateway)
    client.send(ask())
    answer = client.answer()
    start, end = answer[0], answer[-1]
    assert start["history_truncated"] is False and start["request_id"].startswith("req_")
    assert end["stop_reason"] == "end_turn"
    assert end["usage"]["output_tokens"] == len(answer) - 2
    assert "10 minutes" in text_of(answer)
    # The same answer as the HTTP stream: one model, one guard.
    streamed = gateway.client().stream({"question": FIRST["question"], "document_id": DOCUMENT})
    assert streamed.text == text_of(answer)
    gateway.wait_for_metric("gateway_streams_active", 0)
    assert gateway.metric("gateway_model_requests_total", model="fake-docqa") == 2


def test_an_answers_messages_go_out_without_the_asgi_layers_each_once_in_order(
    start_gateway, chat, monkeypatch
):
    # The chat sends a message straight to the connection when it can go without waiting
    # (server_bounds.SEND_TEXT); fail if it does not, or if a message is lost or doubled.
    from reference_impl import server_bounds

    sent_now: list[str] = []
    send_text_now = server_bounds.WebSocketProtocol.send_text_now

    def counted(self, text: str) -> bool:
        done = send_text_now(self, text)
        if done:
            sent_now.append(text)
        return done

    monkeypatch.setattr(server_bounds.WebSocketProtocol, "send_text_now", counted)
    client = chat(start_gateway())
    client.send(ask(max_tokens=5))
    answer = client.answer()
    assert [m["type"] for m in answer] == ["start", *["delta"] * 5, "end"]
    assert [json.loads(text) for text in sent_now] == answer  # every one of them, as sent
    client.send({"type": "ping"})
    assert client.recv()["type"] == "pong"


def test_ping_gets_pong_and_the_connection_serves_several_answers(start_gateway, chat):
    client = chat(start_gateway())
    client.send({"type": "ping"})
    assert client.recv() == {"type": "pong"}
    for number in range(3):
        client.send(ask(id=f"q{number}", max_tokens=4))
        answer = client.answer(f"q{number}")
        assert answer[-1]["stop_reason"] == "max_tokens" and len(answer) == 6


def test_max_tokens_above_the_cap_is_an_error_message_and_the_connection_stays(start_gateway, chat):
    gateway = start_gateway(max_tokens_cap=64)
    client = chat(gateway)
    client.send(ask(max_tokens=65))
    error = client.recv()
    assert error["type"] == "error" and error["id"] == "q1"
    assert error["problem"]["code"] == "max_tokens_exceeded" and "64" in error["problem"]["detail"]
    assert gateway.metric("gateway_model_requests_total", model="fake-docqa") == 0
    client.send(ask(id="q2", max_tokens=3))
    assert client.answer("q2")[-1]["stop_reason"] == "max_tokens"


INLINE = (
    "Quokkas live on Rottnest Island. A quokka weighs about three kilograms. "
    "Quokkas are most active at night."
)


def test_an_ask_may_send_its_document_inline_and_follow_ups_keep_it(start_gateway, chat):
    gateway = start_gateway()
    client = chat(gateway)
    question = "How much does a quokka weigh?"
    client.send({"type": "ask", "id": "q1", "question": question, "document": INLINE})
    first = text_of(client.answer())
    assert "three kilograms" in first
    # The same answer as HTTP with the same inline document.
    assert gateway.client().stream({"question": question, "document": INLINE}).text == first
    client.send({"type": "ask", "id": "q2", "question": "When are quokkas active?"})
    assert "night" in text_of(client.answer("q2")), "a follow-up keeps the inline document"


def test_an_ask_with_both_document_id_and_document_is_refused(start_gateway, chat):
    gateway = start_gateway()
    client = chat(gateway)
    client.send_raw(json.dumps(ask(document=INLINE)))
    error = client.recv()
    assert error["type"] == "error" and error["problem"]["code"] == "invalid_request"
    assert gateway.metric("gateway_model_requests_total", model="fake-docqa") == 0
    client.send(ask(id="q2", max_tokens=2))  # the connection stays open
    assert client.answer("q2")[-1]["stop_reason"] == "max_tokens"


@pytest.mark.parametrize(
    "fields",
    [
        {"question": "S3CRET " * 600, "document_id": DOCUMENT},  # above maxLength
        {"question": "q", "document": ""},
        {"question": "q", "document_id": DOCUMENT, "max_tokens": 0},
        {"question": "q", "document_id": DOCUMENT, "max_tokens": "5"},
        {"question": "q", "document_id": DOCUMENT, "temperature": 0.2},
    ],
)
def test_an_ask_breaking_the_contract_is_told_the_same_rule_over_http_and_websocket(
    start_gateway, chat, fields
):
    gateway = start_gateway()
    response = gateway.client().post("/v1/ask", json=fields)
    assert response.status_code == 400 and response.json()["code"] == "invalid_request"
    client = chat(gateway)
    client.send_raw(json.dumps({"type": "ask", "id": "q1", **fields}))
    error = client.recv()["problem"]
    assert error["code"] == "invalid_request"
    # "body: <rule>" over HTTP, "ask: <rule>; see ..." over WebSocket: the same rule.
    http_rule = response.json()["detail"].removeprefix("body: ")
    assert error["detail"].removeprefix("ask: ").startswith(http_rule + ";"), (http_rule, error)
    assert "S3CRET" not in http_rule, "the detail never echoes what was sent"


def test_first_ask_must_name_a_document(start_gateway, chat):
    client = chat(start_gateway())
    client.send(FIRST)
    error = client.recv()
    assert (
        error["problem"]["code"] == "invalid_request"
        and "document_id" in error["problem"]["detail"]
    )


# --- cancel and disconnect -------------------------------------------------------------------


def test_cancel_stops_a_stalled_model_at_once_and_ends_with_the_partial_usage(start_gateway, chat):
    gateway = start_gateway(fake_behavior="stall", idle_timeout_seconds=30)
    client = chat(gateway)
    client.send(ask())
    before = client.until(lambda m: m["type"] == "delta" and m["index"] == 2)
    assert [m["type"] for m in before] == ["start", "delta", "delta", "delta"]
    sent = time.perf_counter()
    client.send({"type": "cancel", "id": "q1"})
    end = client.recv()
    elapsed = time.perf_counter() - sent
    assert end["type"] == "end" and end["id"] == "q1" and end["stop_reason"] == "cancelled"
    assert end["usage"]["output_tokens"] == 3 and end["usage"]["input_tokens"] > 0
    assert elapsed < 0.05, f"the cancel took {elapsed * 1000:.1f} ms"
    assert gateway.metric("gateway_streams_active") == 0
    assert gateway.metric("gateway_stream_cancellations_total", reason="cancelled") == 1
    # The connection is free for the next answer.
    client.send({"type": "ping"})
    assert client.recv() == {"type": "pong"}


def test_cancel_of_nothing_is_an_error_and_changes_nothing(start_gateway, chat):
    client = chat(start_gateway())
    client.send({"type": "cancel", "id": "nope"})
    error = client.recv()
    assert error["id"] == "nope" and error["problem"]["code"] == "invalid_request"
    client.send(ask(max_tokens=2))
    assert client.answer()[-1]["stop_reason"] == "max_tokens"


def test_disconnect_mid_answer_stops_the_model_and_frees_the_slot(start_gateway, chat):
    gateway = start_gateway(fake_tokens_per_second=100, max_concurrent_streams=1)
    client = chat(gateway)
    client.send(ask(max_tokens=1000))
    client.until(lambda m: m["type"] == "delta")
    client.close()
    # The receive loop sees the close at once; the stream ends and flushes its token count.
    gateway.wait_for_metric("gateway_streams_active", 0)
    gateway.wait_for_metric("gateway_stream_cancellations_total", 1, reason="client_disconnect")
    generated = gateway.metric("gateway_model_tokens_generated_total", model="fake-docqa")
    assert 1 <= generated < 1000
    # A model still running would keep adding tokens: ask for another answer (which needs the
    # one stream slot, so the first must be gone) and compare after it.
    other = chat(gateway)
    other.send(ask(id="q2", max_tokens=3))
    assert other.answer("q2")[-1]["stop_reason"] == "max_tokens"
    gateway.wait_for_metric("gateway_streams_active", 0)
    after = gateway.metric("gateway_model_tokens_generated_total", model="fake-docqa")
    assert after == generated + 3


# --- follow-ups and busy ---------------------------------------------------------------------


FOLLOW_UP = "And what code is used?"


def test_follow_up_questions_use_the_conversation_so_far(start_gateway, chat):
    gateway = start_gateway()
    client = chat(gateway)
    client.send(ask())
    client.answer()
    client.send({"type": "ask", "id": "q2", "question": FOLLOW_UP})  # same document
    follow_up = client.answer("q2")
    assert follow_up[0]["history_truncated"] is False
    # On a new connection the same question has no context, so it gets another answer.
    fresh = chat(gateway)
    fresh.send(ask(id="q2", question=FOLLOW_UP))
    alone = fresh.answer("q2")
    assert "10 minutes" in text_of(follow_up) and "10 minutes" not in text_of(alone)
    assert follow_up[-1]["usage"]["input_tokens"] > alone[-1]["usage"]["input_tokens"]


def test_history_is_bounded_by_its_token_budget_oldest_turns_first(start_gateway, chat):
    gateway = start_gateway(ws_history_tokens=120)
    client = chat(gateway)
    inputs = []
    for number in range(4):
        client.send(ask(id=f"q{number}"))
        answer = client.answer(f"q{number}")
        inputs.append((answer[0]["history_truncated"], answer[-1]["usage"]["input_tokens"]))
    # An answer is ~85 tokens: one turn fits in 120, two do not.
    assert [truncated for truncated, _ in inputs] == [False, False, True, True]
    assert inputs[1][1] > inputs[0][1]
    assert inputs[2][1] == inputs[3][1] == inputs[1][1], "one turn kept, never more"


def test_an_ask_while_an_answer_streams_is_busy_409_and_retryable(start_gateway, chat):
    gateway = start_gateway(fake_behavior="stall", idle_timeout_seconds=30)
    client = chat(gateway)
    client.send(ask())
    client.until(lambda m: m["type"] == "delta")
    client.send(ask(id="q2"))
    busy = client.until(lambda m: m["type"] == "error")[-1]
    problem = busy["problem"]
    assert busy["id"] == "q2" and problem["code"] == "busy"
    assert problem["status"] == 409 and problem["retryable"] is True and "q1" in problem["detail"]
    assert gateway.metric("gateway_model_requests_total", model="fake-docqa") == 1
    client.send({"type": "cancel", "id": "q1"})
    assert client.until(lambda m: m["type"] == "end")[-1]["stop_reason"] == "cancelled"


# --- per-answer limits: the same guard as SSE --------------------------------------------------


def test_a_stalled_model_ends_the_answer_with_an_idle_timeout_error(start_gateway, chat):
    # The guard re-arms its timer lazily: the idle deadline is checked once the first-token one
    # has passed, so both are short here.
    gateway = start_gateway(
        fake_behavior="stall", idle_timeout_seconds=0.3, first_token_timeout_seconds=0.3
    )
    client = chat(gateway)
    client.send(ask())
    answer = client.answer()
    assert [m["type"] for m in answer] == ["start", "delta", "delta", "delta", "error"]
    problem = answer[-1]["problem"]
    assert problem["code"] == "idle_timeout" and problem["status"] == 504
    assert problem["request_id"] == answer[0]["request_id"]
    assert gateway.metric("gateway_stream_cancellations_total", reason="idle_timeout") == 1


def test_a_runaway_model_is_cut_at_max_tokens(start_gateway, chat):
    gateway = start_gateway(fake_behavior="runaway")
    client = chat(gateway)
    client.send(ask(max_tokens=20))
    answer = client.answer()
    assert len(answer) == 22 and answer[-1]["stop_reason"] == "max_tokens"


def test_a_model_failure_is_an_error_message_with_status_502(start_gateway, chat):
    client = chat(start_gateway(fake_behavior="fail_midstream"))
    client.send(ask())
    answer = client.answer()
    assert answer[-1]["problem"]["code"] == "model_error" and len(answer) == 7


def test_admission_limits_are_shared_with_http(start_gateway, chat):
    gateway = start_gateway(tokens_per_minute=300)
    client = chat(gateway)
    client.send(ask(max_tokens=200))  # prompt ~185 + 200 > 300
    error = client.recv()
    assert error["problem"]["code"] == "quota_exceeded" and error["problem"]["retryable"]
    assert error["problem"]["retry_after_seconds"] > 0


# --- authentication at connect ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_key", "query"),
    [(None, ""), ("wrong", ""), (None, f"?api_key={API_KEY}"), (None, f"?key={API_KEY}")],
)
def test_connections_without_a_valid_key_are_closed_4401_before_the_model(
    start_gateway, chat, api_key, query
):
    gateway = start_gateway()
    client = chat(gateway, api_key=api_key, query=query)
    code, reason = client.closed()
    assert (code, reason) == (4401, "unauthorized")
    [error] = client.received
    assert error["id"] is None and error["problem"]["code"] == "unauthorized"
    assert gateway.metric("gateway_rejections_total", code="unauthorized") == 1
    assert gateway.metric("gateway_model_requests_total", model="fake-docqa") == 0


def ticket_of(gateway, api_key: str = API_KEY) -> str:
    response = gateway.client(api_key).post("/v1/chat/tickets")
    assert response.status_code == 201 and response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["url"] == f"/v1/chat?ticket={body['ticket']}"
    return body["ticket"]


def test_a_ticket_opens_one_connection_once(start_gateway, chat):
    gateway = start_gateway()
    ticket = ticket_of(gateway)
    client = chat(gateway, api_key=None, query=f"?ticket={ticket}")
    client.send(ask(max_tokens=2))
    assert client.answer()[-1]["stop_reason"] == "max_tokens"
    reused = chat(gateway, api_key=None, query=f"?ticket={ticket}")
    assert reused.closed() == (4401, "unauthorized")
    assert "already used or expired" in reused.received[0]["problem"]["detail"]


def test_an_expired_or_unknown_ticket_is_refused(start_gateway, chat):
    gateway = start_gateway(ws_ticket_seconds=0.05)
    ticket = ticket_of(gateway)
    deadline = time.monotonic() + 0.05
    while time.monotonic() < deadline:  # the ticket's lifetime, measured, not slept blindly
        time.sleep(0.01)
    expired = chat(gateway, api_key=None, query=f"?ticket={ticket}")
    assert expired.closed() == (4401, "unauthorized")
    unknown = chat(gateway, api_key=None, query="?ticket=tkt_nothing")
    assert unknown.closed() == (4401, "unauthorized")


def test_tickets_need_the_api_key(start_gateway):
    gateway = start_gateway()
    response = gateway.client(api_key=None).post("/v1/chat/tickets")
    assert response.status_code == 401 and response.json()["code"] == "unauthorized"


def test_the_ticket_route_is_in_the_contract(start_gateway):
    app = start_gateway().app
    assert ("POST", "/v1/chat/tickets") in contract.contract_routes()
    assert contract.undocumented_routes(app) == set()


def test_connections_per_key_are_limited_and_closed_1013(start_gateway, chat):
    gateway = start_gateway(ws_max_connections_per_key=2)
    first, second = chat(gateway), chat(gateway)
    for client in (first, second):
        client.send({"type": "ping"})
        assert client.recv() == {"type": "pong"}
    third = chat(gateway)
    assert third.closed() == (1013, "rate_limited")
    assert third.received[0]["problem"]["code"] == "rate_limited"
    other_key = chat(gateway, api_key="other-key")
    other_key.send({"type": "ping"})
    assert other_key.recv() == {"type": "pong"}
    # Open now: first, second, other_key. The refused third was never counted.
    assert gateway.metric("gateway_ws_connections_active") == 3
    first.close()
    gateway.wait_for_metric("gateway_ws_connections_active", 2)
    deadline = time.monotonic() + WAIT
    while True:  # the server frees the slot once it has seen the close
        again = chat(gateway)
        try:
            again.send({"type": "ping"})
            if again.recv() == {"type": "pong"}:
                break
        except ConnectionClosed:
            assert again.ws.close_code == 1013
            assert time.monotonic() < deadline, "the closed connection's slot was never freed"


# --- bad input: the $default route --------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "message_id", "fragment"),
    [
        ("{nope", None, "not valid JSON"),
        (b"\x00\x01", None, "binary"),
        (json.dumps({"type": "hello", "id": "h1"}), "h1", "type must be one of"),
        (json.dumps({"type": "ask", "question": "q"}), None, "'id' is a required property"),
        (json.dumps({"type": "ask", "id": "q9", "question": ""}), "q9", "question"),
        (json.dumps(["ask"]), None, "JSON object"),
        (json.dumps({"type": "cancel"}), None, "'id' is a required property"),
    ],
)
def test_bad_input_gets_an_error_and_the_connection_stays_open(
    start_gateway, chat, frame, message_id, fragment
):
    gateway = start_gateway()
    client = chat(gateway)
    client.send_raw(frame)
    error = client.recv()
    assert error["type"] == "error" and error["id"] == message_id
    assert error["problem"]["code"] == "invalid_request" and fragment in error["problem"]["detail"]
    client.send({"type": "ping"})
    assert client.recv() == {"type": "pong"}
    assert gateway.metric("gateway_model_requests_total", model="fake-docqa") == 0


def test_a_message_above_the_size_limit_closes_1009(start_gateway, chat):
    gateway = start_gateway(ws_max_message_bytes=1000)
    client = chat(gateway)
    client.send(ask(question="x" * 900))  # just under the limit
    assert client.answer()[0]["type"] == "start"
    client.send_raw(json.dumps(ask(id="q2", question="x" * 1000)))
    assert client.closed() == (1009, "message too big")
    assert gateway.metric("gateway_model_requests_total", model="fake-docqa") == 1
    said = client.received[-1]  # why, before the close: no answer was streaming, so id null
    assert said["type"] == "error" and said["id"] is None
    assert said["problem"]["code"] == "request_too_large"


def test_a_close_during_an_answer_ends_that_answer_with_an_error_first(start_gateway, chat):
    gateway = start_gateway(
        ws_max_message_bytes=1000, fake_behavior="stall", idle_timeout_seconds=30
    )
    client = chat(gateway)
    client.send(ask())
    client.until(lambda m: m["type"] == "delta")
    client.send_raw(json.dumps(ask(id="q2", question="x" * 1000)))
    assert client.closed() == (1009, "message too big")
    mine = [m for m in client.received if m.get("id") == "q1"]
    check_answer_order(mine)  # still exactly one terminal message
    assert mine[-1]["problem"]["code"] == "request_too_large"
    assert [m for m in client.received if m["type"] == "error"] == [mine[-1]], "one error only"
    gateway.wait_for_metric("gateway_streams_active", 0)


def test_the_default_message_limit_is_api_gateways_128_kb(impl):
    assert impl.settings.Settings().ws_max_message_bytes == 128 * 1024


# --- per-connection limits -------------------------------------------------------------------


def test_messages_above_the_rate_get_rate_limited_then_close_1008(start_gateway, chat):
    gateway = start_gateway(
        ws_messages_per_second=0.001, ws_message_burst=3, ws_rate_limited_before_close=2
    )
    client = chat(gateway)
    for _ in range(3):
        client.send({"type": "ping"})
        assert client.recv() == {"type": "pong"}
    client.send({"type": "cancel", "id": "c1"})
    error = client.recv()
    assert error["id"] == "c1" and error["problem"]["code"] == "rate_limited"
    assert error["problem"]["retryable"] and error["problem"]["retry_after_seconds"] > 0
    client.send({"type": "ping"})
    assert client.closed() == (1008, "rate limit exceeded")


def test_an_idle_connection_is_closed_1001_and_any_message_restarts_the_timer(start_gateway, chat):
    gateway = start_gateway(ws_idle_timeout_seconds=0.4)
    client = chat(gateway)
    opened = last_message = time.monotonic()
    # A ping every 0.1 s keeps it open well past the 0.4 s idle timeout.
    while last_message - opened < 1.0:
        threading.Event().wait(0.1)  # pacing the client, not waiting for the server
        client.send({"type": "ping"})
        assert client.recv() == {"type": "pong"}
        last_message = time.monotonic()
    # Then silence: closed one idle timeout after the last message (the pong).
    assert client.closed() == (1001, "idle timeout")
    assert time.monotonic() - last_message >= 0.35
    said = client.received[-1]
    assert said["type"] == "error" and said["id"] is None
    assert said["problem"]["code"] == "connection_idle" and said["problem"]["retryable"]


def test_an_answer_counts_as_activity_for_the_idle_timer(start_gateway, chat):
    gateway = start_gateway(ws_idle_timeout_seconds=0.3, fake_tokens_per_second=20)
    client = chat(gateway)
    client.send(ask(max_tokens=16))  # ~0.8 s of tokens, longer than the idle timeout
    answer = client.answer()
    assert answer[-1]["stop_reason"] == "max_tokens"
    assert client.closed() == (1001, "idle timeout")


def test_a_connection_is_closed_1001_at_its_maximum_duration_even_when_busy(start_gateway, chat):
    gateway = start_gateway(
        ws_max_connection_seconds=0.5, ws_messages_per_second=1e6, ws_message_burst=1_000_000
    )
    client = chat(gateway)
    opened = time.monotonic()
    with pytest.raises(ConnectionClosed):
        while True:  # never idle: a ping and its pong, over and over
            client.send({"type": "ping"})
            client.recv()
    assert client.closed() == (1001, "maximum connection time reached")
    assert time.monotonic() - opened >= 0.4  # counted by the server from its accept
    # Pongs, then one word on why, whenever the deadline fell between a ping and its pong.
    *pongs, said = client.received
    assert pongs and all(message == {"type": "pong"} for message in pongs)
    assert said["type"] == "error" and said["id"] is None
    assert said["problem"]["code"] == "connection_expired"


def test_an_answer_streaming_at_the_maximum_duration_ends_with_connection_expired(
    start_gateway, chat
):
    gateway = start_gateway(
        ws_max_connection_seconds=0.5, fake_behavior="stall", idle_timeout_seconds=30
    )
    client = chat(gateway)
    client.send(ask())
    assert client.closed() == (1001, "maximum connection time reached")
    check_answer_order(client.received)
    error = client.received[-1]
    assert error["type"] == "error" and error["id"] == "q1"
    assert error["problem"]["code"] == "connection_expired" and error["problem"]["status"] == 408
    gateway.wait_for_metric("gateway_streams_active", 0)
    assert gateway.metric("gateway_rejections_total", code="connection_expired") == 1


def test_ws_limits_default_to_the_api_gateway_values(impl):
    settings = impl.settings.Settings()
    assert settings.ws_idle_timeout_seconds == 600  # 10 minutes [apigw-ws-quotas]
    assert settings.ws_max_connection_seconds == 7200  # 2 hours [apigw-ws-quotas]
    assert settings.ws_message_burst >= 10
    assert settings.ws_per_message_deflate is False


# --- server shutdown ---------------------------------------------------------------------------


def test_shutdown_sends_each_open_answer_an_error_then_closes_1012(start_gateway, chat):
    gateway = start_gateway(fake_behavior="stall", idle_timeout_seconds=30)
    streaming, idle = chat(gateway), chat(gateway)
    streaming.send(ask())
    streaming.until(lambda m: m["type"] == "delta" and m["index"] == 2)
    idle.send({"type": "ping"})
    assert idle.recv() == {"type": "pong"}
    stopper = threading.Thread(target=gateway.server.stop)
    stopper.start()
    try:
        assert streaming.closed() == (1012, "server restarting")
        assert idle.closed()[0] == 1012
    finally:
        stopper.join(WAIT)
    error = streaming.received[-1]
    assert error["type"] == "error" and error["id"] == "q1"
    assert error["problem"]["code"] == "shutting_down" and error["problem"]["status"] == 503
    assert [m["type"] for m in streaming.received].count("error") == 1
    said = idle.received[-1]  # no answer streaming: told about the connection
    assert said["type"] == "error" and said["id"] is None
    assert said["problem"]["code"] == "shutting_down"
    assert gateway.metric("gateway_streams_active") == 0


def test_a_turn_counts_its_tokens_once_for_the_prompt_and_the_history_budget(impl):
    turn = impl.model.Turn("How long may a connection stay idle?", "Ten minutes.")
    count = impl.tokenizer.count_tokens
    assert turn.tokens == count(turn.question) + count(turn.answer)
    alone = impl.model.ModelRequest("And after that?", "Idle connections close.", 16)
    follow_up = impl.model.ModelRequest("And after that?", "Idle connections close.", 16, (turn,))
    assert follow_up.prompt_tokens == alone.prompt_tokens + turn.tokens


# --- the tickets and the limits kept in Redis (GATEWAY_REDIS_URL) ------------------------------


def test_on_redis_a_ticket_from_one_gateway_opens_one_connection_on_another(
    start_gateway, chat, redis_url
):
    # Two apps sharing one Redis, as two workers do: a ticket is redeemed once, wherever.
    issuer = start_gateway(redis_url=redis_url)
    other = start_gateway(redis_url=redis_url)
    ticket = ticket_of(issuer)
    client = chat(other, api_key=None, query=f"?ticket={ticket}")
    client.send(ask(max_tokens=2))
    assert client.answer()[-1]["stop_reason"] == "max_tokens"
    for gateway in (issuer, other):
        reused = chat(gateway, api_key=None, query=f"?ticket={ticket}")
        assert reused.closed() == (4401, "unauthorized")


def test_on_redis_an_ask_over_the_rate_is_refused_as_in_memory(start_gateway, chat, redis_url):
    gateway = start_gateway(redis_url=redis_url, rate_limit_rps=0.001, rate_limit_burst=1)
    other = start_gateway(redis_url=redis_url, rate_limit_rps=0.001, rate_limit_burst=1)
    # The key's one request of its burst, spent over HTTP on the other gateway.
    assert other.client().get("/v1/documents").status_code == 200
    client = chat(gateway)
    client.send(ask(max_tokens=2))
    [refused] = client.until(lambda m: m.get("id") == "q1")
    assert refused["type"] == "error" and refused["problem"]["code"] == "rate_limited"
    assert gateway.metric("gateway_model_requests_total", model="fake-docqa") == 0


def test_with_redis_down_a_ticket_cannot_be_redeemed_and_the_socket_closes_1013(
    start_gateway, chat, redis_server
):
    gateway = start_gateway(redis_url=redis_server.url, redis_timeout_seconds=0.2)
    ticket = ticket_of(gateway)
    redis_server.stop()
    refused = chat(gateway, api_key=None, query=f"?ticket={ticket}")
    assert refused.closed() == (1013, "limits_unavailable")
    [error] = refused.received
    assert error["id"] is None and error["problem"]["code"] == "limits_unavailable"
    assert error["problem"]["status"] == 503
    assert gateway.metric("gateway_model_requests_total", model="fake-docqa") == 0
