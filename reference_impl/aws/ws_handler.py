"""The Lambda function behind the WebSocket API's routes: the chat, on AWS.

API Gateway keeps the WebSocket connection; each client message invokes this handler once with
the route it selected on `$request.body.type` [apigw-ws-routes]. The handler answers an `ask`
through the same stream session as the local gateway (session.py: the guard's deadlines and
max_tokens cut, the bill from Bedrock's own usage) on `bedrock.BedrockModel`, and pushes every
message to the connection with `post_to_connection` [apigw-ws-connections]: `start`,
`delta`s and exactly one `end` or `error`, the same JSON messages as the local `/v1/chat`
(`contract/asyncapi.yaml`).

Time limits, and how the handler lives with them [apigw-ws-quotas]:
- a route's integration may take at most 29 seconds (not adjustable). The handler gives an
  answer a time budget below it (`ANSWER_BUDGET_SECONDS`) as the stream's maximum duration, so
  the guard ends a longer one with a `stream_timeout` error (`model_timeout` before a token).
  Answers that need longer belong in a second, asynchronous invocation that pushes through
  @connections on its own clock (our design note, not an AWS statement);
- the connection itself lives at most 2 hours and is closed after 10 idle minutes, whatever the
  Lambda does: a client reconnects, and a post to a closed connection fails with
  `GoneException` (410), which ends the answer here and closes the Bedrock stream.

What it does not do: `cancel` needs state shared between invocations (the `ask` runs in another
invocation), for example a DynamoDB item the answer loop checks; it is answered with an error.
Follow-ups have no history either: each `ask` must name its document.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from .. import bedrock, edge
from ..bedrock import BedrockModel
from ..contract.asyncapi_validate import client_message_error
from ..errors import GatewayError
from ..gateway import Gateway
from ..model import ModelRequest
from ..request_id import new_request_id
from ..session import StreamSession
from ..settings import Settings
from ..wire_ws import answer_message, encode, error_message, readable_id, start_message

log = logging.getLogger(__name__)

# The WebSocket integration timeout is 29 s and cannot be raised [apigw-ws-quotas]; keep a
# margin for the last posts and the return.
INTEGRATION_TIMEOUT_SECONDS = 29.0
ANSWER_BUDGET_SECONDS = INTEGRATION_TIMEOUT_SECONDS - 4.0


def management_endpoint(event: dict[str, Any]) -> str:
    """The @connections endpoint of the API that sent `event`: https://{domain}/{stage}."""
    context = event["requestContext"]
    return f"https://{context['domainName']}/{context['stage']}"


