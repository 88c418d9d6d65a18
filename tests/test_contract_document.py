"""The contract (reference_impl/contract/openapi.yaml) and lab 02: checking code against it.

The first tests read the YAML document itself: it is valid OpenAPI 3.2, every error is a
problem object, the stream is described event by event, and every example matches its schema.
The lab 02 tests grade `contract/validate.py` (route drift, event data against its
`contentSchema`, the rules of a whole stream) through the course switch, so they grade the
learner's `labs/contract/validate.py` as well. None of these tests starts the gateway.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx_sse
import pytest
import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute

from reference_impl.contract import schemas

lab02 = pytest.mark.lab("02")
# The Lab Tasks of notebook 02, as its "Lab Task N" headings number them.
lab02_task = {n: pytest.mark.lab("02", task=n) for n in (1, 2, 3)}

ROOT = Path(__file__).resolve().parent.parent

# The codes SPEC-NOTES.md says the Problem `code` enum holds.
SPEC_CODES = {
    "invalid_request",
    "unauthorized",
    "not_found",
    "method_not_allowed",
    "request_too_large",
    "max_tokens_exceeded",
    "prompt_too_long",
    "rate_limited",
    "quota_exceeded",
    "overloaded",
    "model_timeout",
    "stream_timeout",
    "idle_timeout",
    "model_error",
    "internal_error",
    "busy",
    "unsupported_media_type",
}
ERROR_STATUSES = {
    "400",
    "401",
    "403",
    "408",
    "413",
    "415",
    "429",
    "431",
    "500",
    "502",
    "503",
    "504",
}
OPERATIONS = {
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.yaml"),
    ("GET", "/docs"),
    ("GET", "/v1/documents"),
    ("POST", "/v1/ask"),
    ("POST", "/v1/ask/stream"),
    ("GET", "/v1/ask/stream/{request_id}"),  # resume a stream after the last event seen
    ("POST", "/v1/chat/tickets"),  # the browser's ticket for the WebSocket chat (asyncapi.yaml)
    ("GET", "/"),  # the demo page, its files, and the presenter's switch (demo_page.py)
    ("GET", "/demo/assets/{asset}"),
    ("PUT", "/demo/fake-model"),
}
REQUEST_ID = "req_0123456789abcdef"


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    # A copy of its own: a test may not change the one the checks share.
    return yaml.safe_load(schemas.CONTRACT_PATH.read_text(encoding="utf-8"))


def deref(contract: dict[str, Any], node: Any) -> Any:
    return schemas.resolve(node, contract)


def escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def schema_at(pointer: str) -> Draft202012Validator:
    """A validator for the schema at `pointer` in the contract, its $refs resolved in it."""
    return schemas.validator(f"{schemas.OPENAPI_URI}#{pointer}")


def operations(contract: dict[str, Any]):
    for path, item in contract["paths"].items():
        for method, operation in item.items():
            if method in schemas.HTTP_METHODS:
                yield method.upper(), path, operation


def media_objects(contract: dict[str, Any]):
    """Every Media Type Object where it is defined, with its JSON pointer."""
    containers = []
    for method, path, operation in operations(contract):
        base = f"/paths/{escape(path)}/{method.lower()}"
        if "requestBody" in operation:
            containers.append((f"{base}/requestBody", operation["requestBody"]))
        for status, response in operation["responses"].items():
            containers.append((f"{base}/responses/{status}", response))
    components = contract.get("components", {})
    for kind in ("responses", "requestBodies"):
        for name, container in components.get(kind, {}).items():
            containers.append((f"/components/{kind}/{name}", container))
    for pointer, container in containers:
        for media_type, media in container.get("content", {}).items():
            yield f"{pointer}/content/{escape(media_type)}", media


def event(name: str, data: Any, id: int | str | None) -> dict[str, Any]:
    return {
        "event": name,
        "data": data if isinstance(data, str) else json.dumps(data, separators=(",", ":")),
        "id": None if id is None else str(id),
    }


def problem(code: str = "rate_limited", status: int = 429, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"https://errors.realtime-genai-labs.dev/{code}",
        "title": "Too many requests",
        "status": status,
        "detail": "This API key sent more than 5 requests per second.",
        "code": code,
        "request_id": REQUEST_ID,
        "retryable": True,
        **extra,
    }


START = {
    "request_id": REQUEST_ID,
    "model": "fake-docqa",
    "limits": {
        "max_tokens": 256,
        "max_stream_seconds": 120.0,
        "first_token_timeout_seconds": 10.0,
        "idle_timeout_seconds": 15.0,
    },
}
DELTA = {"index": 0, "text": "Hello"}
END = {
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 12, "output_tokens": 1},
    "ttft_ms": 200.5,
    "duration_ms": 230.0,
}
ERROR = problem("idle_timeout", 504, title="Model went idle", detail="No token for 15 s.")


def good_stream(terminal: str = "end") -> list[dict[str, Any]]:
    last = END if terminal == "end" else ERROR
    return [
        event("start", START, 1),
        event("delta", DELTA, 2),
        event("delta", {"index": 1, "text": " world"}, 3),
        event(terminal, last, 4),
    ]


# --- the document ---------------------------------------------------------------------------


def test_contract_is_openapi_3_2_and_passes_the_spec_validator(contract):
    assert contract["openapi"] == "3.2.0"
    assert contract["info"]["title"] == "Realtime GenAI API Labs gateway"
    assert contract["info"]["version"] == "1.0.0"
    assert "the code follows it" in " ".join(contract["info"]["description"].split())
    assert [server["url"] for server in contract["servers"]] == ["http://127.0.0.1:8000"]
    validate_spec(contract)


def test_the_contract_describes_exactly_the_agreed_operations(contract):
    assert {(method, path) for method, path, _ in operations(contract)} == OPERATIONS


def test_every_operation_has_a_unique_operation_id_a_summary_and_a_description(contract):
    ids = []
    for method, path, operation in operations(contract):
        assert operation.get("operationId"), f"{method} {path} has no operationId"
        assert operation.get("summary") and operation.get("description"), f"{method} {path}"
        assert operation.get("tags"), f"{method} {path} has no tag"
        ids.append(operation["operationId"])
    assert len(ids) == len(set(ids))


def test_every_ref_in_the_contract_points_at_something(contract):
    def walk(node: Any, where: str):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                ref = node["$ref"]
                assert ref.startswith("#/"), f"{where}: non-local $ref {ref}"
                schemas.resolve(node, contract)  # raises when it points at nothing
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(contract, "")


def test_v1_operations_need_the_bearer_key_and_the_others_do_not(contract):
    scheme = contract["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for method, path, operation in operations(contract):
        # The presenter's switch changes the model for everyone: a key is the least it needs.
        needs_key = path.startswith("/v1/") or path == "/demo/fake-model"
        expected = [{"bearerAuth": []}] if needs_key else []
        assert operation.get("security") == expected, f"{method} {path}"


def test_every_error_response_is_a_problem_json_body(contract):
    for method, path, operation in operations(contract):
        for status, response in operation["responses"].items():
            if str(status).startswith("2"):
                continue
            response = deref(contract, response)
            content = response["content"]
            assert list(content) == ["application/problem+json"], f"{method} {path} {status}"
            schema = content["application/problem+json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Problem"}, f"{method} {path} {status}"


def test_ask_operations_declare_every_agreed_error_status(contract):
    for path in ("/v1/ask", "/v1/ask/stream"):
        statuses = set(contract["paths"][path]["post"]["responses"]) - {"200"}
        assert statuses == ERROR_STATUSES, path
    # Its rate check needs the shared limits store when there is one: 503 limits_unavailable.
    documents = contract["paths"]["/v1/documents"]["get"]["responses"]
    assert set(documents) == {"200", "401", "403", "429", "503"}


def test_every_response_carries_x_request_id_and_the_status_specific_headers(contract):
    for method, path, operation in operations(contract):
        for status, response in operation["responses"].items():
            headers = {
                name: deref(contract, header)
                for name, header in deref(contract, response).get("headers", {}).items()
            }
            where = f"{method} {path} {status}"
            assert headers["X-Request-Id"]["required"] is True, where
            assert headers["X-Request-Id"]["schema"] == {"$ref": "#/components/schemas/RequestId"}
            if str(status) in ("429", "503"):
                assert headers["Retry-After"]["required"] is True, where
            if str(status) == "401":
                assert headers["WWW-Authenticate"]["required"] is True, where
    request_id = contract["components"]["schemas"]["RequestId"]
    assert request_id["pattern"] == "^req_[0-9a-f]{16}$"


def test_the_stream_is_described_event_by_event_with_item_schema(contract):
    media = contract["paths"]["/v1/ask/stream"]["post"]["responses"]["200"]["content"]
    assert list(media) == ["text/event-stream"]
    assert media["text/event-stream"]["itemSchema"] == {"$ref": "#/components/schemas/StreamEvent"}
    assert "schema" not in media["text/event-stream"]  # `schema` would mean the whole body


def test_stream_event_has_one_variant_per_event_with_a_json_content_schema(contract):
    stream_event = contract["components"]["schemas"]["StreamEvent"]
    assert set(stream_event["required"]) == {"event", "data", "id"}
    assert stream_event["properties"]["id"]["pattern"] == "^[0-9]+$"
    assert stream_event["properties"]["retry"]["type"] == "integer"
    content_schemas = {}
    for variant in stream_event["oneOf"]:
        data = variant["properties"]["data"]
        assert data["contentMediaType"] == "application/json"
        content_schemas[variant["properties"]["event"]["const"]] = data["contentSchema"]["$ref"]
    assert content_schemas == {
        "start": "#/components/schemas/StartData",
        "delta": "#/components/schemas/DeltaData",
        "end": "#/components/schemas/EndData",
        "error": "#/components/schemas/Problem",
    }


def test_problem_codes_include_every_agreed_code_and_every_catalogue_code(contract, impl):
    problem_schema = contract["components"]["schemas"]["Problem"]
    codes = set(problem_schema["properties"]["code"]["enum"])
    assert SPEC_CODES <= codes
    assert set(impl.load("errors").CATALOGUE) <= codes
    assert set(problem_schema["required"]) == {
        "type",
        "title",
        "status",
        "detail",
        "code",
        "request_id",
        "retryable",
    }
    assert problem_schema["additionalProperties"] is False


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({"question": "Why?", "document_id": "bedrock-streaming"}, True),
        ({"question": "Why?", "document": "Because.", "max_tokens": 1}, True),
        ({"question": "Why?"}, False),
        ({"question": "Why?", "document_id": "bedrock-streaming", "document": "x"}, False),
        ({"question": "", "document": "x"}, False),
        ({"question": "Why?", "document": "x", "max_tokens": 0}, False),
        ({"question": "Why?", "document_id": "Not An Id"}, False),
        ({"question": "Why?", "document": "x", "temperature": 1}, False),
    ],
)
def test_ask_request_needs_exactly_one_of_document_id_or_document(contract, body, valid):
    validator = schema_at("/components/schemas/AskRequest")
    assert validator.is_valid(body) is valid


def test_every_example_matches_its_schema(contract, impl):
    checked = 0
    for pointer, media in media_objects(contract):
        for name, example in media.get("examples", {}).items():
            where = f"{pointer}/examples/{name}"
            if "serializedValue" in example and "itemSchema" in media:
                events = impl.sse.parse_stream(example["serializedValue"])
                assert events[-1]["event"] in ("end", "error"), where
                # Ids follow each other from 1, or, in a resumed stream, from where it resumed.
                resumed = pointer.startswith("/paths/" + escape("/v1/ask/stream/{request_id}"))
                first = int(events[0]["id"]) if resumed else 1
                assert [e["id"] for e in events] == [str(first + i) for i in range(len(events))]
                for item in events:
                    schema_at(f"{pointer}/itemSchema").validate(item)
                    variant = next(
                        v
                        for v in contract["components"]["schemas"]["StreamEvent"]["oneOf"]
                        if v["properties"]["event"]["const"] == item["event"]
                    )
                    target = variant["properties"]["data"]["contentSchema"]["$ref"][1:]
                    schema_at(target).validate(json.loads(item["data"]))
                checked += 1
            for key in ("value", "dataValue"):
                if key in example and "schema" in media:
                    schema_at(f"{pointer}/schema").validate(example[key])
                    checked += 1
    for name, schema in contract["components"]["schemas"].items():
        for example in schema.get("examples", []):
            schema_at(f"/components/schemas/{name}").validate(example)
            checked += 1
    assert checked >= 15


# --- validate.py: the given parts -----------------------------------------------------------


@pytest.fixture(scope="module")
def checks(impl):
    return impl.load("contract.validate")


PROBLEM_HEADERS = {
    "Content-Type": "application/problem+json",
    "X-Request-Id": REQUEST_ID,
    "Retry-After": "1",
}


def body_of(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def test_validate_response_accepts_a_good_problem_body(checks):
    body = problem(retry_after_seconds=0.2)
    assert checks.validate_response("POST", "/v1/ask", 429, PROBLEM_HEADERS, body_of(body)) == body


def test_validate_response_rejects_a_problem_without_code_naming_path_and_field(checks):
    body = problem()
    del body["code"]
    with pytest.raises(checks.ContractViolation, match=r"POST /v1/ask -> 429.*'code'"):
        checks.validate_response("POST", "/v1/ask", 429, PROBLEM_HEADERS, body_of(body))


def test_validate_response_names_the_json_pointer_of_a_bad_field(checks):
    with pytest.raises(checks.ContractViolation, match=r"POST /v1/ask/stream -> 429.* /code"):
        checks.validate_response(
            "POST", "/v1/ask/stream", 429, PROBLEM_HEADERS, body_of(problem(code="slow_down"))
        )


def test_validate_response_rejects_a_problem_sent_as_plain_json(checks):
    headers = {**PROBLEM_HEADERS, "Content-Type": "application/json"}
    with pytest.raises(checks.ContractViolation, match=r"POST /v1/ask -> 429.*application/json"):
        checks.validate_response("POST", "/v1/ask", 429, headers, body_of(problem()))


def test_validate_response_rejects_an_undeclared_status(checks):
    body = problem("busy", 409)
    with pytest.raises(checks.ContractViolation, match=r"POST /v1/ask -> 409: status 409"):
        checks.validate_response("POST", "/v1/ask", 409, PROBLEM_HEADERS, body_of(body))


def test_validate_response_rejects_a_missing_required_header(checks):
    headers = {"Content-Type": "application/problem+json", "X-Request-Id": REQUEST_ID}
    with pytest.raises(checks.ContractViolation, match=r"GET /v1/documents -> 429.*Retry-After"):
        checks.validate_response("GET", "/v1/documents", 429, headers, body_of(problem()))
    with pytest.raises(checks.ContractViolation, match="X-Request-Id"):
        checks.validate_response("GET", "/healthz", 200, {}, b'{"status":"ok"}')


def test_validate_response_checks_the_request_id_and_the_status_in_the_body(checks):
    other = {**PROBLEM_HEADERS, "X-Request-Id": "req_ffffffffffffffff"}
    with pytest.raises(checks.ContractViolation, match="request_id"):
        checks.validate_response("POST", "/v1/ask", 429, other, body_of(problem()))
    with pytest.raises(checks.ContractViolation, match="status"):
        checks.validate_response("POST", "/v1/ask", 503, PROBLEM_HEADERS, body_of(problem()))


def test_validate_response_rejects_an_operation_the_contract_lacks(checks):
    with pytest.raises(checks.ContractViolation, match="GET /v1/ask is not in the contract"):
        checks.validate_response("GET", "/v1/ask", 200, {}, b"")
    with pytest.raises(checks.ContractViolation, match="no such path"):
        checks.validate_response("GET", "/v2/ask", 200, {}, b"")


def test_validate_response_accepts_an_answer_and_text_bodies(checks):
    answer = {
        "request_id": REQUEST_ID,
        "model": "fake-docqa",
        "answer": "Hello",
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 3, "output_tokens": 1},
        "ttft_ms": 1.5,
        "duration_ms": 2,
    }
    json_headers = {"content-type": "application/json", "x-request-id": REQUEST_ID}
    checks.validate_response("POST", "/v1/ask", 200, json_headers, body_of(answer))
    metrics = [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")]
    metrics.append(("X-Request-Id", REQUEST_ID))
    assert checks.validate_response("GET", "/metrics", 200, metrics, b"up 1\n") == "up 1\n"
    with pytest.raises(checks.ContractViolation, match="usage"):
        bad = {**answer, "usage": {"input_tokens": -1, "output_tokens": 1}}
        checks.validate_response("POST", "/v1/ask", 200, json_headers, body_of(bad))


def test_validate_sse_event_rejects_an_unknown_event_type(checks):
    with pytest.raises(checks.ContractViolation, match="unknown event type 'message'"):
        checks.validate_sse_event("message", json.dumps(DELTA), "2")


def test_validate_sse_event_rejects_a_missing_or_non_numeric_id(checks):
    with pytest.raises(checks.ContractViolation, match="'id' is a required property"):
        checks.validate_sse_event("delta", json.dumps(DELTA), None)
    with pytest.raises(checks.ContractViolation, match="id"):
        checks.validate_sse_event("delta", json.dumps(DELTA), "two")


def test_app_routes_leave_out_head_mounts_and_websockets(checks):
    async def handler(request):
        return PlainTextResponse("ok")

    async def chat(websocket):
        await websocket.close()

    app = Starlette(
        routes=[
            Route("/healthz", handler),
            Route("/v1/items/{item_id:int}", handler, methods=["GET", "DELETE"]),
            WebSocketRoute("/v1/chat", chat),
            Mount("/static", app=PlainTextResponse("static")),
        ]
    )
    assert checks.app_routes(app) == {
        ("GET", "/healthz"),
        ("GET", "/v1/items/{item_id}"),
        ("DELETE", "/v1/items/{item_id}"),
    }
    assert checks.app_websocket_routes(app) == {"/v1/chat"}


# --- lab 02: the routes the contract describes ---------------------------------------------


@lab02_task[1]
def test_contract_routes_lists_every_operation_of_the_contract(checks):
    assert checks.contract_routes() == OPERATIONS


@lab02_task[1]
def test_contract_routes_skip_the_path_level_fields_of_a_path_item(checks):
    crafted = {
        "openapi": "3.2.0",
        "paths": {
            "/things/{thing_id}": {
                "summary": "One thing",
                "description": "Fields of the path, not operations.",
                "parameters": [{"name": "thing_id", "in": "path", "required": True}],
                "servers": [{"url": "http://127.0.0.1:9000"}],
                "get": {"responses": {"200": {"description": "ok"}}},
                "delete": {"responses": {"204": {"description": "gone"}}},
            },
            "/ping": {"post": {"responses": {"200": {"description": "pong"}}}},
        },
    }
    assert checks.contract_routes(crafted) == {
        ("GET", "/things/{thing_id}"),
        ("DELETE", "/things/{thing_id}"),
        ("POST", "/ping"),
    }


@lab02_task[1]
def test_route_drift_finds_undocumented_and_unimplemented_routes(checks):
    async def handler(request):
        return PlainTextResponse("ok")

    async def chat(websocket):
        await websocket.close()

    app = Starlette(
        routes=[
            Route("/healthz", handler),
            Route("/v1/ask", handler, methods=["POST"]),
            Route("/v1/ask/stream", handler, methods=["POST"]),
            Route("/debug/config", handler),
            WebSocketRoute("/v1/chat", chat),
        ]
    )
    assert checks.undocumented_routes(app) == {("GET", "/debug/config")}
    assert checks.unimplemented_routes(app) == {
        ("GET", "/metrics"),
        ("GET", "/openapi.yaml"),
        ("GET", "/docs"),
        ("GET", "/v1/documents"),
        ("GET", "/v1/ask/stream/{request_id}"),
        ("POST", "/v1/chat/tickets"),
        ("GET", "/"),
        ("GET", "/demo/assets/{asset}"),
        ("PUT", "/demo/fake-model"),
    }


def test_app_routes_see_inside_included_routers(checks):
    from fastapi import APIRouter, FastAPI

    inner = APIRouter()
    inner.add_api_route("/page", lambda: "ok", methods=["GET"])
    outer = APIRouter()
    outer.add_api_route("/switch", lambda: "ok", methods=["PUT"])
    outer.include_router(inner, prefix="/inner")
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(outer, prefix="/demo")
    assert checks.app_routes(app) == {("PUT", "/demo/switch"), ("GET", "/demo/inner/page")}


# --- lab 02: one event's data against its contentSchema -------------------------------------


@lab02_task[2]
@pytest.mark.parametrize(
    ("name", "data", "id"),
    [("start", START, "1"), ("delta", DELTA, "2"), ("end", END, "3"), ("error", ERROR, "3")],
)
def test_validate_sse_event_accepts_every_good_event_and_returns_its_data(checks, name, data, id):
    assert checks.validate_sse_event(name, json.dumps(data), id) == data


@lab02_task[2]
def test_validate_sse_event_rejects_data_that_is_not_json(checks):
    with pytest.raises(checks.ContractViolation, match=r"event id 2 \(delta\).*not JSON"):
        checks.validate_sse_event("delta", "{index: 0, text: 'a'}", "2")


@lab02_task[2]
@pytest.mark.parametrize(
    ("name", "data", "pointer"),
    [
        ("delta", {"index": 0}, "'text' is a required property"),
        ("delta", {"index": -1, "text": "a"}, "/index"),
        ("start", {**START, "limits": {"max_tokens": 256}}, "/limits"),
        ("end", {**END, "stop_reason": "done"}, "/stop_reason"),
        ("end", {key: value for key, value in END.items() if key != "usage"}, "'usage'"),
        ("error", {**ERROR, "code": "oops"}, "/code"),
        ("error", {**ERROR, "stack": "Traceback"}, "'stack'"),
    ],
)
def test_validate_sse_event_rejects_data_that_breaks_its_content_schema(
    checks, name, data, pointer
):
    with pytest.raises(checks.ContractViolation, match=re.escape(pointer)):
        checks.validate_sse_event(name, json.dumps(data), "2")


@lab02_task[2]
def test_check_event_data_validates_against_the_variant_it_is_given(checks):
    variants = checks.stream_event_variants()
    assert checks.check_event_data(variants["delta"], json.dumps(DELTA)) == DELTA
    with pytest.raises(checks.ContractViolation, match="request_id"):
        checks.check_event_data(variants["start"], json.dumps(DELTA))


# --- lab 02: the rules of a whole stream ----------------------------------------------------


@lab02_task[3]
@pytest.mark.parametrize("terminal", ["end", "error"])
def test_validate_stream_accepts_a_complete_stream(checks, terminal):
    decoded = checks.validate_stream(good_stream(terminal))
    assert decoded[0] == START and decoded[1] == DELTA
    assert decoded[-1] == (END if terminal == "end" else ERROR)


@lab02_task[3]
def test_validate_stream_accepts_httpx_sse_events(checks):
    events = [httpx_sse.ServerSentEvent(**fields) for fields in good_stream()]
    assert len(checks.validate_stream(events)) == 4


@lab02_task[3]
@pytest.mark.parametrize("ids", [[1, 2, 2, 3], [1, 3, 2, 4], [2, 3, 4, 5], [0, 1, 2, 3]])
def test_validate_stream_rejects_ids_that_do_not_count_up_from_1(checks, ids):
    events = good_stream()
    for item, new_id in zip(events, ids, strict=True):
        item["id"] = str(new_id)
    with pytest.raises(checks.ContractViolation, match="id"):
        checks.validate_stream(events)


@lab02_task[3]
def test_validate_stream_rejects_an_event_without_id(checks):
    events = good_stream()
    events[2]["id"] = None
    with pytest.raises(checks.ContractViolation, match="id"):
        checks.validate_stream(events)


@lab02_task[3]
def test_validate_stream_rejects_a_stream_without_terminal_event(checks):
    with pytest.raises(checks.ContractViolation, match="terminal"):
        checks.validate_stream(good_stream()[:-1])


@lab02_task[3]
def test_validate_stream_rejects_two_terminal_events(checks):
    events = [*good_stream("error"), event("end", END, 5)]
    with pytest.raises(checks.ContractViolation, match="terminal"):
        checks.validate_stream(events)


@lab02_task[3]
def test_validate_stream_rejects_an_event_after_the_terminal_one(checks):
    events = [*good_stream(), event("delta", {"index": 2, "text": "!"}, 5)]
    with pytest.raises(checks.ContractViolation, match="terminal"):
        checks.validate_stream(events)


@lab02_task[3]
def test_stream_order_messages_name_events_by_their_id_as_single_events_do(checks):
    # One way to number events: the SSE id a client sees, never a position in a list.
    events = [*good_stream(), event("delta", {"index": 2, "text": "!"}, 9)]
    with pytest.raises(checks.ContractViolation, match=r"event id 4 \(end\) is terminal"):
        checks.validate_stream(events)
    events = good_stream()
    events[2]["id"] = "2"
    with pytest.raises(checks.ContractViolation, match=r"event id 2 \(delta\)"):
        checks.validate_stream(events)
    events = good_stream()
    events[2]["id"] = None
    with pytest.raises(checks.ContractViolation, match=r"after event id 2 \(delta\)"):
        checks.validate_stream(events)


@lab02_task[3]
def test_validate_stream_rejects_a_stream_that_does_not_begin_with_start(checks):
    with pytest.raises(checks.ContractViolation, match="start"):
        checks.validate_stream([event("delta", DELTA, 1), event("end", END, 2)])
    with pytest.raises(checks.ContractViolation, match="start"):
        checks.validate_stream([])


@lab02_task[3]
def test_validate_response_checks_a_stream_body_event_by_event(checks):
    headers = {"Content-Type": "text/event-stream; charset=utf-8", "X-Request-Id": REQUEST_ID}
    wire = "".join(
        f": ping\nid: {item['id']}\nevent: {item['event']}\ndata: {item['data']}\n\n"
        for item in good_stream()
    )
    events = checks.validate_response("POST", "/v1/ask/stream", 200, headers, wire.encode())
    assert [item["event"] for item in events] == ["start", "delta", "delta", "end"]
    cut = wire.rsplit(": ping", 1)[0]  # the stream lost its terminal event
    with pytest.raises(checks.ContractViolation, match=r"POST /v1/ask/stream -> 200.*terminal"):
        checks.validate_response("POST", "/v1/ask/stream", 200, headers, cut.encode())


# --- a resumed stream: the rest of a stream, from any id on --------------------------------


def test_the_resumed_stream_is_described_event_by_event_with_its_refusals(contract):
    operation = contract["paths"]["/v1/ask/stream/{request_id}"]["get"]
    media = operation["responses"]["200"]["content"]
    assert media["text/event-stream"]["itemSchema"] == {"$ref": "#/components/schemas/StreamEvent"}
    assert {"400", "401", "404", "410", "429"} <= set(operation["responses"])
    names = {parameter["name"]: parameter["in"] for parameter in operation["parameters"]}
    assert names == {"request_id": "path", "Last-Event-ID": "header", "after": "query"}


def test_validate_response_accepts_the_rest_of_a_stream_and_rejects_a_gap(checks):
    headers = {"Content-Type": "text/event-stream; charset=utf-8", "X-Request-Id": REQUEST_ID}
    rest = good_stream()[2:]  # resumed after event 2: a delta, then the end
    wire = "".join(f"id: {e['id']}\nevent: {e['event']}\ndata: {e['data']}\n\n" for e in rest)
    path = f"/v1/ask/stream/{REQUEST_ID}"
    events = checks.validate_response("GET", path, 200, headers, wire.encode())
    assert [item["event"] for item in events] == ["delta", "end"]
    assert checks.validate_response("GET", path, 200, headers, b"") == []  # had it all
    gap = "".join(
        f"id: {e['id']}\nevent: {e['event']}\ndata: {e['data']}\n\n" for e in good_stream()[1::2]
    )
    with pytest.raises(checks.ContractViolation, match="does not follow"):
        checks.validate_response("GET", path, 200, headers, gap.encode())
    with pytest.raises(checks.ContractViolation, match="terminal"):
        checks.validate_resumed_stream(rest[:-1])
    with pytest.raises(checks.ContractViolation, match="follow id 1"):
        checks.validate_resumed_stream(rest, after=1)


# --- the documentation page -----------------------------------------------------------------


def test_docs_page_documents_every_operation_and_schema_offline(impl, contract):
    page = impl.load("contract.docs_page").render_docs_html(contract)
    assert page.startswith("<!DOCTYPE html>")
    for _method, path, operation in operations(contract):
        assert f"<code>{path}</code>" in page
        assert operation["operationId"] in page
    for name in contract["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    assert "bearerAuth" in page and "itemSchema" in page
    # Self-contained: no script, no external style sheet, image or font.
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.IGNORECASE) is None
    assert "@import" not in page and "url(" not in page


def test_docs_page_escapes_what_it_takes_from_the_contract(impl, contract):
    hostile = json.loads(json.dumps(contract))
    hostile["info"]["description"] = 'Ends here </p><script>alert("x")</script>'
    hostile["paths"]["/v1/ask"]["post"]["summary"] = "<img src=x onerror=alert(1)>"
    hostile["components"]["schemas"]["Usage"]["properties"]["input_tokens"]["description"] = (
        "`<b>bold</b>` & more"
    )
    page = impl.load("contract.docs_page").render_docs_html(hostile)
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<code>&lt;b&gt;bold&lt;/b&gt;</code> &amp; more" in page
