"""The Bedrock adapter (reference_impl/bedrock.py), offline, fed real AWS event streams.

moto has no `converse_stream`, so every test here runs inside `moto.mock_aws()` (nothing can
reach AWS) and answers the client's call with genuine binary event-stream frames parsed by
botocore's own parser (`aws/fake_bedrock.py`): the adapter gets a real `EventStream`, exception
events mid-stream included. Errors before the stream are the modeled exceptions botocore
raises from Bedrock's error responses.
"""

from __future__ import annotations

import asyncio
import os

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from support import API_KEY, QUESTION

pytestmark = pytest.mark.timeout(60)
SECRET = "arn:aws:bedrock:us-east-1:123456789012:foundation-model/secret-model account 1234"


@pytest.fixture
def aws(monkeypatch):
    """Fake credentials and a region, and moto in front of every AWS endpoint."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


@pytest.fixture
def client(aws):
    return boto3.client("bedrock-runtime", region_name="us-east-1")


@pytest.fixture
def fake(impl):
    return impl.load("aws.fake_bedrock")


# Any id will do offline; the gateway has no default (models reach end-of-life).
MODEL_ID = "amazon.nova-lite-v1:0"


def model_of(impl, client, **settings):
    settings.setdefault("bedrock_model_id", MODEL_ID)
    return impl.bedrock.BedrockModel(impl.settings.Settings(**settings), client=client)


def collect(model, request, stop_after: int | None = None):
    """The model's events, and the GatewayError that ended them (or None)."""

    async def run():
        events, stream = [], model.stream(request)
        try:
            async for event in stream:
                events.append(event)
                if stop_after is not None and len(events) == stop_after:
                    break
        except Exception as error:  # noqa: BLE001 - the test inspects it
            return events, error
        finally:
            await stream.aclose()
        return events, None

    return asyncio.run(run())


def request_of(impl, max_tokens=64, history=()):
    return impl.model.ModelRequest(
        question="What ends a stream?",
        document="A stream ends with messageStop.",
        max_tokens=max_tokens,
        history=history,
    )


def test_the_request_carries_the_capped_max_tokens_the_model_id_and_the_messages(
    impl, client, fake
):
    calls = fake.install(client, fake.answer(["ok"]))
    model = model_of(impl, client, bedrock_model_id="amazon.nova-lite-v1:0")
    history = (impl.model.Turn("What starts it?", "messageStart."),)
    collect(model, request_of(impl, max_tokens=77, history=history))
    sent = calls[0]
    assert sent["modelId"] == "amazon.nova-lite-v1:0"
    assert sent["inferenceConfig"] == {"maxTokens": 77}
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["user", "assistant", "user"]
    first, last = sent["messages"][0]["content"][0]["text"], sent["messages"][-1]["content"]
    assert "A stream ends with messageStop." in first and "What starts it?" in first
    assert last == [{"text": "What ends a stream?"}]


def test_deltas_stream_in_order_then_one_stop_with_bedrock_usage_and_latency(impl, client, fake):
    fake.install(client, fake.answer(["Str", "eams", " end."], input_tokens=31, latency_ms=250))
    events, error = collect(model_of(impl, client), request_of(impl))
    assert error is None
    assert [e.text for e in events[:-1]] == ["Str", "eams", " end."]
    stop = events[-1]
    assert isinstance(stop, impl.model.ModelStop)
    assert (stop.stop_reason, stop.input_tokens, stop.output_tokens) == ("end_turn", 31, 3)
    assert stop.latency_ms == 250


@pytest.mark.parametrize(
    ("bedrock_reason", "ours"),
    [
        ("max_tokens", "max_tokens"),
        ("stop_sequence", "stop_sequence"),
        ("model_context_window_exceeded", "max_tokens"),
    ],
)
def test_stop_reasons_become_the_contracts(impl, client, fake, bedrock_reason, ours):
    fake.install(client, fake.answer(["a", "b"], stop_reason=bedrock_reason))
    events, error = collect(model_of(impl, client), request_of(impl, max_tokens=2))
    assert error is None and events[-1].stop_reason == ours


