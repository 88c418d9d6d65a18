"""The edge on AWS (reference_impl/aws/): declared with boto3, read back from moto.

moto stores API Gateway's configuration but enforces none of it, so these tests check what
was declared: throttles, quotas, keys, gateway responses, routes. What moto drops or never does
(`responseTransferMode`, a `GoneException`) is checked on the request boto3 sends (Stubber) or
with a client that raises it. Nothing here can reach AWS.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws
from openapi_spec_validator import validate as validate_openapi

from reference_impl.contract.asyncapi_validate import validate_server_message
from reference_impl.contract.validate import check_against

pytestmark = pytest.mark.timeout(60)
REGION = "us-east-1"
LAMBDA_ARN = "arn:aws:lambda:us-east-1:123456789012:function:realtime-genai-gateway"


@pytest.fixture
def aws(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        # The Lambda reads its settings from the environment, as a deployed one would.
        "GATEWAY_BEDROCK_MODEL_ID": "amazon.nova-lite-v1:0",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


@pytest.fixture
def deploy(impl):
    return impl.load("aws.deploy")


@pytest.fixture
def applied(aws, impl, deploy):
    settings = impl.settings.Settings(rate_limit_rps=7.0, rate_limit_burst=14, api_keys="a,b")
    ids = deploy.apply(aws, settings, REGION)
    return aws, settings, ids


# --- the contract as API Gateway imports it -------------------------------------------------


def test_the_contract_converts_to_a_valid_openapi_30_document_with_aws_extensions(impl):
    openapi30 = impl.load("aws.openapi30")
    doc = openapi30.for_api_gateway("n", REGION, LAMBDA_ARN)
    validate_openapi(doc)  # a valid 3.0 document, as API Gateway's importer needs
    assert doc["openapi"] == "3.0.1"
    text = json.dumps(doc)
    for newer in ('"itemSchema"', '"const"', '"contentSchema"', '"serializedValue"'):
        assert newer not in text
    stream = doc["paths"]["/v1/ask/stream"]["post"]["responses"]["200"]["content"]
    assert stream["text/event-stream"]["schema"]["type"] == "string"
    assert doc["components"]["schemas"]["Health"]["properties"]["status"] == {"enum": ["ok"]}
    assert doc["x-amazon-apigateway-request-validator"] == "all"
    assert doc["x-amazon-apigateway-request-validators"]["all"]["validateRequestBody"] is True
    for item in doc["paths"].values():
        for operation in item.values():
            integration = operation["x-amazon-apigateway-integration"]
            assert integration["type"] == "aws_proxy" and LAMBDA_ARN in integration["uri"]


def test_schema_keywords_of_31_take_their_30_spelling(impl):
    schema_30 = impl.load("aws.openapi30").schema_30
    converted = schema_30(
        {"type": ["string", "null"], "examples": ["x"], "exclusiveMinimum": 0, "const": "x"}
    )
    assert converted == {
        "type": "string",
        "nullable": True,
        "example": "x",
        "minimum": 0,
        "exclusiveMinimum": True,
        "enum": ["x"],
    }


def test_plan_prints_the_edge_and_calls_no_aws(impl, monkeypatch, capsys):
    def no_aws(*args, **kwargs):
        raise AssertionError("plan must not call AWS")

    monkeypatch.setattr(boto3.session.Session, "client", no_aws)
    monkeypatch.setattr(boto3, "client", no_aws)
    assert impl.load("aws.__main__").main(["plan", "--region", "eu-west-1"]) == 0
    out = capsys.readouterr().out
    assert "responseTransferMode STREAM" in out and "$request.body.type" in out


@pytest.fixture
def no_configured_region(monkeypatch, tmp_path):
    """An environment with no AWS region anywhere: no variables, an empty config file."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    return tmp_path / "config"


