"""Check the gateway against its contract: its routes, its responses and its stream events.

The contract (`openapi.yaml`, next to this module) is written first and the code follows it.
These checks are how "follows" is enforced rather than hoped for:

- route drift: `undocumented_routes(app)` lists what the app serves that the contract does not
  describe (an undocumented API is an unreviewed one), `unimplemented_routes(app)` the reverse;
- `validate_response(...)` checks one HTTP response: a declared status, a declared media type,
  the required headers, and a body that matches its schema;
- `validate_sse_event(...)` checks one server-sent event against the stream's `itemSchema`
  (OpenAPI 3.2), including its JSON `data` against the event's `contentSchema`, which a JSON
  Schema validator leaves alone (it is an annotation) so we apply it ourselves;
- `validate_stream(...)` adds the rules no per-event schema can say: ids count up from 1, the
  first event is `start`, and exactly one terminal event (`end` or `error`) comes last.
- `validate_resumed_stream(...)` checks the rest of a stream that a client resumed after an
  id: the ids follow on with no gap, and the one terminal event comes last.

Every failure raises `ContractViolation`, an `AssertionError`, so it reads well in pytest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from starlette.routing import Route, WebSocketRoute

from ..sse import parse_stream
from . import schemas
from .schemas import CONTRACT_PATH as CONTRACT_PATH  # the contract's file, for its readers
from .schemas import HTTP_METHODS, OPENAPI_URI, json_pointer, load_contract

STREAM_EVENT_SCHEMA = "#/components/schemas/StreamEvent"
# The operation that resumes a stream: its events continue one, so they need not start at 1.
RESUME_OPERATION = "resumeStream"
TERMINAL_EVENTS = frozenset({"end", "error"})


class ContractViolation(AssertionError):
    """The gateway did something its contract does not allow."""


# --- reading the contract -------------------------------------------------------------------


def resolve(node: Any) -> Any:
    """Follow a local `$ref` (`#/components/...`) in an OpenAPI object, however many hops."""
    try:
        return schemas.resolve(node)
    except schemas.UnresolvableRef as error:
        raise ContractViolation(
            f"the contract has a $ref this checker cannot follow: {error}"
        ) from None


def _absolute_refs(schema: Any) -> Any:
    """A copy of a contract schema whose `#/...` refs name the contract, wherever it is used."""
    if isinstance(schema, Mapping):
        return {
            key: OPENAPI_URI + value
            if key == "$ref" and isinstance(value, str) and value.startswith("#")
            else _absolute_refs(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_absolute_refs(item) for item in schema]
    return schema


def check_against(schema: Any, instance: Any, where: str) -> None:
    """Validate `instance` against `schema`, a schema taken from the contract.

    `$ref`s inside the schema (`#/components/schemas/...`) are resolved into the contract. The
    error names `where` and the JSON pointer of the failing value inside `instance`.
    """
    validator = Draft202012Validator(_absolute_refs(schema), registry=schemas.registry())
    error = best_match(validator.iter_errors(instance))
    if error is not None:
        pointer = json_pointer(error.absolute_path)
        place = f"at {pointer}" if pointer else "at the top level"
        raise ContractViolation(f"{where} {place}: {error.message}")


# --- route drift: the app against the contract ----------------------------------------------


def contract_routes(contract: Mapping[str, Any] | None = None) -> set[tuple[str, str]]:
    """Every operation the contract describes, as (METHOD, path): {("POST", "/v1/ask"), ...}."""
    contract = load_contract() if contract is None else contract
    # BEGIN SOLUTION lab02: list the operations the contract describes as (METHOD, path) pairs
    routes = set()
    for path, path_item in contract.get("paths", {}).items():
        for key in path_item:
            # A Path Item also holds summary, description, servers and parameters: only the
            # HTTP method keys are operations.
            if key in HTTP_METHODS:
                routes.add((key.upper(), path))
    return routes
    # END SOLUTION


def _openapi_path(path: str) -> str:
    """Starlette's `/items/{id:int}` is OpenAPI's `/items/{id}`."""
    return re.sub(r"\{([^}:]+):[^}]*\}", r"{\1}", path)


def app_routes(app: Any) -> set[tuple[str, str]]:
    """The HTTP routes a Starlette or FastAPI app serves, as (METHOD, path).

    HEAD is left out: Starlette adds it to every GET route by itself. Mounted sub-apps (static
    files, say) and WebSocket routes are left out too; see `app_websocket_routes`.
    """
    return {
        (method, _openapi_path(prefix + route.path))
        for prefix, route in _all_routes(app.routes)
        if isinstance(route, Route) and route.methods
        for method in route.methods
        if method != "HEAD"
    }


def _all_routes(routes: Iterable[Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    """Every route with the prefix it is served under, inside included routers too: FastAPI
    keeps an `include_router` as one entry holding the router, not as copies of its routes."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from _all_routes(included.routes, prefix + getattr(context, "prefix", ""))
        else:
            yield prefix, route


