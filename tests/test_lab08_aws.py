"""Lab 08: the AWS path (reference_impl/bedrock.py and aws/ws_handler.py).

Two tasks: map Bedrock's errors, before and inside the stream, into the gateway's one error
catalogue without leaking AWS's message; and stop a WebSocket answer when API Gateway says the
client has left (GoneException), closing the Bedrock stream. Everything runs offline inside
`moto.mock_aws()`, with real Bedrock event streams parsed by botocore (aws/fake_bedrock.py).
"""

from __future__ import annotations

import asyncio
import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

lab08 = pytest.mark.lab("08")
# The Lab Tasks of notebook 08, as its "Lab Task N" headings number them.
lab08_task = {n: pytest.mark.lab("08", task=n) for n in (1, 2)}
pytestmark = pytest.mark.timeout(60)
SECRET = "arn:aws:bedrock:us-east-1:123456789012:foundation-model/private"


@pytest.fixture
def bedrock(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("GATEWAY_BEDROCK_MODEL_ID", "amazon.nova-lite-v1:0")
    with mock_aws():
        yield boto3.client("bedrock-runtime", region_name="us-east-1")


def first_error(impl, client):
    """Stream one question through the adapter; the GatewayError it ends with."""
    model = impl.bedrock.BedrockModel(
        impl.settings.Settings(bedrock_model_id="amazon.nova-lite-v1:0"), client=client
    )
    request = impl.model.ModelRequest("Why?", "Because.", max_tokens=16)

    async def run():
        try:
            async for _ in model.stream(request):
                pass
        except impl.errors.GatewayError as error:
            return error
        return None

    return asyncio.run(run())


# --- task 1: Bedrock's errors in the catalogue -------------------------------------------------


@lab08_task[1]
@pytest.mark.parametrize(
    ("aws_code", "status", "ours"),
    [
        ("ThrottlingException", 429, "rate_limited"),
        ("ModelTimeoutException", 408, "model_timeout"),
        ("ValidationException", 400, "invalid_request"),
        ("ServiceUnavailableException", 503, "overloaded"),
        ("AccessDeniedException", 403, "internal_error"),
    ],
)
def test_bedrock_errors_before_the_stream_map_to_the_catalogue(
    impl, bedrock, aws_code, status, ours
):
    impl.load("aws.fake_bedrock").fail_before_stream(bedrock, aws_code, SECRET, status)
    error = first_error(impl, bedrock)
    assert error is not None and error.code == ours


@lab08_task[1]
@pytest.mark.parametrize(
    ("exception_type", "ours"),
    [
        ("throttlingException", "rate_limited"),
        ("modelStreamErrorException", "model_error"),
        ("serviceUnavailableException", "overloaded"),
    ],
)
def test_exception_events_inside_the_stream_map_to_the_catalogue(
    impl, bedrock, exception_type, ours
):
    fake = impl.load("aws.fake_bedrock")
    fake.install(bedrock, fake.answer(["partial"], fail_with=(exception_type, SECRET)))
    error = first_error(impl, bedrock)
    assert error is not None and error.code == ours


@lab08_task[1]
def test_retryable_bedrock_errors_say_when_to_retry_and_never_leak_aws_messages(impl, bedrock):
    impl.load("aws.fake_bedrock").fail_before_stream(bedrock, "ThrottlingException", SECRET, 429)
    error = first_error(impl, bedrock)
    assert error.code == "rate_limited" and error.retry_after_seconds
    assert "arn:" not in error.detail and "123456789012" not in str(error)


# --- task 2: the client left -------------------------------------------------------------------


def gone_client(after: int):
    posted = []

    class Management:
        def post_to_connection(self, ConnectionId, Data):  # noqa: N803 - boto3's names
            if len(posted) >= after:
                raise ClientError(
                    {
                        "Error": {"Code": "GoneException", "Message": "gone"},
                        "ResponseMetadata": {"HTTPStatusCode": 410},
                    },
                    "PostToConnection",
                )
            posted.append(json.loads(Data))

    return Management(), posted


@lab08_task[2]
def test_send_reports_a_connection_that_is_gone_and_posts_nothing_more(impl):
    handler_module = impl.load("aws.ws_handler")
    management, posted = gone_client(after=1)
    connection = handler_module.Connection(management, "abc=")
    assert connection.send({"type": "pong"}) is True
    assert connection.send({"type": "pong"}) is False
    assert connection.send({"type": "pong"}) is False
    assert posted == [{"type": "pong"}]


@lab08_task[2]
def test_other_post_errors_are_not_mistaken_for_a_client_that_left(impl):
    handler_module = impl.load("aws.ws_handler")

    class Forbidden:
        def post_to_connection(self, ConnectionId, Data):  # noqa: N803
            raise ClientError(
                {"Error": {"Code": "ForbiddenException", "Message": "no"}}, "PostToConnection"
            )

    with pytest.raises(ClientError):
        handler_module.Connection(Forbidden(), "abc=").send({"type": "pong"})


@lab08_task[2]
def test_an_answer_stops_and_closes_bedrock_when_the_client_leaves(impl, bedrock):
    handler_module, fake = impl.load("aws.ws_handler"), impl.load("aws.fake_bedrock")
    # The handler keeps the conversation in DynamoDB (aws/chat_state.py, given).
    impl.load("aws.chat_state").create_table(boto3.client("dynamodb"), {})
    calls = fake.install(bedrock, fake.answer([f"w{i} " for i in range(30)]))
    management, posted = gone_client(after=4)
    event = {
        "requestContext": {
            "routeKey": "ask",
            "connectionId": "abc=",
            "stage": "v1",
            "domainName": "x.execute-api.us-east-1.amazonaws.com",
        },
        "body": json.dumps(
            {"type": "ask", "id": "q1", "question": "Why?", "document_id": "bedrock-streaming"}
        ),
    }
    clients = {"apigatewaymanagementapi": management, "bedrock-runtime": bedrock}
    assert handler_module.handler(event, None, clients=clients) == {"statusCode": 200}
    assert [m["type"] for m in posted] == ["start", "delta", "delta", "delta"]
    assert calls.streams[0].closed
