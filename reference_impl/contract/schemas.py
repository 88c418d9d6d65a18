"""The contract's two documents and their schemas, read in one place.

`openapi.yaml` (the HTTP routes) and `asyncapi.yaml` (the WebSocket chat) are registered under
made-up https URIs, so a `$ref` inside one document, or from the chat's to the HTTP one
(`openapi.yaml#/components/schemas/...`), resolves offline and is never fetched. Everything
that reads the contract (the checks in `validate` and `asyncapi_validate`, the edge's request
checks, the docs page, the AWS converter) takes the documents, `$ref` resolution and the list of
HTTP methods from here. `validator(uri)` checks a value against any schema in either document,
and `violation(...)` tells a client what broke which rule, without echoing what it sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import relevance
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

CONTRACT_PATH = Path(__file__).with_name("openapi.yaml")
ASYNCAPI_PATH = Path(__file__).with_name("asyncapi.yaml")
BASE_URI = "https://contract.realtime-genai-labs.dev/"
OPENAPI_URI = BASE_URI + "openapi.yaml"
ASYNCAPI_URI = BASE_URI + "asyncapi.yaml"
# The keys of an OpenAPI 3.2 Path Item that are operations, in the specification's order
# (`query` is new in 3.2); the others (summary, description, servers, parameters,
# additionalOperations) describe the path itself.
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace", "query")


class UnresolvableRef(LookupError):
    """A `$ref` that does not point into its own document, points nowhere, or loops."""


@cache
def load_contract() -> dict[str, Any]:
    """The HTTP contract as a dict, read once. Treat it as read-only: it is shared."""
    return yaml.safe_load(CONTRACT_PATH.read_text(encoding="utf-8"))


@cache
def load_asyncapi() -> dict[str, Any]:
    """The chat's AsyncAPI document as a dict, read once. Treat it as read-only: it is shared."""
    return yaml.safe_load(ASYNCAPI_PATH.read_text(encoding="utf-8"))


def resolve(node: Any, document: Mapping[str, Any] | None = None) -> Any:
    """Follow a local `$ref` (`#/components/...`) in `document` (the HTTP contract unless
    given), however many hops; raise UnresolvableRef for one that cannot be followed."""
    document = load_contract() if document is None else document
    seen = set()
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if not ref.startswith("#/") or ref in seen:
            raise UnresolvableRef(ref)
        seen.add(ref)
        node = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or part not in node:
                raise UnresolvableRef(ref)
            node = node[part]
    return node


@cache
def registry() -> Registry:
    """Both documents under their URIs, for validating against any schema in either."""
    return Registry().with_resources(
        [
            (OPENAPI_URI, Resource.from_contents(load_contract(), DRAFT202012)),
            (ASYNCAPI_URI, Resource.from_contents(load_asyncapi(), DRAFT202012)),
        ]
    )


@cache
@cache
def validator(uri: str) -> Draft202012Validator:
    """A validator for the schema at `uri`, e.g. `OPENAPI_URI + "#/components/schemas/X"`."""
    return Draft202012Validator({"$ref": uri}, registry=registry())


@cache
def quick_check(uri: str):
    """A compiled yes/no check of the schema at `uri` in the HTTP contract, for the hot path.

    Checking a valid ask with `jsonschema` costs about 250 µs (most of it following `$ref`s
    through the registry), a fifth of the time to first token the gateway may add; the compiled
    check costs under 1 µs. It says only valid or not: `violation` explains a failure.
    """
    pointer = uri.removeprefix(OPENAPI_URI)
    if pointer == uri:
        raise ValueError(f"{uri} is not in the HTTP contract")
    return jsonschema_rs.validator_for(inline(resolve({"$ref": pointer}))).is_valid


def inline(node: Any, document: Mapping[str, Any] | None = None) -> Any:
    """`node` with every local `$ref` replaced by what it points to (the contract has no
    recursive schemas, so this ends)."""
    document = load_contract() if document is None else document
    if isinstance(node, Mapping):
        if isinstance(node.get("$ref"), str):
            return inline(resolve(node, document), document)
        return {key: inline(value, document) for key, value in node.items()}
    if isinstance(node, list):
        return [inline(item, document) for item in node]
    return node


def json_pointer(path: Any) -> str:
    """The RFC 6901 JSON pointer of a place in a document, e.g. `/usage/input_tokens`."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


# Two value sets the contract states as the gateway ships them: the default `max_tokens` cap and
# the built-in documents. The gateway checks both itself, against the cap in force (a setting)
# and the documents it has, with the errors that say so (max_tokens_exceeded with the cap;
# invalid_request listing the documents), so the schema leaves them to it.
CHECKED_BY_THE_GATEWAY = frozenset({("maximum", ("max_tokens",)), ("enum", ("document_id",))})


def violation(schema: Draft202012Validator, instance: Any, what: str) -> str | None:
    """What in a client's `instance` breaks `schema`, for its error message, or None.

    It names the field and the rule, never the value sent (it may be large, or secret). `what`
    names the instance ("body", "ask") when the fault is the whole of it.
    """
    errors = [
        error
        for error in schema.iter_errors(instance)
        if (error.validator, tuple(error.absolute_path)) not in CHECKED_BY_THE_GATEWAY
    ]
    if not errors:
        return None
    # The most relevant error, not one of its sub-errors: a failed `oneOf` says more than the
    # first branch it failed.
    error = max(errors, key=relevance)
    where = json_pointer(error.absolute_path).lstrip("/")
    if error.validator in ("required", "additionalProperties"):
        return f"{what}: {error.message}"  # names the property, not a value
    if error.validator == "type" and error.instance is None and where:
        return f"{where} may not be null; leave the field out instead"
    if error.validator == "oneOf":
        # A oneOf of single `required`s: exactly one of those fields (AskRequest's document).
        alternatives = [branch.get("required", ()) for branch in error.validator_value]
        if all(len(names) == 1 for names in alternatives):
            names = " or ".join(names[0] for names in alternatives)
            return f"{where or what}: give exactly one of {names}"
    rule = error.validator_value
    if isinstance(rule, Mapping) and "description" in rule:
        return f"{where or what}: {rule['description']}"  # a rule that says what it wants
    if not where:
        return f"{what} breaks the contract's {error.validator!r} rule"
    return f"{what}: {where} breaks the contract's {error.validator!r} rule"
