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

Between invocations, the connection's state lives in DynamoDB (`chat_state.py`): the
conversation's document and history, so a follow-up is asked with the earlier turns as locally,
and the answer in flight, so a `cancel` (another invocation) can mark it. The streaming
invocation looks at that mark between chunks, now and then (`CancelWatch`), and on a cancel
stops the Bedrock stream and ends the answer with `stop_reason: cancelled` and the usage so far.
A connection that is gone (`$disconnect`, or a `GoneException` on a post) has its items deleted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .. import bedrock, edge, json_input
from ..bedrock import BedrockModel
from ..contract.asyncapi_validate import client_message_error
from ..errors import GatewayError
from ..gateway import Gateway
from ..guard import Delta
from ..model import ModelRequest, Turn
from ..request_id import new_request_id
from ..session import StreamSession
from ..settings import Settings
from ..wire_ws import answer_message, encode, error_message, readable_id, start_message
from .chat_state import Busy, ChatState, Conversation

log = logging.getLogger(__name__)

# The WebSocket integration timeout is 29 s and cannot be raised [apigw-ws-quotas]; keep a
# margin for the last posts and the return.
INTEGRATION_TIMEOUT_SECONDS = 29.0
ANSWER_BUDGET_SECONDS = INTEGRATION_TIMEOUT_SECONDS - 4.0
# How often the streaming invocation reads the answer's cancel mark (see CancelWatch).
CANCEL_CHECK_SECONDS = 0.25


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


def ask_request(
    message: dict[str, Any], conversation: Conversation, settings: Settings
) -> tuple[ModelRequest, dict[str, str], bool]:
    """The model request for an `ask`, with the edge's max_tokens rule and prompt limit, and as
    much of the conversation's history as the budget allows (oldest turns dropped first, as
    locally); also the document it is about and whether history was dropped."""
    document = edge.document_of(message) or conversation.document
    if not document:
        raise GatewayError(
            "invalid_request",
            "The first ask of a conversation must name a document_id or send a document.",
        )
    request = edge.model_request(edge.ask_from_message(message, document), settings)
    turns = list(conversation.turns)
    truncated = False
    while turns and sum(turn.tokens for turn in turns) > settings.ws_history_tokens:
        turns.pop(0)
        truncated = True
    return replace(request, history=tuple(turns)), document, truncated


class CancelWatch:
    """Whether the client cancelled the answer, read from DynamoDB between chunks.

    A read per chunk would cost one read request unit per token, hundreds per answer. Reading
    at most once every `every_seconds` bounds the cost by the answer's duration instead of its
    length, whatever the model's speed: a 25 s answer budget costs at most 101 reads at 0.25 s.
    The price is how fast a cancel bites: at the first chunk after `every_seconds` have passed,
    so the client may get up to that long of deltas after its `cancel`. (Counting chunks
    instead would make a fast model cost more reads and a slow one bite later.)
    """

    def __init__(
        self,
        state: ChatState,
        ask_id: str,
        every_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.ask_id = ask_id
        self.every_seconds = every_seconds
        self.clock = clock
        self.checked_at = clock()
        self.reads = 0

    def cancelled(self) -> bool:
        now = self.clock()
        if now - self.checked_at < self.every_seconds:
            return False
        self.checked_at = now
        self.reads += 1
        try:
            state = self.state.answer_state(self.ask_id)
        except (ClientError, BotoCoreError):
            # A failed read (throttled, a network blip) must not break the answer: the next
            # check sees the cancel, if there is one.
            log.warning("cancel check for %s failed; streaming on", self.ask_id, exc_info=True)
            return False
        # None: the connection's items were deleted ($disconnect), nobody is listening.
        return state != "streaming"


@dataclass
class Outcome:
    """How an answer ended (for the log) and the text the client got, for the history."""

    ending: str
    text: str
    finished: bool  # it ended with an `end` (an answer, max_tokens, a cancel)


def answer(
    connection: Connection,
    ask_id: str,
    request: ModelRequest,
    bedrock_client: Any,
    settings: Settings,
    budget_seconds: float,
    watch: CancelWatch | None = None,
    history_truncated: bool = False,
) -> Outcome:
    """Stream one answer to the connection within `budget_seconds`. The same stream session as
    the local gateway's, on Bedrock, with the budget as the stream's maximum duration."""
    stream_settings = settings.model_copy(update={"max_stream_seconds": budget_seconds})
    gateway = Gateway(stream_settings, BedrockModel(stream_settings, client=bedrock_client))
    return run_to_end(stream_answer(connection, ask_id, request, gateway, watch, history_truncated))


def run_to_end(coroutine: Coroutine[Any, Any, Outcome]) -> Outcome:
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
    connection: Connection,
    ask_id: str,
    request: ModelRequest,
    gateway: Gateway,
    watch: CancelWatch | None = None,
    history_truncated: bool = False,
) -> Outcome:
    # API Gateway's usage plan has throttled the caller already; the admission here refuses
    # only a request that could never fit the token budget.
    session = await StreamSession.admit(gateway, "lambda", request, new_request_id())
    stopped_because = "client_disconnect"
    text: list[str] = []

    def outcome(ending: str) -> Outcome:
        return Outcome(ending, "".join(text), session.progress.finished is not None)

    try:
        if not connection.send(start_message(ask_id, session.request_id, history_truncated)):
            return outcome(stopped_because)
        async for item in session.items:
            if isinstance(item, Delta):
                if watch is not None and watch.cancelled():
                    end = session.cancel()  # the usage of what was delivered
                    await session.close()  # the Bedrock stream stops before the end goes out
                    connection.send(answer_message(ask_id, end))
                    return outcome(end.stop_reason)
                text.append(item.text)
            if not connection.send(answer_message(ask_id, item)):
                return outcome(stopped_because)  # the close below stops reading the Bedrock stream
        return outcome(session.ending(stopped_because))
    except GatewayError as error:
        connection.send(error_message(ask_id, error, session.request_id))
        return outcome(error.code)
    finally:
        await session.close(stopped_because)