def app_websocket_routes(app: Any) -> set[str]:
    """The paths of the app's WebSocket routes (OpenAPI does not describe WebSockets)."""
    return {
        _openapi_path(prefix + route.path)
        for prefix, route in _all_routes(app.routes)
        if isinstance(route, WebSocketRoute)
    }


def undocumented_routes(app: Any) -> set[tuple[str, str]]:
    """Routes the app serves that the contract does not describe: each one is drift."""
    return app_routes(app) - contract_routes()


def unimplemented_routes(app: Any) -> set[tuple[str, str]]:
    """Operations the contract promises that the app does not serve."""
    return contract_routes() - app_routes(app)


# --- one HTTP response ------------------------------------------------------------------------


def _path_matches(template: str, path: str) -> bool:
    parts = re.split(r"(\{[^}]+\})", template)
    pattern = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
    return re.fullmatch(pattern, path) is not None


def find_operation(method: str, path: str) -> dict[str, Any]:
    """The Operation Object for `method path`; concrete paths win over templated ones."""
    path = path.split("?", 1)[0]
    paths = load_contract().get("paths", {})
    candidates = [path] if path in paths else [t for t in paths if _path_matches(t, path)]
    for template in candidates:
        operation = resolve(paths[template]).get(method.lower())
        if operation is not None:
            return operation
    if candidates:
        served = sorted(m.upper() for m in resolve(paths[candidates[0]]) if m in HTTP_METHODS)
        raise ContractViolation(
            f"{method.upper()} {path} is not in the contract (the path has {', '.join(served)})"
        )
    raise ContractViolation(f"{method.upper()} {path} is not in the contract: no such path")


def find_response(operation: Mapping[str, Any], status: int) -> dict[str, Any] | None:
    """The Response Object for `status`: exact code, then a range such as `4XX`, then default."""
    responses = {str(code).upper(): response for code, response in operation["responses"].items()}
    for key in (str(status), f"{status // 100}XX", "DEFAULT"):
        if key in responses:
            return resolve(responses[key])
    return None