@pytest.mark.parametrize(
    "environment, region",
    [
        ({"AWS_REGION": "eu-west-3"}, "eu-west-3"),
        ({"AWS_DEFAULT_REGION": "ap-southeast-2"}, "ap-southeast-2"),
        ({"AWS_REGION": "eu-west-3", "AWS_DEFAULT_REGION": "ap-southeast-2"}, "eu-west-3"),
    ],
)
def test_plan_takes_the_region_from_the_environment_as_aws_tools_do(
    impl, no_configured_region, monkeypatch, capsys, environment, region
):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert impl.load("aws.__main__").main(["plan"]) == 0
    assert f"arn:aws:lambda:{region}:" in capsys.readouterr().out


def test_plan_takes_the_region_from_the_profile_and_the_flag_over_everything(
    impl, no_configured_region, monkeypatch, capsys
):
    no_configured_region.write_text("[default]\nregion = sa-east-1\n")
    assert impl.load("aws.__main__").main(["plan"]) == 0
    assert "arn:aws:lambda:sa-east-1:" in capsys.readouterr().out
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert impl.load("aws.__main__").main(["plan", "--region", "us-west-2"]) == 0
    assert "arn:aws:lambda:us-west-2:" in capsys.readouterr().out


def test_plan_without_any_region_says_how_to_give_one(impl, no_configured_region, capsys):
    with pytest.raises(SystemExit) as exited:
        impl.load("aws.__main__").main(["plan"])
    assert exited.value.code == 2
    assert "pass --region, or set AWS_REGION or AWS_DEFAULT_REGION" in capsys.readouterr().err


# --- the REST API ------------------------------------------------------------------------------


def test_apply_declares_stage_throttling_from_the_settings(applied):
    session, settings, ids = applied
    stage = session.client("apigateway").get_stage(restApiId=ids["rest_api_id"], stageName="v1")
    everything = stage["methodSettings"]["*/*"]
    assert everything["throttlingRateLimit"] == settings.rate_limit_rps * 2
    assert everything["throttlingBurstLimit"] == settings.rate_limit_burst * 2


def test_apply_declares_a_usage_plan_with_throttle_quota_and_an_api_key(applied):
    session, settings, ids = applied
    apigw = session.client("apigateway")
    plan = apigw.get_usage_plan(usagePlanId=ids["usage_plan_id"])
    assert plan["throttle"] == {"rateLimit": 7.0, "burstLimit": 14}
    assert plan["quota"] == {"limit": settings.aws_requests_per_day, "period": "DAY"}
    assert plan["apiStages"] == [{"apiId": ids["rest_api_id"], "stage": "v1"}]
    keys = apigw.get_usage_plan_keys(usagePlanId=ids["usage_plan_id"])["items"]
    assert [k["id"] for k in keys] == [ids["api_key_id"]]


def test_apply_turns_request_validation_on(applied):
    session, _, ids = applied
    validators = session.client("apigateway").get_request_validators(restApiId=ids["rest_api_id"])
    [validator] = [v for v in validators["items"] if v["name"] == "all"]
    assert validator["validateRequestBody"] and validator["validateRequestParameters"]


@pytest.mark.parametrize(
    ("response_type", "status", "code"),
    [
        ("THROTTLED", "429", "rate_limited"),
        ("QUOTA_EXCEEDED", "429", "quota_exceeded"),
        ("REQUEST_TOO_LARGE", "413", "request_too_large"),
        ("INTEGRATION_TIMEOUT", "504", "model_timeout"),
        ("UNAUTHORIZED", "401", "unauthorized"),
        ("BAD_REQUEST_BODY", "400", "invalid_request"),
        ("DEFAULT_4XX", "400", "invalid_request"),
        ("DEFAULT_5XX", "500", "internal_error"),
    ],
)
def test_gateway_responses_render_our_problem_object(applied, response_type, status, code):
    session, _, ids = applied
    response = session.client("apigateway").get_gateway_response(
        restApiId=ids["rest_api_id"], responseType=response_type
    )
    assert response["statusCode"] == status
    template = response["responseTemplates"]["application/problem+json"]
    body = json.loads(template.replace("$context.requestId", "req_0123456789abcdef"))
    check_against({"$ref": "#/components/schemas/Problem"}, body, response_type)
    assert body["code"] == code and body["status"] == int(status)
    retry_after = response.get("responseParameters", {}).get("gatewayresponse.header.Retry-After")
    if response_type == "THROTTLED":  # retryable after a wait: say how long, as the gateway does
        assert retry_after == "'1'" and body["retry_after_seconds"] == 1
    else:
        assert retry_after is None and "retry_after_seconds" not in body


