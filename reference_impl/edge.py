"""Edge checks: everything that is decided before a model is called.

In order: request size (from Content-Length, before the body is read; a chunked body is counted
while read and cut at the limit), authentication, request rate, the body's shape, max_tokens
against the cap, prompt length. Whatever fails here is refused early with a structured error,
and the model never runs.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import json_input
from .contract import schemas
from .documents import builtin
from .errors import GatewayError, problem, problem_response
from .model import ModelRequest
from .request_id import new_request_id
from .settings import Settings


@dataclass
class Exchange:
    """What the body limit and the app's answer share in one request."""

    started: bool = False  # the app has sent the start of its response
    refused: bool = False  # the 413 went out: the app's answer is dropped


class BodySizeLimitMiddleware:
    """Refuses a request body above `max_request_bytes` with 413 `request_too_large`.

    A pure ASGI middleware, so it sees the request before any body is read and adds no cost to
    streamed responses. A declared Content-Length above the limit is refused before the app
    runs; a chunked (or lying) body is counted while the app reads it and cut at the limit.

    Starlette has a body limit of its own (`max_body_size`, `RequestBodyLimitMiddleware`), but
    it refuses a declared size only when the app first reads the body, after the routes' own
    checks ran, and answers in plain text; ours refuses first and with the catalogue's problem.
    """

    def __init__(self, app: ASGIApp, settings: Settings, on_reject=lambda code: None) -> None:
        self.app = app
        self.max_bytes = settings.max_request_bytes
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = Exchange()

        # A plain function, as RequestIdMiddleware's: no coroutine of its own per event.
        def app_send(message: Message) -> Awaitable[None]:
            if exchange.refused:  # once the 413 is out, whatever the app answers is dropped
                return nothing()
            exchange.started = True
            return send(message)

        limited_receive = await self.limit_body(scope, receive, send, exchange)
        if limited_receive is None:
            return  # refused before the app ran
        try:
            await self.app(scope, limited_receive, app_send)
        except Exception:
            if not exchange.refused:
                raise

    async def limit_body(
        self, scope: Scope, receive: Receive, send: Send, exchange: Exchange
    ) -> Receive | None:
        """Refuse a body above `self.max_bytes` before it is read; the lab's task.

        Inputs: the request's ASGI `scope` (its headers are `scope["headers"]`, a list of
        (lower-case name, value) byte pairs), the server's `receive` and `send`, and the
        `exchange` shared with the response side (`exchange.started`: the app has begun its
        answer; `exchange.refused`: set it when you refuse).

        Returns None when a declared Content-Length is above the limit, after answering with
        `await self.refuse(scope, receive, send)`: nothing of the body is read and the app never
        runs. Otherwise returns the `receive` the app will read the body through: it counts the
        body bytes of each "http.request" message as they arrive (a body sent without a
        Content-Length, or with one that lies) and, once the count passes the limit while the
        app has not started answering, sets `exchange.refused`, calls `self.refuse(...)` and
        hands the app {"type": "http.disconnect"} from then on, so it stops reading.
        """
        # BEGIN SOLUTION lab04: refuse a body over the limit before it is read, or as it arrives
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self.refuse(scope, receive, send)
            return None
        received = 0

        async def counting_receive() -> Message:
            # No (or a lying) Content-Length: count the body as it arrives and stop at the limit.
            nonlocal received
            if exchange.refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not exchange.started:
                    exchange.refused = True
                    await self.refuse(scope, receive, send)
                    # The app sees a client that went away, so it stops reading and answering.
                    return {"type": "http.disconnect"}
            return message

        return counting_receive
        # END SOLUTION

    async def refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.on_reject("request_too_large")
        request_id = scope.get("state", {}).get("request_id") or new_request_id()
        detail = f"The body may be at most {self.max_bytes} bytes."
        response = problem_response(problem("request_too_large", detail, request_id))
        await response(scope, receive, send)


def authenticate(request: HTTPConnection, settings: Settings) -> str:
    """The caller's API key, from `Authorization: Bearer <key>`; refused with 401 otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise GatewayError("unauthorized", "Send your API key as Authorization: Bearer <key>.")
    key = key.strip()
    # Compare every key in constant time, so timing does not reveal how much of a key matched.
    if not any(hmac.compare_digest(key.encode(), known.encode()) for known in settings.api_keys):
        raise GatewayError("unauthorized", "This API key is not known to the gateway.")
    return key


@dataclass(frozen=True)
class AskRequest:
    """An ask that passed the contract's `AskRequest` schema: a question about one document."""

    question: str
    document_id: str | None = None
    document: str | None = None
    max_tokens: int | None = None


# The contract's schema of an ask, the one set of rules for HTTP bodies and WebSocket asks.
ASK_SCHEMA = schemas.OPENAPI_URI + "#/components/schemas/AskRequest"