def handler(event: dict[str, Any], context: Any, *, clients: dict[str, Any] | None = None):
    """The Lambda entry point for every route: `$connect`, `$disconnect`, `$default`, `ask`,
    `cancel`, `ping`. `clients` lets tests pass their own boto3 clients."""
    import boto3

    settings = Settings()
    request_context = event["requestContext"]
    route = request_context["routeKey"]
    clients = clients or {}
    if route == "$connect":
        # The REQUEST authorizer on $connect has already accepted the caller [apigw-ws-auth];
        # nothing may be posted to a connection before $connect returns [apigw-ws-connections].
        return {"statusCode": 200}
    dynamodb = clients.get("dynamodb") or boto3.client("dynamodb")
    state = ChatState(dynamodb, request_context["connectionId"], settings.ws_max_connection_seconds)
    if route == "$disconnect":
        state.forget()
        return {"statusCode": 200}
    management = clients.get("apigatewaymanagementapi") or boto3.client(
        "apigatewaymanagementapi", endpoint_url=management_endpoint(event)
    )
    connection = Connection(management, request_context["connectionId"])
    try:
        route_message(event, route, connection, state, settings, context, clients)
    finally:
        if connection.gone:  # the client left: nothing of the conversation is needed again
            state.forget()
    return {"statusCode": 200}


def route_message(
    event: dict[str, Any],
    route: str,
    connection: Connection,
    state: ChatState,
    settings: Settings,
    context: Any,
    clients: dict[str, Any],
) -> None:
    request_id = new_request_id()
    try:
        # The local chat's one JSON rule: too deep, a key twice, a NUL are the client's fault.
        message = json_input.loads(event.get("body") or "")
    except json_input.RefusedJson:
        message = None
    problem_text = client_message_error(message)
    if route == "$default" or problem_text is not None:
        detail = f"{problem_text or 'type must be one of ask, cancel, ping'}; see asyncapi.yaml."
        error = GatewayError("invalid_request", detail)
        connection.send(error_message(readable_id(message), error, request_id))
        return
    if route == "ping":
        connection.send({"type": "pong"})
        return
    ask_id = message["id"]
    try:
        if route == "cancel":
            # The streaming invocation sees the mark and sends the `end`; this one says
            # nothing more, as the local chat's cancel.
            if not state.cancel(ask_id):
                error = GatewayError(
                    "invalid_request",
                    f"No answer with id {ask_id} is streaming; it may have just ended.",
                )
                connection.send(error_message(ask_id, error, request_id))
            return
        conversation = state.begin(ask_id)  # route == "ask"
    except Busy:
        error = GatewayError(
            "busy", "An answer is still streaming on this connection; cancel it or wait."
        )
        connection.send(error_message(ask_id, error, request_id))
        return
    except (ClientError, BotoCoreError):
        # DynamoDB failed (throttled, unreachable): ours to log, the client's to retry.
        log.exception("the chat state for %s %s could not be written", route, ask_id)
        error = GatewayError("internal_error", f"The gateway could not handle this {route}.")
        connection.send(error_message(ask_id, error, request_id))
        return
    document, turns = None, None
    try:
        request, document, truncated = ask_request(message, conversation, settings)
        budget = ANSWER_BUDGET_SECONDS
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            budget = min(budget, context.get_remaining_time_in_millis() / 1000 - 1.0)
        # A budget already spent still gets a stream, which the guard ends at once with a
        # timeout.
        budget = max(min(budget, settings.max_stream_seconds), 0.001)
        bedrock_client = clients.get("bedrock-runtime") or bedrock.make_client(settings)
        watch = CancelWatch(state, ask_id, CANCEL_CHECK_SECONDS)
        outcome = answer(
            connection, ask_id, request, bedrock_client, settings, budget, watch, truncated
        )
        log.info("ask %s ended: %s (%d cancel checks)", ask_id, outcome.ending, watch.reads)
        if outcome.finished:
            # What the client saw becomes the context of the next question, as locally.
            turns = (*request.history, Turn(message["question"], outcome.text))
    except GatewayError as error:
        connection.send(error_message(ask_id, error, request_id))
    finally:
        state.finish(ask_id, document, turns)