def test_a_slow_throttle_says_to_wait_longer(impl):
    deploy = impl.load("aws.deploy")
    settings = impl.settings.Settings(rate_limit_rps=0.25)  # one request every 4 s
    throttled = deploy.gateway_response("THROTTLED", settings)
    assert throttled["responseParameters"] == {"gatewayresponse.header.Retry-After": "'4'"}
    assert (
        json.loads(throttled["responseTemplates"]["application/problem+json"])[
            "retry_after_seconds"
        ]
        == 4
    )


def test_the_streaming_route_is_integrated_in_stream_transfer_mode(impl, aws):
    """moto drops responseTransferMode, so the request boto3 sends is what is checked."""
    deploy = impl.load("aws.deploy")
    apigw = aws.client("apigateway")
    expected = {
        "restApiId": "api1",
        "resourceId": "res1",
        "httpMethod": "POST",
        "type": "AWS_PROXY",
        "integrationHttpMethod": "POST",
        "uri": (
            "arn:aws:apigateway:us-east-1:lambda:path/2021-11-15/functions/"
            f"{LAMBDA_ARN}/response-streaming-invocations"
        ),
        "responseTransferMode": "STREAM",
    }
    with Stubber(apigw) as stubber:
        stubber.add_response("put_integration", {"type": "AWS_PROXY"}, expected)
        deploy.stream_integration(apigw, "api1", "res1", REGION, LAMBDA_ARN)
        stubber.assert_no_pending_responses()


# --- the WebSocket API -------------------------------------------------------------------------


def test_apply_declares_the_websocket_routes_and_their_throttling(applied, deploy):
    session, settings, ids = applied
    v2 = session.client("apigatewayv2")
    api = v2.get_api(ApiId=ids["websocket_api_id"])
    assert api["ProtocolType"] == "WEBSOCKET"
    assert api["RouteSelectionExpression"] == "$request.body.type"
    routes = {r["RouteKey"]: r for r in v2.get_routes(ApiId=api["ApiId"])["Items"]}
    assert set(routes) == {"$connect", "$disconnect", "$default", "ask", "cancel", "ping"}
    assert routes["$connect"]["AuthorizationType"] == "CUSTOM"
    authorizer = v2.get_authorizer(
        ApiId=api["ApiId"], AuthorizerId=routes["$connect"]["AuthorizerId"]
    )
    assert authorizer["AuthorizerType"] == "REQUEST"
    assert all(r["AuthorizationType"] == "NONE" for k, r in routes.items() if k != "$connect")
    stage = v2.get_stage(ApiId=api["ApiId"], StageName="v1")
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == settings.ws_messages_per_second
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] == settings.ws_message_burst


def test_destroy_removes_what_apply_created(applied, deploy):
    session, _, _ = applied
    deleted = deploy.destroy(session, REGION)
    assert len(deleted) == 6  # usage plan, API key, the two APIs, the chat table, the role
    apigw, v2 = session.client("apigateway"), session.client("apigatewayv2")
    assert apigw.get_rest_apis()["items"] == []
    assert apigw.get_usage_plans()["items"] == []
    assert apigw.get_api_keys()["items"] == []
    assert v2.get_apis()["Items"] == []
    assert deploy.destroy(session, REGION) == []


# --- the Lambda behind the WebSocket routes ----------------------------------------------------

CONNECTION_ID = "Lp0xcdAAoAMCJ0g="  # API Gateway ids end in '=': moto stores them URL-encoded


