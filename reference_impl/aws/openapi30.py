"""The contract, converted down to OpenAPI 3.0 for API Gateway, with its `x-amazon-*` parts.

API Gateway imports REST APIs from OpenAPI 2.0 or 3.0 [apigw-openapi-import]; our contract is
3.2 [oas-3-2]. Converting it down is a lesson in what the newer versions added:
- `itemSchema` (3.2: the schema of one server-sent event) has no 3.0 form: the stream becomes a
  plain `text/event-stream` string, and its events are described in prose only;
- JSON Schema 2020-12 keywords (3.1+) become their 3.0 spellings: `type: [x, "null"]` ->
  `nullable: true`, `const` -> a one-value `enum`, `examples: [...]` -> `example`, a numeric
  `exclusiveMinimum` -> `minimum` + `exclusiveMinimum: true`; `contentSchema` and friends go;
- 3.1/3.2-only fields go (`info.summary`, `license.identifier`, tag `summary`, `$ref`
  siblings); an example's `serializedValue` (3.2) becomes its `value`.
Then the API Gateway extensions are added: one request validator for bodies and parameters,
used by every method [apigw-request-validation], and a Lambda proxy integration per operation.
"""

from __future__ import annotations

import copy
from typing import Any

from ..contract.schemas import HTTP_METHODS, load_contract

DROPPED_SCHEMA_KEYS = {
    "contentMediaType",
    "contentSchema",
    "contentEncoding",
    "$schema",
    "$id",
    "$defs",
    "$comment",
    "$anchor",
    "unevaluatedProperties",
    "unevaluatedItems",
    "prefixItems",
    "patternProperties",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "if",
    "then",
    "else",
}
SUBSCHEMA_LISTS = ("oneOf", "anyOf", "allOf")
STREAM_SCHEMA = {
    "type": "string",
    "description": (
        "A stream of server-sent events (start, delta..., end or error). OpenAPI 3.0 cannot "
        "describe the events one by one; the 3.2 contract does, with itemSchema StreamEvent."
    ),
}


