"""Check WebSocket chat messages against `asyncapi.yaml`, the chat's contract.

`validate_client_message(message)` and `validate_server_message(message)` pick the message's
payload schema by its `type` and validate it with jsonschema; a failure raises
`ContractViolation` (an AssertionError) naming the message and the JSON pointer of the bad
field. The payload schemas reference shared shapes in `openapi.yaml` (`Problem`, `Usage`, ...);
both documents are registered under made-up https URIs, so those references resolve offline
and are never fetched.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .validate import ContractViolation, json_pointer, load_contract

ASYNCAPI_PATH = Path(__file__).with_name("asyncapi.yaml")
BASE_URI = "https://contract.realtime-genai-labs.dev/"
ASYNCAPI_URI = BASE_URI + "asyncapi.yaml"
OPENAPI_URI = BASE_URI + "openapi.yaml"
CHANNEL = "chat"


@cache
def load_asyncapi() -> dict[str, Any]:
    """The AsyncAPI document as a dict, read once. Treat it as read-only: it is shared."""
    return yaml.safe_load(ASYNCAPI_PATH.read_text(encoding="utf-8"))


def chat_address() -> str:
    """The path of the chat channel, `/v1/chat`."""
    return load_asyncapi()["channels"][CHANNEL]["address"]


def resolve_payload(name: str) -> dict[str, Any]:
    """The payload schema of message `name` ("ask", "start", ...), its local $ref followed."""
    document = load_asyncapi()
    ref = document["components"]["messages"][name]["payload"]["$ref"]
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


@cache
def _registry() -> Registry:
    return Registry().with_resources(
        [
            (ASYNCAPI_URI, Resource.from_contents(load_asyncapi(), DRAFT202012)),
            (OPENAPI_URI, Resource.from_contents(load_contract(), DRAFT202012)),
        ]
    )


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
    validators = {}
    for name in _message_names(action):
        pointer = messages[name]["payload"]["$ref"]  # "#/components/schemas/Ask"
        validators[name] = Draft202012Validator(
            {"$ref": ASYNCAPI_URI + pointer}, registry=_registry()
        )
    return validators


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
    error = best_match(validators[kind].iter_errors(dict(message)))
    if error is None:
        return None
    if error.validator in ("required", "additionalProperties"):
        return f"{kind}: {error.message}"  # names the property, not a value
    where = json_pointer(error.absolute_path).lstrip("/") or kind
    return f"{kind}: {where} breaks the contract's {error.validator!r} rule"