def ws_event(route: str, body: dict | str | None = None) -> dict:
    """An API Gateway WebSocket proxy event, as Lambda receives it."""
    return {
        "requestContext": {
            "routeKey": route,
            "connectionId": CONNECTION_ID,
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "stage": "v1",
            "eventType": "MESSAGE",
        },
        "body": body if isinstance(body, str) or body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def pushed() -> list[dict]:
    """The messages moto recorded for the connection, in order (it concatenates the bytes)."""
    from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends

    data = (
        apigatewaymanagementapi_backends["123456789012"][REGION]
        .connections[quote(CONNECTION_ID, safe="")]
        .data.decode()
    )
    decoder, messages, at = json.JSONDecoder(), [], 0
    while at < len(data):
        message, at = decoder.raw_decode(data, at)
        messages.append(message)
    return messages


@pytest.fixture
def ws(aws, impl):
    handler_module = impl.load("aws.ws_handler")
    fake = impl.load("aws.fake_bedrock")
    event = ws_event("ask")
    management = aws.client(
        "apigatewaymanagementapi", endpoint_url=handler_module.management_endpoint(event)
    )
    bedrock = aws.client("bedrock-runtime")
    dynamodb = aws.client("dynamodb")
    impl.load("aws.chat_state").create_table(dynamodb, {})

    def invoke(event, *payloads):
        calls = fake.install(bedrock, *payloads) if payloads else None
        clients = {
            "apigatewaymanagementapi": management,
            "bedrock-runtime": bedrock,
            "dynamodb": dynamodb,
        }
        result = handler_module.handler(event, None, clients=clients)
        return result, calls

    return invoke, fake, handler_module


ASK = {"type": "ask", "id": "q1", "question": "How long?", "document_id": "bedrock-streaming"}


def test_an_ask_may_send_its_document_inline(ws):
    invoke, fake, _ = ws
    document = "The answer window closes after forty seconds."
    inline = {key: value for key, value in ASK.items() if key != "document_id"}
    result, calls = invoke(ws_event("ask", {**inline, "document": document}), fake.answer(["ok"]))
    assert result == {"statusCode": 200} and pushed()[-1]["type"] == "end"
    assert document in json.dumps(calls[0]), "the inline document reaches the model"
    invoke(ws_event("$disconnect"))  # a new conversation next: it has no document yet
    invoke(ws_event("ask", inline))  # neither: refused before the model
    refused = pushed()[-1]
    assert refused["type"] == "error" and refused["problem"]["code"] == "invalid_request"
    assert "document" in refused["problem"]["detail"]


def test_an_ask_streams_start_deltas_and_end_to_the_connection(ws):
    invoke, fake, _ = ws
    result, calls = invoke(ws_event("ask", ASK), fake.answer(["Ten ", "minutes", "."]))
    assert result == {"statusCode": 200}
    messages = pushed()
    for message in messages:
        validate_server_message(message)
    assert [m["type"] for m in messages] == ["start", "delta", "delta", "delta", "end"]
    assert "".join(m["text"] for m in messages if m["type"] == "delta") == "Ten minutes."
    assert [m["index"] for m in messages if m["type"] == "delta"] == [0, 1, 2]
    assert messages[-1]["stop_reason"] == "end_turn" and messages[-1]["id"] == "q1"
    assert calls[0]["inferenceConfig"]["maxTokens"] == 256  # the default, capped at the edge


def test_max_tokens_is_sent_to_bedrock_and_enforced_on_a_model_that_ignores_it(ws):
    invoke, fake, _ = ws
    _, calls = invoke(ws_event("ask", {**ASK, "max_tokens": 2}), fake.answer(list("abcde")))
    messages = pushed()
    assert calls[0]["inferenceConfig"]["maxTokens"] == 2
    assert [m["type"] for m in messages] == ["start", "delta", "delta", "end"]
    assert messages[-1]["stop_reason"] == "max_tokens"
    assert calls.streams[0].closed


def test_max_tokens_above_the_cap_is_refused_before_bedrock(ws):
    invoke, _, _ = ws
    invoke(ws_event("ask", {**ASK, "max_tokens": 5000}))
    [message] = pushed()
    validate_server_message(message)
    assert message["problem"]["code"] == "max_tokens_exceeded" and message["id"] == "q1"


def test_an_in_stream_bedrock_error_is_the_terminal_error_message(ws):
    invoke, fake, _ = ws
    secret = "arn:aws:bedrock:us-east-1:123456789012:secret"
    invoke(
        ws_event("ask", ASK), fake.answer(["a"], fail_with=("modelStreamErrorException", secret))
    )
    messages = pushed()
    for message in messages:
        validate_server_message(message)
    assert [m["type"] for m in messages] == ["start", "delta", "error"]
    assert messages[-1]["problem"]["code"] == "model_error"
    assert "arn:" not in json.dumps(messages)


def test_an_answer_past_its_time_budget_ends_with_stream_timeout(ws, monkeypatch):
    invoke, fake, handler_module = ws
    monkeypatch.setattr(handler_module, "ANSWER_BUDGET_SECONDS", -1.0)
    invoke(ws_event("ask", ASK), fake.answer(["a", "b"]))
    messages = pushed()
    assert [m["type"] for m in messages] == ["start", "error"]
    assert messages[-1]["problem"]["code"] == "model_timeout"  # no token within the budget


@pytest.mark.parametrize("body", ["{not json", {"type": "subscribe", "id": "s1"}])
def test_the_default_route_answers_invalid_request(ws, body):
    invoke, _, _ = ws
    invoke(ws_event("$default", body))
    [message] = pushed()
    validate_server_message(message)
    assert message["problem"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    "body",
    ["[" * 10_000 + "]" * 10_000, '{"type": "ask", "type": "cancel", "id": "a1"}'],
    ids=["nested-10000-deep", "duplicate-key"],
)
def test_json_the_local_edge_refuses_is_refused_by_the_lambda_too(ws, body):
    invoke, _, _ = ws
    invoke(ws_event("ask", body))
    [message] = pushed()
    validate_server_message(message)
    assert message["problem"]["code"] == "invalid_request"


def test_connect_and_disconnect_post_nothing(ws):
    invoke, _, _ = ws
    assert invoke(ws_event("$connect"))[0] == {"statusCode": 200}
    assert invoke(ws_event("$disconnect"))[0] == {"statusCode": 200}
    assert pushed() == []


class GoneAfter:
    """A management client whose connection disappears after `n` posts (moto never does)."""

    def __init__(self, n: int) -> None:
        self.n, self.posted = n, []

    def post_to_connection(self, ConnectionId, Data):  # noqa: N803 - boto3's names
        if len(self.posted) >= self.n:
            raise ClientError(
                {
                    "Error": {"Code": "GoneException", "Message": "gone"},
                    "ResponseMetadata": {"HTTPStatusCode": 410},
                },
                "PostToConnection",
            )
        self.posted.append(json.loads(Data))


def test_a_client_that_left_stops_the_answer_and_closes_the_bedrock_stream(aws, impl):
    handler_module, fake = impl.load("aws.ws_handler"), impl.load("aws.fake_bedrock")
    impl.load("aws.chat_state").create_table(aws.client("dynamodb"), {})
    bedrock = aws.client("bedrock-runtime")
    calls = fake.install(bedrock, fake.answer([f"t{i} " for i in range(40)]))
    management = GoneAfter(3)
    clients = {"apigatewaymanagementapi": management, "bedrock-runtime": bedrock}
    assert handler_module.handler(ws_event("ask", ASK), None, clients=clients) == {
        "statusCode": 200
    }
    assert [m["type"] for m in management.posted] == ["start", "delta", "delta"]
    assert calls.streams[0].closed


def test_the_end_message_says_bedrocks_usage_not_our_tokenizers(ws):
    invoke, fake, _ = ws
    answer = fake.answer(["Ten ", "minutes."], input_tokens=31, output_tokens=9)
    invoke(ws_event("ask", ASK), answer)
    end = pushed()[-1]
    validate_server_message(end)
    assert end["type"] == "end" and end["usage"] == {"input_tokens": 31, "output_tokens": 9}


def test_the_handler_also_runs_where_an_event_loop_is_running(ws):
    # A notebook's kernel runs one; Lambda does not. The handler works in both.
    invoke, fake, _ = ws

    async def from_a_running_loop():
        return invoke(ws_event("ask", ASK), fake.answer(["ok"]))

    result, _ = asyncio.run(from_a_running_loop())
    assert result == {"statusCode": 200} and pushed()[-1]["type"] == "end"
