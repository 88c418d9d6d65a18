"""The gateway end to end: a real server, real clients, every answer checked against the contract.

One test per limit and per error code. These are not lab tests: they exercise the whole request
path, which in labs/ works only once every lab is done.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import httpx_sse
import pytest
from support import QUESTION

from reference_impl import sse
from reference_impl.contract import validate as contract

pytestmark = pytest.mark.timeout(60)


def problem_of(response: httpx.Response, code: str, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code and body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


# --- the happy path --------------------------------------------------------------------------


def test_health_and_documents_listing(start_gateway):
    gateway = start_gateway()
    client = gateway.client()
    assert client.get("/healthz").json() == {"status": "ok"}
    documents = client.get("/v1/documents").json()["documents"]
    assert {d["id"] for d in documents} >= {"api-gateway-websocket-limits", "server-sent-events"}


def test_stream_is_start_deltas_end_with_increasing_ids(start_gateway):
    gateway = start_gateway()
    result = gateway.client().stream(QUESTION)
    assert result.response.headers["content-type"].startswith("text/event-stream")
    assert result.response.headers["cache-control"] == "no-store"
    assert result.names[0] == "start" and result.names[-1] == "end"
    assert set(result.names[1:-1]) == {"delta"}
    assert [int(e["id"]) for e in result.events] == list(range(1, len(result.events) + 1))
    start, end = result.data(0), result.data(-1)
    assert start["request_id"] == result.response.headers["x-request-id"]
    assert start["limits"]["max_tokens"] == gateway.settings.default_max_tokens
    assert end["stop_reason"] == "end_turn"
    assert end["usage"]["output_tokens"] == len(result.events) - 2
    assert "10 minutes" in result.text


def test_full_response_endpoint_returns_the_same_answer_in_one_body(start_gateway):
    gateway = start_gateway()
    client = gateway.client()
    whole = client.post("/v1/ask", json=QUESTION).json()
    streamed = client.stream(QUESTION)
    assert whole["answer"] == streamed.text
    assert whole["usage"] == streamed.data(-1)["usage"]
    assert whole["ttft_ms"] <= whole["duration_ms"]


def test_inline_document_is_answered_from_its_text(start_gateway):
    body = {"question": "What colour is the lamp?", "document": "The lamp is green. It is old."}
    answer = start_gateway().client().post("/v1/ask", json=body).json()["answer"]
    assert answer == "The lamp is green."


# --- bad input: a clear structured error, and the model is never called ----------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({**QUESTION, "temperature": 0.2}, "temperature"),
        ({"document_id": "server-sent-events"}, "question"),
        ({"question": "", "document_id": "server-sent-events"}, "question"),
        ({"question": "q"}, "exactly one of document_id or document"),
        ({**QUESTION, "document": "both"}, "exactly one of document_id or document"),
        ({"question": "q", "document_id": "no-such-doc"}, "built-in documents"),
        ({**QUESTION, "max_tokens": 0}, "max_tokens"),
        ({**QUESTION, "max_tokens": True}, "max_tokens"),
        ({"question": 42, "document_id": "server-sent-events"}, "question"),
    ],
)
def test_invalid_bodies_get_invalid_request_and_never_reach_the_model(
    start_gateway, body, fragment
):
    gateway = start_gateway()
    body_out = problem_of(gateway.client().post("/v1/ask", json=body), "invalid_request", 400)
    assert fragment in body_out["detail"] and body_out["retryable"] is False
    assert gateway.metric("gateway_model_requests_total", model="fake-docqa") == 0


def test_malformed_json_and_wrong_media_type(start_gateway):
    client = start_gateway().client()
    bad_json = client.post(
        "/v1/ask", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    problem_of(bad_json, "invalid_request", 400)
    as_text = client.post("/v1/ask", content=b"question", headers={"Content-Type": "text/plain"})
    problem_of(as_text, "unsupported_media_type", 415)


def test_missing_or_unknown_key_is_401_with_www_authenticate(start_gateway):
    gateway = start_gateway()
    for client in (gateway.client(api_key=None), gateway.client(api_key="wrong")):
        response = client.post("/v1/ask/stream", json=QUESTION)
        problem_of(response, "unauthorized", 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert gateway.metric("gateway_rejections_total", code="unauthorized") == 2


def test_unknown_path_and_method_are_problems_too(start_gateway):
    client = start_gateway().client()
    problem_of(client.http.get("/v2/nothing"), "not_found", 404)
    problem_of(client.http.get("/v1/ask"), "method_not_allowed", 405)


# --- limits at the edge ----------------------------------------------------------------------


def test_oversized_body_is_refused_from_content_length_before_it_is_read(start_gateway):
    gateway = start_gateway(max_request_bytes=1000)
    body = {**QUESTION, "question": "x" * 2000}
    response = gateway.client().post("/v1/ask/stream", json=body)
    problem_of(response, "request_too_large", 413)
    assert gateway.metric("gateway_model_requests_total", model="fake-docqa") == 0


def test_chunked_body_is_counted_while_read_and_cut_at_the_limit(start_gateway):
    gateway = start_gateway(max_request_bytes=1000)

    def chunks():  # no Content-Length: httpx sends Transfer-Encoding: chunked
        yield b'{"question": "'
        for _ in range(50):
            yield b"x" * 100
        yield b'", "document_id": "server-sent-events"}'

    response = gateway.client().post(
        "/v1/ask", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    problem_of(response, "request_too_large", 413)
    assert gateway.metric("gateway_model_requests_total", model="fake-docqa") == 0


def test_max_tokens_above_the_cap_is_refused_not_clamped(start_gateway):
    gateway = start_gateway(max_tokens_cap=64)
    body = problem_of(
        gateway.client().post("/v1/ask", json={**QUESTION, "max_tokens": 65}),
        "max_tokens_exceeded",
        400,
    )
    assert "64" in body["detail"]
    assert gateway.metric("gateway_model_requests_total", model="fake-docqa") == 0


def test_the_capped_max_tokens_is_what_the_model_is_asked_for(start_gateway):
    asked = []

    class RecordingModel:
        name = "recording"

        async def stream(self, request):
            asked.append(request.max_tokens)
            from reference_impl.model import ModelStop, TextDelta

            yield TextDelta("ok")
            yield ModelStop("end_turn", request.prompt_tokens, 1)

    gateway = start_gateway(model=RecordingModel(), max_tokens_cap=64, default_max_tokens=32)
    client = gateway.client()
    client.post("/v1/ask", json=QUESTION)
    client.post("/v1/ask", json={**QUESTION, "max_tokens": 64})
    assert asked == [32, 64]


def test_stream_stops_at_max_tokens_with_stop_reason_max_tokens(start_gateway):
    result = start_gateway().client().stream({**QUESTION, "max_tokens": 5})
    assert result.names == ["start"] + ["delta"] * 5 + ["end"]
    assert result.data(-1)["stop_reason"] == "max_tokens"


def test_prompt_over_the_token_limit_is_refused(start_gateway):
    gateway = start_gateway(max_prompt_tokens=50)
    body = {"question": "What?", "document": "word " * 100}
    problem_of(gateway.client().post("/v1/ask", json=body), "prompt_too_long", 400)


def test_rate_limit_answers_429_with_retry_after(start_gateway):
    gateway = start_gateway(rate_limit_rps=0.5, rate_limit_burst=2)
    client = gateway.client()
    assert client.get("/v1/documents").status_code == 200
    assert client.get("/v1/documents").status_code == 200
    refused = client.get("/v1/documents")
    body = problem_of(refused, "rate_limited", 429)
    assert body["retryable"] is True and body["retry_after_seconds"] > 0
    assert int(refused.headers["retry-after"]) >= 1
    # Another key has its own bucket.
    assert gateway.client(api_key="other-key").get("/v1/documents").status_code == 200


def test_token_budget_is_reserved_at_admission_and_settled_after(start_gateway):
    gateway = start_gateway(
        tokens_per_minute=900, fake_behavior="stall", idle_timeout_seconds=30, ping_seconds=30
    )
    client = gateway.client()
    # A stalled stream holds prompt (~185) + max_tokens (400) of the 900-token budget...
    with httpx_sse.connect_sse(
        client.http, "POST", "/v1/ask/stream", json={**QUESTION, "max_tokens": 400}
    ) as source:
        assert source.response.status_code == 200
        events = source.iter_sse()  # keep it: dropping the iterator closes the connection
        assert next(events).event == "start"
        # ...so a second request that could overshoot the budget is refused while it streams.
        refused = client.post("/v1/ask", json={**QUESTION, "max_tokens": 400})
        body = problem_of(refused, "quota_exceeded", 429)
        assert 0 < body["retry_after_seconds"] <= 60
    gateway.wait_for_metric("gateway_streams_active", 0)
    # The stalled stream used only its prompt and 3 tokens: settling frees the rest.
    with httpx_sse.connect_sse(
        client.http, "POST", "/v1/ask/stream", json={**QUESTION, "max_tokens": 400}
    ) as source:
        assert source.response.status_code == 200


def test_concurrent_streams_per_key_are_limited_and_freed_on_disconnect(start_gateway):
    gateway = start_gateway(max_concurrent_streams=1, fake_behavior="stall", ping_seconds=30)
    client = gateway.client()
    with httpx_sse.connect_sse(client.http, "POST", "/v1/ask/stream", json=QUESTION) as source:
        events = source.iter_sse()  # keep it: dropping the iterator closes the connection
        assert next(events).event == "start"
        problem_of(client.post("/v1/ask/stream", json=QUESTION), "rate_limited", 429)
    gateway.wait_for_metric("gateway_streams_active", 0)
    with httpx_sse.connect_sse(client.http, "POST", "/v1/ask/stream", json=QUESTION) as source:
        assert source.response.status_code == 200


def test_gateway_wide_stream_limit_answers_503_overloaded(start_gateway):
    gateway = start_gateway(max_total_streams=1, fake_behavior="stall", ping_seconds=30)
    first, second = gateway.client(), gateway.client(api_key="other-key")
    with httpx_sse.connect_sse(first.http, "POST", "/v1/ask/stream", json=QUESTION) as source:
        events = source.iter_sse()  # keep it: dropping the iterator closes the connection
        assert next(events).event == "start"
        response = second.post("/v1/ask/stream", json=QUESTION)
        body = problem_of(response, "overloaded", 503)
        assert body["retryable"] is True and "retry-after" in response.headers


# --- errors before the first token are plain HTTP errors ---------------------------------------


def test_throttled_model_is_an_http_429_not_a_200_stream(start_gateway):
    gateway = start_gateway(fake_behavior="throttled")
    result = gateway.client().stream(QUESTION)
    assert result.events == []
    body = problem_of(result.response, "rate_limited", 429)
    assert body["retryable"] is True and "retry-after" in result.response.headers
    assert gateway.metric("gateway_streams_active") == 0


def test_first_token_timeout_is_an_http_504_model_timeout(start_gateway):
    gateway = start_gateway(fake_first_token_seconds=5, first_token_timeout_seconds=0.2)
    started = time.monotonic()
    result = gateway.client().stream(QUESTION)
    problem_of(result.response, "model_timeout", 504)
    assert time.monotonic() - started < 5, "the edge must not wait for the model"
    assert gateway.metric("gateway_streams_active") == 0


# --- errors after the first token end the stream cleanly ---------------------------------------


def test_stalled_model_gets_an_idle_timeout_error_event(start_gateway):
    gateway = start_gateway(fake_behavior="stall", idle_timeout_seconds=0.3, ping_seconds=30)
    result = gateway.client().stream(QUESTION)
    assert result.response.status_code == 200
    assert result.names == ["start", "delta", "delta", "delta", "error"]
    error = result.data(-1)
    assert error["code"] == "idle_timeout" and error["status"] == 504
    assert error["request_id"] == result.data(0)["request_id"]
    assert gateway.metric("gateway_stream_cancellations_total", reason="idle_timeout") == 1


def test_runaway_model_is_cut_at_max_tokens_by_the_edge(start_gateway):
    gateway = start_gateway(fake_behavior="runaway")
    result = gateway.client().stream({**QUESTION, "max_tokens": 20})
    assert result.names.count("delta") == 20
    assert result.data(-1)["stop_reason"] == "max_tokens"
    gateway.wait_for_metric("gateway_streams_active", 0)
    generated = gateway.metric("gateway_model_tokens_generated_total", model="fake-docqa")
    assert 20 <= generated <= 22, "the model must stop soon after the edge stops pulling"


def test_runaway_model_is_cut_at_the_maximum_stream_duration(start_gateway):
    gateway = start_gateway(
        fake_behavior="runaway", fake_tokens_per_second=50, max_stream_seconds=0.5
    )
    result = gateway.client().stream({**QUESTION, "max_tokens": 1000})
    error = result.data(-1)
    assert result.names[-1] == "error" and error["code"] == "stream_timeout"
    assert error["status"] == 504 and error["retryable"] is False
    assert 0 < result.names.count("delta") < 1000


def test_model_failure_mid_stream_is_an_error_event_with_status_502(start_gateway):
    result = start_gateway(fake_behavior="fail_midstream").client().stream(QUESTION)
    assert result.names == ["start"] + ["delta"] * 5 + ["error"]
    assert result.data(-1)["code"] == "model_error" and result.data(-1)["status"] == 502


def test_keep_alive_comments_flow_while_the_model_is_quiet(start_gateway):
    gateway = start_gateway(fake_tokens_per_second=4, ping_seconds=0.05)
    with gateway.client().http.stream(
        "POST", "/v1/ask/stream", json={**QUESTION, "max_tokens": 3}
    ) as response:
        raw = response.read().decode()
    assert ": ping\n" in raw
    events = sse.parse_stream(raw)
    assert events[-1]["event"] == "end" and raw.index(": ping\n") < raw.index("event: end")


def test_unexpected_model_errors_leak_no_internals(start_gateway):
    class BrokenModel:
        name = "broken"

        async def stream(self, request):
            raise RuntimeError("secret at /srv/gateway/model.py line 12")
            yield  # an async generator that fails on first use

    result = start_gateway(model=BrokenModel()).client().stream(QUESTION)
    body = problem_of(result.response, "model_error", 502)
    assert "secret" not in result.response.text and "/srv" not in result.response.text
    assert "Traceback" not in result.response.text and body["detail"]


def test_internal_errors_are_a_500_problem_without_a_stack_trace(start_gateway):
    class NamelessModel:
        @property
        def name(self):
            raise KeyError("internal detail /etc/secret")

    gateway = start_gateway(model=NamelessModel())
    response = gateway.client().http.post("/v1/ask", json=QUESTION)
    problem_of(response, "internal_error", 500)
    assert "secret" not in response.text and "Traceback" not in response.text


# --- a client that leaves cancels the model ----------------------------------------------------


def test_client_disconnect_stops_generation_and_frees_the_slot(start_gateway):
    gateway = start_gateway(fake_tokens_per_second=100, max_concurrent_streams=1)
    client = gateway.client()
    with httpx_sse.connect_sse(
        client.http, "POST", "/v1/ask/stream", json={**QUESTION, "max_tokens": 1000}
    ) as source:
        events = source.iter_sse()
        assert next(events).event == "start"
        assert next(events).event == "delta"
    # Leaving the block closed the connection mid-stream.
    gateway.wait_for_metric("gateway_streams_active", 0)
    gateway.wait_for_metric("gateway_stream_cancellations_total", 1, reason="client_disconnect")
    generated = gateway.metric("gateway_model_tokens_generated_total", model="fake-docqa")
    time.sleep(0.2)  # at 100 tokens/s a model still running would add ~20 tokens by now
    assert gateway.metric("gateway_model_tokens_generated_total", model="fake-docqa") == generated
    # The slot is free again.
    assert client.post("/v1/ask", json={**QUESTION, "max_tokens": 3}).status_code == 200


# --- observability and the contract ------------------------------------------------------------


def test_metrics_expose_the_cost_meter_and_the_limits_at_work(start_gateway):
    gateway = start_gateway()
    client = gateway.client()
    client.stream({**QUESTION, "max_tokens": 4})
    client.post("/v1/ask", json={**QUESTION, "max_tokens": 9999})
    text = client.get("/metrics").text
    for name in (
        "gateway_model_tokens_generated_total",
        "gateway_tokens_delivered_total",
        'gateway_rejections_total{code="max_tokens_exceeded"} 1.0',
        "gateway_streams_active",
        "gateway_ttft_seconds_bucket",
        "gateway_stream_duration_seconds_bucket",
    ):
        assert name in text
    assert gateway.metric("gateway_tokens_delivered_total") == 4


def test_contract_is_served_as_written_and_docs_are_offline(start_gateway):
    client = start_gateway().client()
    served = client.get("/openapi.yaml").text
    assert served == contract.CONTRACT_PATH.read_text(encoding="utf-8")
    page = client.get("/docs").text
    assert "/v1/ask/stream" in page and "<script src=" not in page and "<link " not in page


def test_every_route_is_in_the_contract_and_every_path_is_served(start_gateway):
    app = start_gateway().app
    assert contract.undocumented_routes(app) == set()
    assert contract.unimplemented_routes(app) == set()


def test_settings_read_the_environment_with_fractions_and_key_lists(monkeypatch, impl):
    monkeypatch.setenv("GATEWAY_API_KEYS", "alpha, beta")
    monkeypatch.setenv("GATEWAY_MAX_STREAM_SECONDS", "1.5")
    settings = impl.settings.Settings()
    assert settings.api_keys == ("alpha", "beta") and settings.max_stream_seconds == 1.5
    monkeypatch.setenv("GATEWAY_IDLE_TIMEOUT_SECONDS", "-1")
    with pytest.raises(ValueError):
        impl.settings.Settings()


def test_the_fake_model_is_deterministic(impl):
    settings = impl.settings.Settings(fake_first_token_seconds=0, fake_tokens_per_second=10_000)
    request = impl.model.ModelRequest("What is a burst?", "A burst is the bucket size. Rain.", 50)

    async def collect():
        return [e async for e in impl.model.FakeModel(settings).stream(request)]

    first, second = asyncio.run(collect()), asyncio.run(collect())
    assert first == second and first[-1].stop_reason == "end_turn"
    assert "".join(e.text for e in first[:-1]) == "A burst is the bucket size."


def test_problem_body_fields_are_exactly_the_contracts():
    schema = contract.load_contract()["components"]["schemas"]["Problem"]
    from reference_impl.errors import CATALOGUE, problem

    assert set(CATALOGUE) <= set(schema["properties"]["code"]["enum"])
    body = problem("rate_limited", "d", "req_0123456789abcdef", retry_after_seconds=1.5)
    assert set(body) <= set(schema["properties"])
    assert json.loads(json.dumps(body)) == body


def test_explicit_nulls_are_refused_as_the_contract_has_no_nullable_fields(start_gateway):
    client = start_gateway().client()
    response = client.post("/v1/ask", json={**QUESTION, "max_tokens": None})
    assert "may not be null" in problem_of(response, "invalid_request", 400)["detail"]


def test_the_contract_states_the_default_limits_the_settings_enforce(impl):
    schema = contract.load_contract()["components"]["schemas"]["AskRequest"]["properties"]
    defaults = impl.settings.Settings()
    assert schema["max_tokens"]["maximum"] == defaults.max_tokens_cap


def test_the_contract_lists_exactly_the_built_in_documents(impl):
    schema = contract.load_contract()["components"]["schemas"]["DocumentId"]
    assert sorted(schema["enum"]) == sorted(impl.documents.builtin())