def schema_30(schema: Any) -> Any:
    """One JSON Schema 2020-12 schema (OpenAPI 3.1+) as an OpenAPI 3.0 schema object."""
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return {"$ref": schema["$ref"]}  # 3.0 ignores (and validators refuse) siblings
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in DROPPED_SCHEMA_KEYS:
            continue
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if len(types) == 1:
                out["type"] = types[0]
            if "null" in value:
                out["nullable"] = True
        elif key == "const":
            out["enum"] = [value]
        elif key == "examples" and isinstance(value, list):
            if value:
                out["example"] = value[0]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "properties":
            out[key] = {name: schema_30(sub) for name, sub in value.items()}
        elif key in SUBSCHEMA_LISTS:
            out[key] = [schema_30(sub) for sub in value]
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = schema_30(value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def example_30(example: Any) -> Any:
    if not isinstance(example, dict) or "$ref" in example:
        return example
    out = {k: v for k, v in example.items() if k not in ("serializedValue", "dataValue")}
    if "serializedValue" in example and "value" not in out:
        out["value"] = example["serializedValue"]
    if "dataValue" in example and "value" not in out:
        out["value"] = example["dataValue"]
    return out


def media_30(media: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "itemSchema" in media:
        out["schema"] = dict(STREAM_SCHEMA)
    elif "schema" in media:
        out["schema"] = schema_30(media["schema"])
    if "examples" in media:
        out["examples"] = {name: example_30(ex) for name, ex in media["examples"].items()}
    if "example" in media:
        out["example"] = media["example"]
    return out


def content_30(content: dict[str, Any]) -> dict[str, Any]:
    return {media_type: media_30(media) for media_type, media in content.items()}


def header_30(header: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in header:
        return {"$ref": header["$ref"]}
    out = {k: copy.deepcopy(v) for k, v in header.items() if k not in ("schema", "content")}
    if "schema" in header:
        out["schema"] = schema_30(header["schema"])
    return out


def response_30(response: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in response:
        return {"$ref": response["$ref"]}
    out = {k: copy.deepcopy(v) for k, v in response.items() if k not in ("headers", "content")}
    if "headers" in response:
        out["headers"] = {name: header_30(h) for name, h in response["headers"].items()}
    if "content" in response:
        out["content"] = content_30(response["content"])
    return out


def request_body_30(body: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in body:
        return {"$ref": body["$ref"]}
    out = {k: copy.deepcopy(v) for k, v in body.items() if k != "content"}
    out["content"] = content_30(body["content"])
    return out


# OpenAPI 3.0 has every 3.2 operation but `query`.
METHODS_30 = tuple(method for method in HTTP_METHODS if method != "query")


def operation_30(operation: dict[str, Any]) -> dict[str, Any]:
    out = {
        k: copy.deepcopy(v)
        for k, v in operation.items()
        if k not in ("requestBody", "responses", "parameters")
    }
    if "requestBody" in operation:
        out["requestBody"] = request_body_30(operation["requestBody"])
    if "parameters" in operation:
        out["parameters"] = [header_30(p) for p in operation["parameters"]]
    out["responses"] = {status: response_30(r) for status, r in operation["responses"].items()}
    return out


def to_openapi_30(contract: dict[str, Any]) -> dict[str, Any]:
    """The contract as an OpenAPI 3.0.1 document (no AWS extensions yet)."""
    info = {k: copy.deepcopy(v) for k, v in contract["info"].items() if k != "summary"}
    if "license" in info:
        info["license"] = {k: v for k, v in info["license"].items() if k != "identifier"}
    doc: dict[str, Any] = {"openapi": "3.0.1", "info": info}
    if "tags" in contract:
        doc["tags"] = [
            {k: v for k, v in tag.items() if k in ("name", "description", "externalDocs")}
            for tag in contract["tags"]
        ]
    if "security" in contract:
        doc["security"] = copy.deepcopy(contract["security"])
    doc["paths"] = {
        path: {
            method: operation_30(operation)
            for method, operation in item.items()
            if method in METHODS_30
        }
        for path, item in contract["paths"].items()
    }
    source = contract.get("components", {})
    components: dict[str, Any] = {}
    if "schemas" in source:
        components["schemas"] = {n: schema_30(s) for n, s in source["schemas"].items()}
    if "responses" in source:
        components["responses"] = {n: response_30(r) for n, r in source["responses"].items()}
    if "requestBodies" in source:
        components["requestBodies"] = {
            n: request_body_30(b) for n, b in source["requestBodies"].items()
        }
    if "headers" in source:
        components["headers"] = {n: header_30(h) for n, h in source["headers"].items()}
    if "securitySchemes" in source:
        components["securitySchemes"] = copy.deepcopy(source["securitySchemes"])
    doc["components"] = components
    return doc


def lambda_invoke_uri(region: str, lambda_arn: str) -> str:
    """The integration URI of a Lambda proxy integration (buffered responses)."""
    return f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{lambda_arn}/invocations"


def lambda_streaming_uri(region: str, lambda_arn: str) -> str:
    """The integration URI with which API Gateway streams a Lambda's response: it calls
    InvokeWithResponseStream [apigw-rest-streaming-lambda]."""
    return (
        f"arn:aws:apigateway:{region}:lambda:path/2021-11-15/functions/{lambda_arn}"
        "/response-streaming-invocations"
    )


def for_api_gateway(name: str, region: str, lambda_arn: str) -> dict[str, Any]:
    """The contract as API Gateway imports it: OpenAPI 3.0.1 with the x-amazon extensions."""
    doc = to_openapi_30(load_contract())
    doc["info"]["title"] = name  # the REST API's name, which `destroy` finds it by
    # One validator for bodies and parameters, the default of every method: a body that breaks
    # the schema is refused with 400 BAD_REQUEST_BODY before the Lambda runs
    # [apigw-request-validation].
    doc["x-amazon-apigateway-request-validators"] = {
        "all": {"validateRequestBody": True, "validateRequestParameters": True}
    }
    doc["x-amazon-apigateway-request-validator"] = "all"
    for item in doc["paths"].values():
        for operation in item.values():
            operation["x-amazon-apigateway-integration"] = {
                "type": "aws_proxy",
                "httpMethod": "POST",  # a Lambda is always invoked with POST
                "uri": lambda_invoke_uri(region, lambda_arn),
                "passthroughBehavior": "when_no_match",
            }
    return doc