def checked_ask(fields: Any, what: str) -> AskRequest:
    """The ask in `fields` (a decoded JSON value), or invalid_request naming what breaks the
    contract's `AskRequest` (never the values sent). `what` names the whole: "body", "ask"."""
    if schemas.quick_check(ASK_SCHEMA)(fields):
        return ask_of(fields)
    # Invalid under the full schema, but the cap and the documents are the gateway's to check
    # (CHECKED_BY_THE_GATEWAY), so it may still pass: `violation` decides, and says why.
    problem_text = schemas.violation(schemas.validator(ASK_SCHEMA), fields, what)
    if problem_text is not None:
        raise GatewayError("invalid_request", problem_text)
    return ask_of(fields)


def ask_of(fields: dict[str, Any]) -> AskRequest:
    """The AskRequest of fields that passed the contract's rules for an ask."""
    max_tokens = fields.get("max_tokens")
    return AskRequest(
        question=fields["question"],
        document_id=fields.get("document_id"),
        document=fields.get("document"),
        # JSON Schema counts 8.0 as an integer; the model is asked for an int.
        max_tokens=None if max_tokens is None else int(max_tokens),
    )


# The fields of an ask that name what the question is about: one of them, as in AskRequest.
DOCUMENT_FIELDS = ("document_id", "document")


def document_of(message: dict[str, Any]) -> dict[str, str]:
    """The document fields a WebSocket `ask` carries: {"document_id": ...}, {"document": ...},
    or {} when it names none (a follow-up about the same document)."""
    return {name: message[name] for name in DOCUMENT_FIELDS if name in message}


def ask_from_message(message: dict[str, Any], document: dict[str, str]) -> AskRequest:
    """The AskRequest of a WebSocket `ask` message about `document` (see `document_of`),
    locally (chat.py) and on AWS (ws_handler).

    The message has passed the chat's `Ask` schema, whose fields are AskRequest's own, and
    `document` holds one of its two fields: checking it again would only cost time.
    """
    fields = {"question": message["question"], **document}
    if "max_tokens" in message:
        fields["max_tokens"] = message["max_tokens"]
    return ask_of(fields)


async def nothing() -> None:
    """An awaitable that does nothing: a send that is dropped."""


async def read_body(request: Request, timeout: float) -> bytes:
    """The request's body, whole within `timeout` seconds.

    A client that trickles its body, or declares a Content-Length larger than what it sends,
    gets 408 request_timeout instead of holding its connection and a stream of the server's
    memory for as long as it likes. A client that leaves mid-body is a client's mistake too:
    an `invalid_request` nobody reads, not an unhandled ClientDisconnect in the log.
    """
    try:
        # asyncio's own timeout, on every request: 6 us against 17 us for anyio's cancel scope
        # (uvloop, 2026-11-29).
        async with asyncio.timeout(timeout):
            return await request.body()
    except TimeoutError:
        raise GatewayError(
            "request_timeout", f"The request body did not arrive within {timeout:g} s."
        ) from None
    except ClientDisconnect:
        raise GatewayError("invalid_request", "The request body was cut short.") from None


async def read_ask(request: Request, read_timeout: float) -> AskRequest:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise GatewayError("unsupported_media_type", "Send the body as application/json.")
    body = await read_body(request, read_timeout)
    try:
        data = json_input.loads(body)
    except json_input.RefusedJson as refused:
        raise GatewayError("invalid_request", f"The body {refused}.") from None
    return checked_ask(data, "body")


def model_request(ask: AskRequest, settings: Settings) -> ModelRequest:
    """Resolve the document and the token limits; refuse what is over a limit."""
    if ask.document_id is not None:
        document = builtin().get(ask.document_id)
        if document is None:
            known = ", ".join(sorted(builtin()))
            raise GatewayError(
                "invalid_request", f"Unknown document_id; the built-in documents are: {known}."
            )
        text = document.text
    else:
        text = ask.document
    max_tokens = check_max_tokens(ask.max_tokens, settings)
    request = ModelRequest(question=ask.question, document=text, max_tokens=max_tokens)
    if request.prompt_tokens > settings.max_prompt_tokens:
        raise GatewayError(
            "prompt_too_long",
            f"The prompt is {request.prompt_tokens} tokens; the limit is "
            f"{settings.max_prompt_tokens}.",
        )
    return request


def check_max_tokens(requested: int | None, settings: Settings) -> int:
    """The max_tokens the model will be asked for: the default, or the client's value if allowed.

    Above the cap is an error, not a silent clamp: the client asked for something the API does
    not offer, and must know its answer could be cut shorter than it planned.
    """
    # BEGIN SOLUTION lab04: refuse max_tokens above the cap instead of clamping it
    if requested is None:
        return settings.default_max_tokens
    if requested > settings.max_tokens_cap:
        raise GatewayError(
            "max_tokens_exceeded",
            f"max_tokens may be at most {settings.max_tokens_cap}; {requested} was requested.",
        )
    return requested
    # END SOLUTION