def test_a_tool_use_stop_is_a_model_error(impl, client, fake):
    fake.install(client, fake.answer(["a"], stop_reason="tool_use"))
    _, error = collect(model_of(impl, client), request_of(impl))
    assert error.code == "model_error"


PRE_STREAM = [
    ("ThrottlingException", 429, "rate_limited", True),
    ("ModelTimeoutException", 408, "model_timeout", False),
    ("ValidationException", 400, "invalid_request", False),
    ("ServiceUnavailableException", 503, "overloaded", True),
    ("ModelNotReadyException", 429, "overloaded", True),
    ("AccessDeniedException", 403, "internal_error", False),
    ("ResourceNotFoundException", 404, "internal_error", False),
    ("InternalServerException", 500, "model_error", False),
    ("SomethingNewException", 400, "model_error", False),
]


@pytest.mark.parametrize(("aws_code", "status", "ours", "retry_after"), PRE_STREAM)
def test_errors_before_the_stream_map_to_the_catalogue_and_leak_nothing(
    impl, client, fake, aws_code, status, ours, retry_after
):
    fake.fail_before_stream(client, aws_code, SECRET, status)
    events, error = collect(model_of(impl, client), request_of(impl))
    assert events == [] and isinstance(error, impl.errors.GatewayError)
    assert error.code == ours
    assert (error.retry_after_seconds is not None) == retry_after
    assert "arn:" not in error.detail and "123456789012" not in error.detail


def test_a_stubbed_throttling_exception_is_rate_limited(impl, client):
    """The same through botocore's Stubber (technique A), as a second witness."""
    stubber = Stubber(client)
    stubber.add_client_error(
        "converse_stream",
        service_error_code="ThrottlingException",
        service_message=SECRET,
        http_status_code=429,
    )
    with stubber:
        _, error = collect(model_of(impl, client), request_of(impl))
    assert error.code == "rate_limited" and SECRET not in str(error)


IN_STREAM = [
    ("throttlingException", "rate_limited"),
    ("modelStreamErrorException", "model_error"),
    ("validationException", "invalid_request"),
    ("internalServerException", "model_error"),
    ("serviceUnavailableException", "overloaded"),
]


@pytest.mark.parametrize(("exception_type", "ours"), IN_STREAM)
def test_exception_events_inside_the_stream_map_to_the_catalogue(
    impl, client, fake, exception_type, ours
):
    calls = fake.install(client, fake.answer(["one", "two"], fail_with=(exception_type, SECRET)))
    events, error = collect(model_of(impl, client), request_of(impl))
    assert [e.text for e in events] == ["one", "two"]
    assert error.code == ours and "arn:" not in error.detail
    assert calls.streams[0].closed


def test_stopping_early_closes_the_bedrock_stream(impl, client, fake):
    calls = fake.install(client, fake.answer([f"t{i}" for i in range(50)]))
    events, error = collect(model_of(impl, client), request_of(impl), stop_after=2)
    assert len(events) == 2 and error is None
    assert calls.streams[0].closed  # EventStream.close() closed the HTTP body


def test_the_client_retries_with_backoff_and_bounded_timeouts_from_the_settings(impl, aws):
    settings = impl.settings.Settings(
        bedrock_retry_mode="adaptive", bedrock_max_attempts=4, bedrock_read_timeout_seconds=30
    )
    client = impl.bedrock.make_client(settings)
    config = client.meta.config
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 4}
    assert (config.read_timeout, config.connect_timeout) == (30, 5.0)
    assert client.meta.region_name == "us-east-1"


def test_gateway_model_bedrock_builds_the_bedrock_adapter(impl, aws):
    settings = impl.settings.Settings(model="bedrock", bedrock_model_id="amazon.nova-lite-v1:0")
    model = impl.gateway.build_model(settings)
    assert model.name == "bedrock:amazon.nova-lite-v1:0"