def media_type_of(content_type: str | None) -> str | None:
    """`application/json; charset=utf-8` -> `application/json`."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower()


def _declared_media_type(content: Mapping[str, Any], media_type: str) -> str | None:
    for declared in content:
        base = declared.lower()
        if base in (media_type, "*/*") or (
            base.endswith("/*") and media_type.startswith(base[:-1])
        ):
            return declared
    return None


def is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _header_map(headers: Any) -> dict[str, str]:
    pairs = headers.items() if hasattr(headers, "items") else headers
    return {str(name).lower(): str(value) for name, value in pairs}


def validate_response(method: str, path: str, status: int, headers: Any, body_bytes: bytes) -> Any:
    """Check one HTTP response against the contract and return its decoded body.

    `headers` is a mapping (a dict, `httpx.Headers`) or a list of (name, value) pairs. The body
    comes back as JSON for JSON media types, as a list of event dicts for `text/event-stream`,
    and as text otherwise.
    """
    where = f"{method.upper()} {path} -> {status}"
    operation = find_operation(method, path)
    response = find_response(operation, status)
    if response is None:
        declared = ", ".join(str(code) for code in operation["responses"])
        raise ContractViolation(f"{where}: status {status} is not declared (declared: {declared})")

    found = _header_map(headers)
    for name, header in response.get("headers", {}).items():
        header = resolve(header)
        value = found.get(name.lower())
        if value is None:
            if header.get("required"):
                raise ContractViolation(f"{where}: required header {name} is missing")
            continue
        if "schema" in header:
            check_against(header["schema"], value, f"{where}: header {name}")

    content = response.get("content")
    if not content:
        if body_bytes:
            raise ContractViolation(f"{where}: the contract declares no body, got {body_bytes!r}")
        return None
    media_type = media_type_of(found.get("content-type"))
    if media_type is None:
        raise ContractViolation(f"{where}: no Content-Type; declared: {', '.join(content)}")
    declared = _declared_media_type(content, media_type)
    if declared is None:
        raise ContractViolation(
            f"{where}: Content-Type {media_type} is not declared (declared: {', '.join(content)})"
        )
    media = content[declared]

    if media_type == "text/event-stream":
        try:
            events = parse_stream(body_bytes.decode("utf-8"))
            if "itemSchema" in media and operation.get("operationId") == RESUME_OPERATION:
                validate_resumed_stream(events)
            elif "itemSchema" in media:
                validate_stream(events)
        except ContractViolation as error:
            raise ContractViolation(f"{where}: {error}") from None
        return events
    if is_json(media_type):
        try:
            body = json.loads(body_bytes)
        except ValueError as error:
            raise ContractViolation(f"{where}: the body is not JSON ({error})") from None
        if "schema" in media:
            check_against(media["schema"], body, f"{where}: body")
        _check_request_id_echo(where, found, body)
        if media_type == "application/problem+json" and body.get("status") != status:
            raise ContractViolation(
                f"{where}: the problem body says status {body.get('status')}, the response {status}"
            )
        return body
    try:
        text = body_bytes.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ContractViolation(f"{where}: the body is not UTF-8 text ({error})") from None
    if "schema" in media:
        check_against(media["schema"], text, f"{where}: body")
    return text


def _check_request_id_echo(where: str, headers: Mapping[str, str], body: Any) -> None:
    """The body's request_id, where there is one, is the X-Request-Id of its response."""
    if not isinstance(body, Mapping) or "request_id" not in body:
        return
    header = headers.get("x-request-id")
    if header is not None and body["request_id"] != header:
        raise ContractViolation(
            f"{where}: body request_id {body['request_id']!r} is not X-Request-Id {header!r}"
        )


# --- stream events ----------------------------------------------------------------------------


def stream_event_variants() -> dict[str, dict[str, Any]]:
    """The StreamEvent variants by event name: {"start": {...}, "delta": {...}, ...}."""
    schema = resolve({"$ref": STREAM_EVENT_SCHEMA})
    return {variant["properties"]["event"]["const"]: variant for variant in schema["oneOf"]}


def check_event_data(variant: Mapping[str, Any], data: str, where: str = "event") -> Any:
    """Decode an event's `data` and validate it against the variant's `contentSchema`.

    `variant` is one member of StreamEvent's `oneOf`. Its `data` property declares
    `contentMediaType: application/json` and a `contentSchema`. JSON Schema 2020-12 treats both
    as annotations, so a validator that passed the event has not looked inside `data` at all.
    Returns the decoded data.
    """
    # BEGIN SOLUTION lab02: decode an event's JSON data and validate it against its contentSchema
    data_schema = variant["properties"]["data"]
    if data_schema.get("contentMediaType") != "application/json":
        return data
    try:
        decoded = json.loads(data)
    except ValueError as error:
        raise ContractViolation(f"{where}: data is not JSON ({error})") from None
    if "contentSchema" in data_schema:
        check_against(data_schema["contentSchema"], decoded, f"{where}: data")
    return decoded
    # END SOLUTION


def validate_sse_event(event: str, data: str, id: str | None, retry: int | None = None) -> Any:
    """Check one parsed server-sent event against the contract; return its decoded data.

    The event is given as a client parses it (a browser's EventSource, `sse.parse_stream`,
    httpx-sse): `event` defaults to "message", `data` is the joined data lines, `id` is None
    (or "") when the event had none.
    """
    # Events are named by their SSE id, the number a client sees, in every message here.
    where = f"event id {id} ({event})" if id not in (None, "") else f"an event without id ({event})"
    variants = stream_event_variants()
    if event not in variants:
        raise ContractViolation(
            f"{where}: unknown event type {event!r}; the contract has {', '.join(variants)}"
        )
    instance: dict[str, Any] = {"event": event, "data": data}
    if id not in (None, ""):
        instance["id"] = id
    if retry is not None:
        instance["retry"] = retry
    check_against({"$ref": STREAM_EVENT_SCHEMA}, instance, where)
    return check_event_data(variants[event], data, where)


