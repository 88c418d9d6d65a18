"""Check WebSocket chat messages against `asyncapi.yaml`, the chat's contract.

`validate_client_message(message)` and `validate_server_message(message)` pick the message's
payload schema by its `type` and validate it with jsonschema; a failure raises
`ContractViolation` (an AssertionError) naming the message and the JSON pointer of the bad
field. The payload schemas reference shared shapes in `openapi.yaml` (`Problem`, `Usage`, the
fields of `AskRequest`, ...); `schemas` resolves those references offline.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from .schemas import ASYNCAPI_URI, json_pointer, load_asyncapi, resolve, validator, violation
from .validate import ContractViolation

CHANNEL = "chat"


def chat_address() -> str:
    """The path of the chat channel, `/v1/chat`."""
    return load_asyncapi()["channels"][CHANNEL]["address"]


def resolve_payload(name: str) -> dict[str, Any]:
    """The payload schema of message `name` ("ask", "start", ...), its local $ref followed."""
    document = load_asyncapi()
    return resolve(document["components"]["messages"][name]["payload"], document)


def _message_names(action: str) -> set[str]:
    """The names of the messages the operations with `action` (send | receive) carry."""
    document = load_asyncapi()
    names = set()
    for operation in document["operations"].values():
        if operation["action"] == action:
            names.update(ref["$ref"].rsplit("/", 1)[-1] for ref in operation["messages"])
    return names


@cache
def _validators(action: str) -> dict[str, Draft202012Validator]:
    """One validator per message type that `action` carries: {"ask": ..., "cancel": ...}."""
    messages = load_asyncapi()["components"]["messages"]
    # Each payload is a $ref such as "#/components/schemas/Ask".
    return {
        name: validator(ASYNCAPI_URI + messages[name]["payload"]["$ref"])
        for name in _message_names(action)
    }


def _validate(message: Any, action: str, who: str) -> dict[str, Any]:
    validators = _validators(action)
    if not isinstance(message, Mapping):
        raise ContractViolation(f"a {who} message must be a JSON object, got {message!r}")
    kind = message.get("type")
    if kind not in validators:
        raise ContractViolation(
            f"{who} message type {kind!r} is not in the contract; it has {sorted(validators)}"
        )
    error = best_match(validators[kind].iter_errors(dict(message)))
    if error is not None:
        pointer = json_pointer(error.absolute_path)
        place = f"at {pointer}" if pointer else "at the top level"
        raise ContractViolation(f"{who} message {kind!r} {place}: {error.message}")
    return dict(message)


def validate_client_message(message: Any) -> dict[str, Any]:
    """Check a message a client sends (ask, cancel, ping); return it."""
    return _validate(message, "receive", "client")


def validate_server_message(message: Any) -> dict[str, Any]:
    """Check a message the gateway sends (start, delta, end, error, pong); return it."""
    return _validate(message, "send", "server")


def client_message_error(message: Any) -> str | None:
    """Why a client message breaks the contract, for the `$default` route's error, or None.

    The text names the field and the rule, never the value sent (it may be large, or secret).
    """
    if not isinstance(message, Mapping):
        return "a message must be a JSON object"
    validators = _validators("receive")
    kind = message.get("type")
    if kind not in validators:
        return f"type must be one of {', '.join(sorted(validators))}"
    return violation(validators[kind], dict(message), kind)