@dataclass
class Connection:
    """One client's WebSocket connection, as the backend reaches it: through @connections."""

    client: Any  # an `apigatewaymanagementapi` client for the API's endpoint
    connection_id: str
    gone: bool = False
    sent: list[dict[str, Any]] = field(default_factory=list)

    def send(self, message: dict[str, Any]) -> bool:
        """Post one message; False when the client has left (the answer must stop)."""
        # BEGIN SOLUTION lab08: stop when the client has left (GoneException), fail on the rest
        if self.gone:
            return False
        try:
            self.client.post_to_connection(
                ConnectionId=self.connection_id, Data=encode(message).encode("utf-8")
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "GoneException":
                self.gone = True  # 410: the connection no longer exists [apigw-ws-connections]
                return False
            raise
        self.sent.append(message)
        return True
        # END SOLUTION


def ask_request(message: dict[str, Any], settings: Settings) -> ModelRequest:
    """The model request for an `ask`, with the edge's max_tokens rule and prompt limit."""
    document = edge.document_of(message)
    if not document:
        raise GatewayError(
            "invalid_request",
            "On AWS every ask names its document_id or sends its document (no history is kept).",
        )
    return edge.model_request(edge.ask_from_message(message, document), settings)


def answer(
    connection: Connection,
    ask_id: str,
    request: ModelRequest,
    bedrock_client: Any,
    settings: Settings,
    budget_seconds: float,
) -> str:
    """Stream one answer to the connection within `budget_seconds`; returns how it ended (for
    the log). The same stream session as the local gateway's, on Bedrock, with the budget as
    the stream's maximum duration."""
    stream_settings = settings.model_copy(update={"max_stream_seconds": budget_seconds})
    gateway = Gateway(stream_settings, BedrockModel(stream_settings, client=bedrock_client))
    return run_to_end(stream_answer(connection, ask_id, request, gateway))


def run_to_end(coroutine: Coroutine[Any, Any, str]) -> str:
    """Run `coroutine` from synchronous code. Lambda calls the handler with no event loop
    running; a notebook's kernel has one in this thread, so there it runs in a thread of its own.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def stream_answer(
    connection: Connection, ask_id: str, request: ModelRequest, gateway: Gateway
) -> str:
    # API Gateway's usage plan has throttled the caller already; the admission here refuses
    # only a request that could never fit the token budget.
    session = await StreamSession.admit(gateway, "lambda", request, new_request_id())
    stopped_because = "client_disconnect"
    try:
        if not connection.send(start_message(ask_id, session.request_id, False)):
            return stopped_because
        async for item in session.items:
            if not connection.send(answer_message(ask_id, item)):
                return stopped_because  # the close below stops reading the Bedrock stream
        return session.ending(stopped_because)
    except GatewayError as error:
        connection.send(error_message(ask_id, error, session.request_id))
        return error.code
    finally:
        await session.close(stopped_because)


def handler(event: dict[str, Any], context: Any, *, clients: dict[str, Any] | None = None):
    """The Lambda entry point for every route: `$connect`, `$disconnect`, `$default`, `ask`,
    `cancel`. `clients` lets tests pass their own boto3 clients."""
    import boto3

    settings = Settings()
    request_context = event["requestContext"]
    route = request_context["routeKey"]
    if route in ("$connect", "$disconnect"):
        # The REQUEST authorizer on $connect has already accepted the caller [apigw-ws-auth];
        # nothing may be posted to a connection before $connect returns [apigw-ws-connections].
        return {"statusCode": 200}
    clients = clients or {}
    management = clients.get("apigatewaymanagementapi") or boto3.client(
        "apigatewaymanagementapi", endpoint_url=management_endpoint(event)
    )
    connection = Connection(management, request_context["connectionId"])
    request_id = new_request_id()
    try:
        message = json.loads(event.get("body") or "")
    except ValueError:
        message = None
    problem_text = client_message_error(message)
    if route == "$default" or problem_text is not None:
        detail = f"{problem_text or 'type must be one of ask, cancel, ping'}; see asyncapi.yaml."
        error = GatewayError("invalid_request", detail)
        connection.send(error_message(readable_id(message), error, request_id))
        return {"statusCode": 200}
    if route == "ping":
        connection.send({"type": "pong"})
        return {"statusCode": 200}
    if route == "cancel":
        error = GatewayError(
            "invalid_request", "Cancel is not available on this deployment; close the socket."
        )
        connection.send(error_message(message["id"], error, request_id))
        return {"statusCode": 200}
    # route == "ask"
    try:
        request = ask_request(message, settings)
    except GatewayError as error:
        connection.send(error_message(message["id"], error, request_id))
        return {"statusCode": 200}
    budget = ANSWER_BUDGET_SECONDS
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        budget = min(budget, context.get_remaining_time_in_millis() / 1000 - 1.0)
    # A budget already spent still gets a stream, which the guard ends at once with a timeout.
    budget = max(min(budget, settings.max_stream_seconds), 0.001)
    bedrock_client = clients.get("bedrock-runtime") or bedrock.make_client(settings)
    outcome = answer(connection, message["id"], request, bedrock_client, settings, budget)
    log.info("ask %s ended: %s", message["id"], outcome)
    return {"statusCode": 200}