def _event_fields(event: Any) -> dict[str, Any]:
    """An event as a dict, whether it is one already or an httpx-sse `ServerSentEvent`."""
    if isinstance(event, Mapping):
        return dict(event)
    fields = {"event": event.event, "data": event.data, "id": event.id or None}
    if getattr(event, "retry", None) is not None:
        fields["retry"] = event.retry
    return fields


def check_stream_order(events: list[dict[str, Any]]) -> None:
    """The rules of a whole stream, which no schema of a single event can express.

    - the first event is `start`;
    - every event has an id, a whole number: 1 for the first event, larger for each next one;
    - exactly one terminal event (`end` or `error`) ends the stream: it is the last event.
    `events` are dicts with at least `event` and `id` (None when missing).
    """
    # BEGIN SOLUTION lab02: check the ids count up from 1 and one terminal event comes last
    if not events:
        raise ContractViolation("the stream has no events; it must start with a start event")
    if events[0].get("event") != "start":
        raise ContractViolation(f"the first event is {events[0].get('event')!r}, not 'start'")
    previous = 0
    for position, event in enumerate(events, start=1):
        name, event_id = event.get("event"), event.get("id")
        if event_id is None or not str(event_id).isdigit():
            after = f"after event id {previous}" if previous else "first"
            raise ContractViolation(f"the event {after} ({name}) has no numeric id: {event_id!r}")
        if position == 1 and int(event_id) != 1:
            raise ContractViolation(f"the first event has id {event_id}, not 1")
        if int(event_id) <= previous:
            raise ContractViolation(
                f"event id {event_id} ({name}) is not more than the previous "
                f"id {previous}: ids must increase"
            )
        previous = int(event_id)
        if name in TERMINAL_EVENTS and position != len(events):
            following = events[position].get("event")
            raise ContractViolation(
                f"event id {event_id} ({name}) is terminal, yet a {following!r} event follows it"
            )
    if events[-1].get("event") not in TERMINAL_EVENTS:
        raise ContractViolation(
            f"the stream ends with {events[-1].get('event')!r}: no terminal end or error event"
        )
    # END SOLUTION


def validate_stream(events: Iterable[Any]) -> list[Any]:
    """Check a whole parsed stream; return the decoded data of every event.

    `events` are dicts with `event`, `data`, `id` (and maybe `retry`), as `sse.parse_stream`
    returns them, or httpx-sse `ServerSentEvent`s. The stream rules are checked first, then every
    event against the contract.
    """
    fields = [_event_fields(event) for event in events]
    check_stream_order(fields)
    return [
        validate_sse_event(
            f.get("event", "message"), f.get("data", ""), f.get("id"), f.get("retry")
        )
        for f in fields
    ]


def validate_resumed_stream(events: Iterable[Any], after: int | None = None) -> list[Any]:
    """Check the events of a resumed stream (`GET /v1/ask/stream/{request_id}`): the rest of
    a stream from some id on, so it starts with any event, not necessarily `start`. Its ids
    follow each other with no gap (the first is `after + 1` when `after` is given), at most
    one terminal event comes, and it comes last. A stream resumed after its terminal event
    is empty. Returns the decoded data of every event."""
    fields = [_event_fields(event) for event in events]
    previous = after
    for position, event in enumerate(fields, start=1):
        name, event_id = event.get("event"), event.get("id")
        if event_id is None or not str(event_id).isdigit():
            raise ContractViolation(f"a resumed event ({name}) has no numeric id: {event_id!r}")
        if previous is not None and int(event_id) != previous + 1:
            raise ContractViolation(
                f"event id {event_id} ({name}) does not follow id {previous}: a resume skips "
                "or repeats no event"
            )
        if (name == "start") != (int(event_id) == 1):
            raise ContractViolation(f"event id {event_id} is {name!r}: only event 1 is 'start'")
        previous = int(event_id)
        if name in TERMINAL_EVENTS and position != len(fields):
            raise ContractViolation(f"event id {event_id} ({name}) is terminal, yet more follow")
    if fields and fields[-1].get("event") not in TERMINAL_EVENTS:
        raise ContractViolation("the resumed stream ends without its terminal end or error event")
    return [
        validate_sse_event(
            f.get("event", "message"), f.get("data", ""), f.get("id"), f.get("retry")
        )
        for f in fields
    ]