def test_gateway_model_bedrock_without_a_model_id_is_a_clear_settings_error(impl):
    with pytest.raises(ValueError, match="GATEWAY_BEDROCK_MODEL_ID"):
        impl.settings.Settings(model="bedrock")


def test_the_gateway_streams_a_bedrock_answer_as_server_sent_events(
    impl, client, fake, start_gateway
):
    calls = fake.install(client, fake.answer(["API ", "Gateway ", "closes ", "idle."]))
    model = model_of(impl, client)
    gateway = start_gateway(model=model)
    result = gateway.client().stream({**QUESTION, "max_tokens": 64})
    assert result.response.status_code == 200
    assert result.names == ["start", "delta", "delta", "delta", "delta", "end"]
    assert result.text == "API Gateway closes idle."
    assert result.data(-1)["stop_reason"] == "end_turn"
    assert calls[0]["inferenceConfig"]["maxTokens"] == 64


def test_a_throttled_bedrock_is_a_429_problem_with_retry_after(impl, client, fake, start_gateway):
    fake.fail_before_stream(client, "ThrottlingException", SECRET, 429)
    gateway = start_gateway(model=model_of(impl, client))
    result = gateway.client().stream(QUESTION)
    assert result.response.status_code == 429
    body = result.response.json()
    assert body["code"] == "rate_limited" and body["retryable"] is True
    assert "Retry-After" in result.response.headers
    assert "arn:" not in result.response.text


@pytest.mark.skipif(
    os.environ.get("AIP_SMOKE_BEDROCK") != "1"
    or not os.environ.get("GATEWAY_BEDROCK_MODEL_ID")
    or not boto3.session.Session().get_credentials(),
    reason="real Bedrock smoke test: set AIP_SMOKE_BEDROCK=1, GATEWAY_BEDROCK_MODEL_ID and AWS "
    "credentials (never in CI)",
)
def test_smoke_real_bedrock_answers_a_question(impl):  # pragma: no cover - needs AWS
    """Costs a few tokens: GATEWAY_BEDROCK_MODEL_ID and GATEWAY_BEDROCK_REGION pick the model."""
    model = impl.bedrock.BedrockModel(impl.settings.Settings())  # reads GATEWAY_* from the env
    events, error = collect(model, request_of(impl, max_tokens=32))
    assert error is None and events and events[-1].stop_reason in ("end_turn", "max_tokens")


# --- billing: Bedrock's own usage, not our estimate ---------------------------------------------


def test_the_end_event_and_the_bill_say_bedrocks_usage_not_our_tokenizers(
    impl, client, fake, start_gateway
):
    # Bedrock counts 31 prompt tokens and 9 output tokens; our tokenizer would say ~160 and 3.
    usage = {"input_tokens": 31, "output_tokens": 9}
    frames = fake.answer(["Str", "eams", " end."], input_tokens=31, output_tokens=9)
    fake.install(client, frames, frames)
    model = model_of(impl, client)
    gateway = start_gateway(model=model, tokens_per_minute=2000)
    http = gateway.client()
    streamed = http.stream({**QUESTION, "max_tokens": 1000})
    assert streamed.data(-1)["usage"] == usage
    whole = http.post("/v1/ask", json={**QUESTION, "max_tokens": 1000}).json()
    assert whole["usage"] == usage
    gateway.wait_for_metric("gateway_streams_active", 0)
    assert gateway.metric("gateway_model_tokens_generated_total", model=model.name) == 2 * 9
    settings = gateway.settings
    per_stream = 31 / 1000 * settings.price_per_1k_input_tokens
    per_stream += 9 / 1000 * settings.price_per_1k_output_tokens
    assert gateway.metric("gateway_model_cost_dollars_total") == pytest.approx(2 * per_stream)
    # The token budget is settled to what Bedrock counted, not to the reservation.
    budget = gateway.app.state.gateway.admission.admission.budgets[API_KEY]
    assert budget.in_use() == 2 * (31 + 9)
