"""Edge checks: everything that is decided before a model is called.

In order: request size (from Content-Length, before the body is read; a chunked body is counted
while read and cut at the limit), authentication, request rate, the body's shape, max_tokens
against the cap, prompt length. Whatever fails here is refused early with a structured error,
and the model never runs.
"""

from __future__ import annotations

import hmac
import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .documents import builtin
from .errors import GatewayError, problem, problem_response
from .model import ModelRequest
from .request_id import new_request_id
from .settings import Settings


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
        started = False

        async def app_send(message: Message) -> None:
            nonlocal started
            if refused:  # once the 413 is out, whatever the app answers is dropped
                return
            started = True
            await send(message)

        # BEGIN SOLUTION lab04: enforce the request size limit before the body is read
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self.refuse(scope, receive, send)
            return
        received, refused = 0, False

        async def counting_receive() -> Message:
            # No (or a lying) Content-Length: count the body as it arrives and stop at the limit.
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not started:
                    refused = True
                    await self.refuse(scope, receive, send)
                    # The app sees a client that went away, so it stops reading and answering.
                    return {"type": "http.disconnect"}
            return message

        # END SOLUTION
        try:
            await self.app(scope, counting_receive, app_send)
        except Exception:
            if not refused:
                raise

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


class AskRequest(BaseModel):
    """The request body of POST /v1/ask and /v1/ask/stream; see AskRequest in the contract."""

    # Unknown fields are an error, not ignored: a client drifting from the contract is told so.
    model_config = ConfigDict(extra="forbid")

    question: Annotated[str, Field(min_length=1, max_length=4000, strict=True)]
    document_id: Annotated[str | None, Field(pattern=r"^[a-z0-9-]+$", strict=True)] = None
    document: Annotated[str | None, Field(min_length=1, strict=True)] = None
    max_tokens: Annotated[int | None, Field(ge=1)] = None

    @model_validator(mode="before")
    @classmethod
    def no_nulls(cls, data: Any) -> Any:
        # The contract's fields are never nullable: an explicit null is a client bug to report.
        if isinstance(data, dict):
            nulls = sorted(str(name) for name, value in data.items() if value is None)
            if nulls:
                raise ValueError(f"{', '.join(nulls)} may not be null; leave the field out instead")
        return data

    @field_validator("max_tokens", mode="before")
    @classmethod
    def no_booleans(cls, value: Any) -> Any:
        if isinstance(value, bool) or isinstance(value, str):
            raise ValueError("must be an integer")
        return value

    @model_validator(mode="after")
    def one_document(self) -> AskRequest:
        if (self.document_id is None) == (self.document is None):
            raise ValueError("give exactly one of document_id or document")
        return self


# The fields of an ask that name what the question is about: one of them, as in AskRequest.
DOCUMENT_FIELDS = ("document_id", "document")


def document_of(message: dict[str, Any]) -> dict[str, str]:
    """The document fields a WebSocket `ask` carries: {"document_id": ...}, {"document": ...},
    or {} when it names none (a follow-up about the same document)."""
    return {name: message[name] for name in DOCUMENT_FIELDS if name in message}


def ask_from_message(message: dict[str, Any], document: dict[str, str]) -> AskRequest:
    """The AskRequest of a WebSocket `ask` message about `document` (see `document_of`),
    locally (chat.py) and on AWS (ws_handler)."""
    fields = {"question": message["question"], **document}
    if "max_tokens" in message:
        fields["max_tokens"] = message["max_tokens"]
    return AskRequest(**fields)


def describe(error: ValidationError) -> str:
    """A short list of what is wrong, naming fields, never echoing the values sent."""
    parts = []
    for item in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


async def read_ask(request: Request) -> AskRequest:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise GatewayError("unsupported_media_type", "Send the body as application/json.")
    body = await request.body()
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise GatewayError("invalid_request", "The body is not valid JSON.") from None
    try:
        return AskRequest.model_validate(data)
    except ValidationError as error:
        raise GatewayError("invalid_request", describe(error)) from None


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
