"""The chat's state on AWS: cancel and follow-ups across Lambda invocations, kept in DynamoDB.

Every AWS call is a real boto3 call against moto: DynamoDB holds the state, moto's @connections
endpoint records what was posted. moto has no Bedrock `converse_stream`, so the model side is
aws/fake_bedrock.py's real event-stream frames. A cancel is tested while its answer truly
streams: the ask's invocation runs in a thread, its Bedrock stream holds after a few deltas
(`fake_bedrock.Pause`, a threading.Event), and the cancel's invocation runs meanwhile.
"""

from __future__ import annotations

import json
import threading
from urllib.parse import quote

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from reference_impl.contract.asyncapi_validate import validate_server_message

pytestmark = pytest.mark.timeout(60)
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's
CONNECTION_ID = "Lp0xcdAAoAMCJ0g="
ASK = {"type": "ask", "id": "q1", "question": "How long?", "document_id": "bedrock-streaming"}


@pytest.fixture
def aws(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "GATEWAY_BEDROCK_MODEL_ID": "amazon.nova-lite-v1:0",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


def ws_event(route: str, body: dict | None = None, connection_id: str = CONNECTION_ID) -> dict:
    """An API Gateway WebSocket proxy event, as Lambda receives it."""
    return {
        "requestContext": {
            "routeKey": route,
            "connectionId": connection_id,
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "stage": "v1",
            "eventType": "MESSAGE",
        },
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def pushed(connection_id: str = CONNECTION_ID) -> list[dict]:
    """The messages moto recorded for the connection, in order (it concatenates the bytes)."""
    from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends

    connections = apigatewaymanagementapi_backends[ACCOUNT][REGION].connections
    connection = connections.get(quote(connection_id, safe=""))
    data = connection.data.decode() if connection else ""
    decoder, messages, at = json.JSONDecoder(), [], 0
    while at < len(data):
        message, at = decoder.raw_decode(data, at)
        validate_server_message(message)
        messages.append(message)
    return messages


class Chat:
    """The WebSocket Lambda with real boto3 clients on moto, and the chat table created."""

    def __init__(self, session, impl) -> None:
        self.handler_module = impl.load("aws.ws_handler")
        self.fake = impl.load("aws.fake_bedrock")
        self.chat_state = impl.load("aws.chat_state")
        self.dynamodb = session.client("dynamodb")
        self.chat_state.create_table(self.dynamodb, {})
        endpoint = self.handler_module.management_endpoint(ws_event("ask"))
        self.management = session.client("apigatewaymanagementapi", endpoint_url=endpoint)
        self.bedrock = session.client("bedrock-runtime")
        self.calls = None

    def model_answers(self, *payloads: bytes, pause=None):
        self.calls = self.fake.install(self.bedrock, *payloads, pause=pause)
        return self.calls

    def invoke(self, event: dict) -> dict:
        clients = {
            "apigatewaymanagementapi": self.management,
            "bedrock-runtime": self.bedrock,
            "dynamodb": self.dynamodb,
        }
        return self.handler_module.handler(event, None, clients=clients)

    def items(self, connection_id: str = CONNECTION_ID) -> dict[str, dict]:
        """The connection's items in the table, by sort key."""
        found = self.dynamodb.query(
            TableName=self.chat_state.TABLE_NAME,
            KeyConditionExpression="connection_id = :id",
            ExpressionAttributeValues={":id": {"S": connection_id}},
            ConsistentRead=True,
        )["Items"]
        return {item["item"]["S"]: item for item in found}


@pytest.fixture
def chat(aws, impl, monkeypatch):
    chat = Chat(aws, impl)
    # Read the cancel mark at every chunk, so the test knows which chunk it bites at.
    monkeypatch.setattr(chat.handler_module, "CANCEL_CHECK_SECONDS", 0.0)
    return chat


def of(messages: list[dict], ask_id: str) -> list[dict]:
    return [m for m in messages if m.get("id") == ask_id]


# --- cancel ------------------------------------------------------------------------------------


def test_a_cancel_mid_answer_stops_bedrock_and_ends_with_the_usage_so_far(chat):
    pause = chat.fake.Pause(after_deltas=3)
    calls = chat.model_answers(chat.fake.answer([f"t{i} " for i in range(40)]), pause=pause)
    results = []
    streaming = threading.Thread(target=lambda: results.append(chat.invoke(ws_event("ask", ASK))))
    streaming.start()
    try:
        assert pause.reached.wait(10), "the answer never got to its third delta"
        assert [m["type"] for m in pushed()] == ["start", "delta", "delta", "delta"]
        assert chat.items()["answer#q1"]["state"]["S"] == "streaming"
        # The cancel is another invocation, while the first one is between chunks.
        assert chat.invoke(ws_event("cancel", {"type": "cancel", "id": "q1"})) == {
            "statusCode": 200
        }
        assert chat.items()["answer#q1"]["state"]["S"] == "cancelled"
        assert len(pushed()) == 4, "the cancel's invocation posts nothing itself"
    finally:
        pause.release()
        streaming.join(10)
    assert results == [{"statusCode": 200}]
    messages = of(pushed(), "q1")
    assert [m["type"] for m in messages] == ["start", "delta", "delta", "delta", "end"]
    end = messages[-1]
    assert end["stop_reason"] == "cancelled"
    assert end["usage"]["output_tokens"] == 3  # what was delivered, not the 40 on their way
    assert end["usage"]["input_tokens"] > 0
    assert calls.streams[0].closed, "the Bedrock stream was closed"
    items = chat.items()
    assert "answer#q1" not in items  # a cancel for q1 now names an unknown answer
    assert "streaming" not in items["conversation"]  # the next ask may stream


def test_a_second_ask_while_one_streams_is_busy_and_the_next_one_after_it_is_not(chat):
    pause = chat.fake.Pause(after_deltas=1)
    chat.model_answers(chat.fake.answer(["a ", "b ", "c"]), chat.fake.answer(["ok"]), pause=pause)
    streaming = threading.Thread(target=chat.invoke, args=(ws_event("ask", ASK),))
    streaming.start()
    try:
        assert pause.reached.wait(10)
        chat.invoke(ws_event("ask", {**ASK, "id": "q2"}))
    finally:
        pause.release()
        streaming.join(10)
    [busy] = of(pushed(), "q2")
    assert busy["type"] == "error" and busy["problem"]["code"] == "busy"
    assert of(pushed(), "q1")[-1]["stop_reason"] == "end_turn"
    chat.invoke(ws_event("ask", {**ASK, "id": "q3"}))
    assert of(pushed(), "q3")[-1]["type"] == "end"


@pytest.mark.parametrize("when", ["never asked", "already ended"])
def test_a_cancel_for_an_answer_that_is_not_streaming_is_an_error(chat, when):
    if when == "already ended":
        chat.model_answers(chat.fake.answer(["done"]))
        chat.invoke(ws_event("ask", ASK))
    ask_id = "q1" if when == "already ended" else "nope"
    before = len(pushed())
    chat.invoke(ws_event("cancel", {"type": "cancel", "id": ask_id}))
    [error] = pushed()[before:]
    assert error["type"] == "error" and error["id"] == ask_id
    assert error["problem"]["code"] == "invalid_request"  # as the local chat answers it
    assert f"No answer with id {ask_id} is streaming" in error["problem"]["detail"]
    assert f"answer#{ask_id}" not in chat.items(), "the refused cancel wrote no item"


def test_the_cancel_mark_is_read_at_most_once_per_interval(chat):
    state = chat.chat_state.ChatState(chat.dynamodb, CONNECTION_ID, 7200)
    state.begin("q1")
    now = [0.0]
    watch = chat.handler_module.CancelWatch(state, "q1", every_seconds=2.5, clock=lambda: now[0])
    seen = []
    for second in range(1, 11):  # a chunk a second
        now[0] = float(second)
        if second == 7:
            assert state.cancel("q1")
        seen.append(watch.cancelled())
    # Read at seconds 3, 6 and 9 only; the cancel written at 7 is seen at 9.
    assert watch.reads == 3
    assert seen == [False] * 8 + [True, False]


def failing(client, operation: str, code: str = "ThrottlingException") -> None:
    """Make the client's calls of `operation` fail with `code`, as DynamoDB answers them."""

    def before_call(model, params, **kwargs):
        http = AWSResponse("https://dynamodb.invalid", 400, {}, None)
        parsed = {
            "Error": {"Code": code, "Message": "slow down"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        return http, parsed

    client.meta.events.register(f"before-call.dynamodb.{operation}", before_call)


def test_a_failed_cancel_check_does_not_break_the_answer(chat):
    chat.model_answers(chat.fake.answer(["Ten ", "minutes."]))
    failing(chat.dynamodb, "GetItem")
    chat.invoke(ws_event("ask", ASK))
    messages = pushed()
    assert [m["type"] for m in messages] == ["start", "delta", "delta", "end"]
    assert messages[-1]["stop_reason"] == "end_turn"


@pytest.mark.parametrize("message", [ASK, {"type": "cancel", "id": "q1"}], ids=["ask", "cancel"])
def test_a_message_whose_state_cannot_be_written_gets_an_error_and_no_internals(chat, message):
    failing(chat.dynamodb, "UpdateItem")
    chat.invoke(ws_event(message["type"], message))
    [error] = pushed()
    assert error["id"] == "q1" and error["problem"]["code"] == "internal_error"
    assert "Throttling" not in json.dumps(error) and "dynamodb" not in json.dumps(error).lower()


# --- follow-ups ----------------------------------------------------------------------------------


def test_a_follow_up_is_asked_with_the_earlier_turns_and_the_same_document(chat):
    calls = chat.model_answers(chat.fake.answer(["Ten ", "minutes."]), chat.fake.answer(["Yes."]))
    chat.invoke(ws_event("ask", ASK))
    follow_up = {"type": "ask", "id": "q2", "question": "Can a ping keep it open?"}
    chat.invoke(ws_event("ask", follow_up))  # no document: the conversation's
    start, *_, end = of(pushed(), "q2")
    assert start["history_truncated"] is False and end["stop_reason"] == "end_turn"
    first, second = calls
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    texts = [m["content"][0]["text"] for m in second["messages"]]
    assert texts[0] == first["messages"][0]["content"][0]["text"]  # the document, then q1
    assert texts[1:] == ["Ten minutes.", "Can a ping keep it open?"]
    turns = chat.items()["conversation"]["turns"]["L"]
    assert [t["M"]["answer"]["S"] for t in turns] == ["Ten minutes.", "Yes."]


def test_history_over_the_budget_is_dropped_oldest_first_and_said(chat, monkeypatch):
    monkeypatch.setenv("GATEWAY_WS_HISTORY_TOKENS", "1")
    calls = chat.model_answers(chat.fake.answer(["Ten ", "minutes."]), chat.fake.answer(["Yes."]))
    chat.invoke(ws_event("ask", ASK))
    chat.invoke(ws_event("ask", {"type": "ask", "id": "q2", "question": "And a ping?"}))
    assert of(pushed(), "q2")[0]["history_truncated"] is True
    assert [m["role"] for m in calls[1]["messages"]] == ["user"]


def test_the_first_ask_of_a_connection_must_name_its_document(chat):
    chat.invoke(ws_event("ask", {"type": "ask", "id": "q1", "question": "How long?"}))
    [error] = pushed()
    assert (
        error["problem"]["code"] == "invalid_request" and "document" in error["problem"]["detail"]
    )
    assert "streaming" not in chat.items()["conversation"], "the refused ask released its claim"


# --- a connection that is gone -------------------------------------------------------------------


def gone_after(management, posts: int) -> list[dict]:
    """Make moto's @connections answer GoneException (410) after `posts` posts, as API Gateway
    does once the client has left (moto never does); returns the messages that got through."""
    delivered: list[dict] = []

    def before_call(model, params, **kwargs):
        if len(delivered) < posts:
            delivered.append(json.loads(params["body"]))
            return None  # on to moto
        http = AWSResponse("https://apigw.invalid", 410, {}, None)
        parsed = {
            "Error": {"Code": "GoneException", "Message": "gone"},
            "ResponseMetadata": {"HTTPStatusCode": 410},
        }
        return http, parsed

    management.meta.events.register(
        "before-call.apigatewaymanagementapi.PostToConnection", before_call
    )
    return delivered


def test_a_gone_connection_stops_the_answer_and_deletes_the_connections_state(chat):
    long_answer = chat.fake.answer([f"t{i} " for i in range(40)])
    calls = chat.model_answers(chat.fake.answer(["Ten ", "minutes."]), long_answer)
    chat.invoke(ws_event("ask", ASK))
    assert "conversation" in chat.items()
    delivered = gone_after(chat.management, posts=3)
    assert chat.invoke(ws_event("ask", {**ASK, "id": "q2"})) == {"statusCode": 200}
    assert [m["type"] for m in delivered] == ["start", "delta", "delta"]
    assert calls.streams[1].closed
    assert chat.items() == {}, "nothing of a gone connection is kept"


def test_disconnect_deletes_the_connections_state_and_only_its_own(chat):
    chat.model_answers(chat.fake.answer(["ok"]))
    other = "Zz0xcdAAoAMCJ0g="
    chat.invoke(ws_event("ask", ASK))
    chat.invoke(ws_event("ask", ASK, connection_id=other))
    assert chat.items() and chat.items(other)
    assert chat.invoke(ws_event("$disconnect")) == {"statusCode": 200}
    assert chat.items() == {} and "conversation" in chat.items(other)


def test_every_item_carries_the_ttl_attribute(chat):
    pause = chat.fake.Pause(after_deltas=1)
    chat.model_answers(chat.fake.answer(["a ", "b"]), pause=pause)
    streaming = threading.Thread(target=chat.invoke, args=(ws_event("ask", ASK),))
    streaming.start()
    try:
        assert pause.reached.wait(10)
        items = chat.items()
    finally:
        pause.release()
        streaming.join(10)
    assert set(items) == {"conversation", "answer#q1"}
    for item in items.values():
        assert int(item["expires_at"]["N"]) > 0


# --- the table and the role, declared ------------------------------------------------------------


def test_apply_declares_an_on_demand_table_with_ttl_and_a_least_privilege_role(aws, impl):
    deploy, chat_state = impl.load("aws.deploy"), impl.load("aws.chat_state")
    settings = impl.settings.Settings()
    ids = deploy.apply(aws, settings, REGION)
    dynamodb = aws.client("dynamodb")
    table = dynamodb.describe_table(TableName=chat_state.TABLE_NAME)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {
        "connection_id": "HASH",
        "item": "RANGE",
    }
    ttl = dynamodb.describe_time_to_live(TableName=chat_state.TABLE_NAME)
    assert ttl["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "expires_at",
    }
    iam = aws.client("iam")
    role = iam.get_role(RoleName=deploy.ROLE_NAME)["Role"]
    assert ids["role_arn"] == role["Arn"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    document = iam.get_role_policy(RoleName=deploy.ROLE_NAME, PolicyName=deploy.ROLE_NAME)[
        "PolicyDocument"
    ]
    document = json.loads(document) if isinstance(document, str) else document
    granted = {s["Sid"]: (s["Action"], s["Resource"]) for s in document["Statement"]}
    assert all(s["Effect"] == "Allow" for s in document["Statement"])
    assert granted["ChatState"] == (
        [
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:Query",
        ],
        table["TableArn"],
    )
    assert granted["PostToConnections"] == (
        "execute-api:ManageConnections",
        f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{ids['websocket_api_id']}/v1/POST/@connections/*",
    )
    assert granted["StreamTheModel"] == (
        "bedrock:InvokeModelWithResponseStream",
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0",
    )
    assert "*" not in json.dumps([s["Action"] for s in document["Statement"]])
    deleted = deploy.destroy(aws, REGION)
    assert f"DynamoDB table {chat_state.TABLE_NAME}" in deleted
    assert f"IAM role {deploy.ROLE_NAME}" in deleted
    assert chat_state.TABLE_NAME not in dynamodb.list_tables()["TableNames"]
    assert iam.list_roles()["Roles"] == []


def test_apply_without_a_model_id_says_which_setting_is_missing(aws, impl, monkeypatch):
    monkeypatch.delenv("GATEWAY_BEDROCK_MODEL_ID")
    with pytest.raises(ValueError, match="GATEWAY_BEDROCK_MODEL_ID"):
        impl.load("aws.deploy").apply(aws, impl.settings.Settings(), REGION)


def test_the_plan_names_the_table_and_the_roles_permissions(impl):
    deploy, chat_state = impl.load("aws.deploy"), impl.load("aws.chat_state")
    settings = impl.settings.Settings(bedrock_model_id="amazon.nova-lite-v1:0")
    text = "\n".join(deploy.plan(settings, REGION))
    assert f"DynamoDB table {chat_state.TABLE_NAME}" in text and "on demand" in text
    assert "TTL on expires_at" in text
    assert "execute-api:ManageConnections" in text and "amazon.nova-lite-v1:0" in text
