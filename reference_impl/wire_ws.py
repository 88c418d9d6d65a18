"""The WebSocket wire layer: frames in, routed messages out; guard items in, JSON messages out.

The chat's contract is `contract/asyncapi.yaml`. Every message is one JSON text frame with a
`type`. A client message is routed on its `type`, as API Gateway routes on
`$request.body.action` [apigw-ws-routes]; what cannot be routed (not JSON, a binary frame, an
unknown type, a message that breaks its schema) goes to the `$default` route, which answers
with an `error` message and keeps the connection open.

An answer is `start`, `delta`s and exactly one terminal message, `end` or `error`, each with
the `id` of the `ask` it answers. Errors carry the same problem object as HTTP.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

from . import json_input
from .contract.asyncapi_validate import client_message_error, load_asyncapi
from .errors import GatewayError, problem, problem_from
from .guard import Delta, Finished, end_data

# The contract's MessageId (asyncapi.yaml, components/schemas/MessageId).
MESSAGE_ID = re.compile(load_asyncapi()["components"]["schemas"]["MessageId"]["pattern"])


@dataclass(frozen=True)
class Routed:
    """A client message that passed the contract, with the route it goes to."""

    route: str  # "ask" | "cancel" | "ping"
    message: dict[str, Any]


class Unroutable(GatewayError):
    """A frame for the `$default` route: the client gets `invalid_request` with `message_id`."""

    def __init__(self, detail: str, message_id: str | None = None) -> None:
        super().__init__("invalid_request", detail)
        self.message_id = message_id


def readable_id(message: Any) -> str | None:
    """The message's `id` when it is a valid one, so an error can name what caused it."""
    value = message.get("id") if isinstance(message, dict) else None
    if isinstance(value, str) and MESSAGE_ID.fullmatch(value) and len(value) <= 64:
        return value
    return None


def route(frame: dict[str, Any]) -> Routed:
    """Route one received ASGI `websocket.receive` frame, or raise `Unroutable`."""
    # BEGIN SOLUTION lab07: route each client message on its type; the rest is the $default route
    text = frame.get("text")
    if text is None:
        raise Unroutable("Send JSON text frames; binary frames are not part of the API.")
    try:
        message = json_input.loads(text)
    except json_input.RefusedJson as refused:  # not JSON, too deep, a key twice, a NUL ...
        raise Unroutable(f"The message {refused}.") from None
    problem_text = client_message_error(message)
    if problem_text is not None:
        raise Unroutable(f"{problem_text}; see /v1/chat in asyncapi.yaml.", readable_id(message))
    return Routed(message["type"], message)
    # END SOLUTION


def start_message(ask_id: str, request_id: str, history_truncated: bool) -> dict[str, Any]:
    return {
        "type": "start",
        "id": ask_id,
        "request_id": request_id,
        "history_truncated": history_truncated,
    }


def answer_message(ask_id: str, item: Delta | Finished) -> dict[str, Any]:
    """A `delta` for a token, an `end` for the guard's `Finished`."""
    if isinstance(item, Delta):
        return {"type": "delta", "id": ask_id, "index": item.index, "text": item.text}
    return {"type": "end", "id": ask_id, **end_data(item)}


def error_message(message_id: str | None, error: GatewayError, request_id: str) -> dict[str, Any]:
    return {"type": "error", "id": message_id, "problem": problem_from(error, request_id)}


def error_message_for(
    message_id: str | None, code: str, detail: str, request_id: str
) -> dict[str, Any]:
    return {"type": "error", "id": message_id, "problem": problem(code, detail, request_id)}


PONG = {"type": "pong"}


# One encoder object: json.dumps with custom separators builds a new encoder on every call.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


def encode(message: dict[str, Any]) -> str:
    """Compact JSON, as every message on the wire."""
    return _compact_json(message)


def encode_delta(ask_id: str, index: int, text: str) -> str:
    """The `delta` message of one token, character for character what
    `encode(answer_message(ask_id, Delta(index, text)))` makes.

    Written out by hand, as the SSE delta (sse.encode_delta_event), because it is sent once per
    token: building the dict and running the general encoder cost more than the rest of a
    token's way through the chat. Strings are escaped by the function json uses (ASCII only).
    """
    return (
        f'{{"type":"delta","id":{encode_basestring_ascii(ask_id)},"index":{index},'
        f'"text":{encode_basestring_ascii(text)}}}'
    )
