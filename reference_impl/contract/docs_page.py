"""The documentation page of the API, rendered from the contract (served at GET /docs).

One self-contained HTML page: the style sheet is inline and there is no script, font or image
to fetch, so the page works offline and on a locked-down network, where a Swagger UI loaded
from a CDN shows a blank page. Every text taken from the contract goes through `html.escape`:
the contract is data, and a description must never become markup.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from html import escape
from typing import Any

from .schemas import HTTP_METHODS, UnresolvableRef, resolve

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; color: #1d232a; max-width: 62rem;
       margin: 0 auto; padding: 1rem 1.5rem 4rem; }
h1 { margin-bottom: 0; } h2 { border-bottom: 2px solid #d8dee4; margin-top: 2.5rem; }
h3 { margin: 2rem 0 .5rem; } h4 { margin: 1.2rem 0 .3rem; }
code, pre { font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, monospace; }
code { background: #f0f3f6; padding: 0 .25em; border-radius: 3px; }
pre { background: #f6f8fa; padding: .75rem; overflow-x: auto; border-radius: 6px; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0; }
th, td { border: 1px solid #d8dee4; padding: .3rem .5rem; text-align: left;
         vertical-align: top; }
th { background: #f6f8fa; }
.muted { color: #59636e; }
.method { display: inline-block; min-width: 4.2em; text-align: center; color: #fff;
          border-radius: 4px; padding: 0 .4em; font-weight: 600; }
.get { background: #1f6feb; } .post { background: #1a7f37; } .put { background: #9a6700; }
.delete { background: #cf222e; } .patch { background: #8250df; }
.head, .options, .trace, .query { background: #59636e; }
.operation { border: 1px solid #d8dee4; border-radius: 8px; padding: 0 1rem 1rem;
             margin: 1rem 0; }
.lock { font-size: 13px; color: #9a6700; }
"""


def _text(value: Any) -> str:
    return escape(str(value), quote=True)


def _inline(text: str) -> str:
    """Escape text, then show `code` spans and **bold**, the only inline markup we use."""
    html = _text(text)
    html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", html)


def _markdown(text: str | None) -> str:
    """A small CommonMark subset: paragraphs, `- ` lists, inline code. Everything escaped."""
    if not text:
        return ""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        paragraph: list[str] = []
        items: list[str] = []
        for line in (line.strip() for line in block.splitlines()):
            if line.startswith("- "):
                items.append(line[2:])
            elif items:
                items[-1] += " " + line  # a list item continued on the next line
            else:
                paragraph.append(line)
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in items) + "</ul>")
    return "\n".join(out)


def _method_badge(method: str) -> str:
    return f"<span class='method {_text(method)}'>{_text(method.upper())}</span>"


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _anchor(kind: str, name: str) -> str:
    return f"{kind}-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)


def _deref(contract: Mapping[str, Any], node: Any) -> Any:
    """Follow local `$ref`s between OpenAPI objects (responses, headers, request bodies); a
    `$ref` that cannot be followed is shown as it is."""
    try:
        return resolve(node, contract)
    except UnresolvableRef:
        return node


def _type_label(schema: Any) -> str:
    """A short HTML label for a schema: a link for a $ref, else its type and shape."""
    if schema is True or schema == {}:
        return "any"
    if not isinstance(schema, Mapping):
        return _text(schema)
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f'<a href="#{_anchor("schema", name)}">{_text(name)}</a>'
    if "const" in schema:
        return f"<code>{_text(json.dumps(schema['const']))}</code>"
    kind = schema.get("type")
    if isinstance(kind, list):
        label = " | ".join(_text(k) for k in kind)
    elif kind == "array":
        label = f"array of {_type_label(schema.get('items', {}))}"
    elif kind:
        label = _text(kind)
    elif "oneOf" in schema or "anyOf" in schema:
        members = schema.get("oneOf") or schema.get("anyOf")
        label = " or ".join(_type_label(member) for member in members)
    else:
        label = "any"
    return label


CONSTRAINTS = (
    "format",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "contentMediaType",
)


def _constraints(schema: Any) -> str:
    if not isinstance(schema, Mapping):
        return ""
    parts = [
        f"{name}: <code>{_text(schema[name])}</code>" for name in CONSTRAINTS if name in schema
    ]
    if "enum" in schema:
        values = ", ".join(f"<code>{_text(json.dumps(value))}</code>" for value in schema["enum"])
        parts.append(f"one of {values}")
    if "contentSchema" in schema:
        parts.append(f"contentSchema: {_type_label(schema['contentSchema'])}")
    return "; ".join(parts)


def _fields_table(schema: Mapping[str, Any]) -> str:
    properties = schema.get("properties") or {}
    if not properties:
        return ""
    required = set(schema.get("required", []))
    rows = "".join(
        "<tr>"
        f"<td><code>{_text(name)}</code></td>"
        f"<td>{_type_label(prop)}</td>"
        f"<td>{'yes' if name in required else 'no'}</td>"
        f"<td>{_constraints(prop)}</td>"
        f"<td>{_markdown(prop.get('description')) if isinstance(prop, Mapping) else ''}</td>"
        "</tr>"
        for name, prop in properties.items()
    )
    return (
        "<table><tr><th>Field</th><th>Type</th><th>Required</th><th>Constraints</th>"
        f"<th>Description</th></tr>{rows}</table>"
    )


def _variant_fields(variant: Mapping[str, Any]) -> str:
    """What a oneOf/anyOf variant adds to the fields of its parent, one line per field."""
    items = []
    for name, prop in (variant.get("properties") or {}).items():
        label = _type_label(prop)
        details = [part for part in (label if label != "any" else "", _constraints(prop)) if part]
        items.append(f"<li><code>{_text(name)}</code>: {'; '.join(details)}</li>")
    return f"<ul>{''.join(items)}</ul>" if items else ""


def _pretty(value: Any) -> str:
    return f"<pre>{_text(json.dumps(value, indent=2, ensure_ascii=False))}</pre>"


def _schema_section(name: str, schema: Mapping[str, Any]) -> str:
    parts = [f'<h3 id="{_anchor("schema", name)}">{_text(name)}</h3>']
    parts.append(_markdown(schema.get("description")))
    summary = [f"Type: {_type_label({k: v for k, v in schema.items() if k != 'oneOf'})}"]
    constraints = _constraints(schema)
    if constraints:
        summary.append(constraints)
    if schema.get("additionalProperties") is False:
        summary.append("no other fields allowed")
    parts.append(f"<p>{'; '.join(summary)}</p>")
    parts.append(_fields_table(schema))
    for keyword in ("oneOf", "anyOf", "allOf"):
        if keyword not in schema:
            continue
        meaning = {"oneOf": "exactly one of", "anyOf": "at least one of", "allOf": "all of"}
        parts.append(f"<h4><code>{keyword}</code>: {meaning[keyword]} these</h4>")
        for index, variant in enumerate(schema[keyword], start=1):
            if not isinstance(variant, Mapping):
                continue
            title = variant.get("title") or f"variant {index}"
            parts.append(f"<p><strong>{_text(title)}</strong></p>")
            parts.append(_markdown(variant.get("description")))
            if "required" in variant and not variant.get("properties"):
                fields = ", ".join(f"<code>{_text(f)}</code>" for f in variant["required"])
                parts.append(f"<p>requires {fields}</p>")
            parts.append(_variant_fields(variant))
            if "$ref" in variant:
                parts.append(f"<p>{_type_label(variant)}</p>")
    if "examples" in schema:
        parts.append("<h4>Examples</h4>")
        parts.extend(_pretty(example) for example in schema["examples"])
    parts.append(f"<details><summary>JSON Schema</summary>{_pretty(schema)}</details>")
    return "\n".join(part for part in parts if part)


def _examples(media: Mapping[str, Any]) -> str:
    parts = []
    if "example" in media:
        parts.append(_pretty(media["example"]))
    for name, example in (media.get("examples") or {}).items():
        if not isinstance(example, Mapping):
            continue
        label = example.get("summary") or name
        parts.append(f"<p class='muted'>Example: {_text(label)}</p>")
        if "serializedValue" in example:
            parts.append(f"<pre>{_text(example['serializedValue'])}</pre>")
        for key in ("dataValue", "value"):
            if key in example:
                value = example[key]
                parts.append(
                    _pretty(value) if not isinstance(value, str) else f"<pre>{_text(value)}</pre>"
                )
    return "\n".join(parts)


def _content(contract: Mapping[str, Any], content: Mapping[str, Any]) -> str:
    parts = []
    for media_type, media in content.items():
        line = f"<p><code>{_text(media_type)}</code>"
        if "schema" in media:
            line += f" schema: {_type_label(media['schema'])}"
        if "itemSchema" in media:
            line += f" itemSchema (each item of the stream): {_type_label(media['itemSchema'])}"
        parts.append(line + "</p>")
        parts.append(_examples(media))
    return "\n".join(parts)


def _security_label(contract: Mapping[str, Any], operation: Mapping[str, Any]) -> str:
    requirements = operation.get("security", contract.get("security", []))
    names = sorted({name for requirement in requirements for name in requirement})
    if not names:
        return "<p class='lock'>No authentication.</p>"
    links = ", ".join(f'<a href="#{_anchor("auth", n)}">{_text(n)}</a>' for n in names)
    return f"<p class='lock'>Authentication: {links}</p>"


def _parameters(contract: Mapping[str, Any], parameters: list[Any]) -> str:
    if not parameters:
        return ""
    rows = []
    for parameter in parameters:
        parameter = _deref(contract, parameter)
        rows.append(
            "<tr>"
            f"<td><code>{_text(parameter.get('name', ''))}</code></td>"
            f"<td>{_text(parameter.get('in', ''))}</td>"
            f"<td>{'yes' if parameter.get('required') else 'no'}</td>"
            f"<td>{_type_label(parameter.get('schema', {}))}</td>"
            f"<td>{_markdown(parameter.get('description'))}</td>"
            "</tr>"
        )
    return (
        "<h4>Parameters</h4><table><tr><th>Name</th><th>In</th><th>Required</th><th>Type</th>"
        f"<th>Description</th></tr>{''.join(rows)}</table>"
    )


def _responses(contract: Mapping[str, Any], responses: Mapping[str, Any]) -> str:
    parts = ["<h4>Responses</h4>"]
    for status, response in responses.items():
        name = _ref_name(response["$ref"]) if "$ref" in response else None
        response = _deref(contract, response)
        title = f"<code>{_text(status)}</code>" + (f" {_text(name)}" if name else "")
        parts.append(f"<h5>{title}</h5>")
        parts.append(_markdown(response.get("description")))
        headers = response.get("headers") or {}
        if headers:
            rows = []
            for header_name, header in headers.items():
                header = _deref(contract, header)
                rows.append(
                    f"<tr><td><code>{_text(header_name)}</code></td>"
                    f"<td>{'yes' if header.get('required') else 'no'}</td>"
                    f"<td>{_type_label(header.get('schema', {}))} "
                    f"{_constraints(_deref(contract, header.get('schema', {})))}</td>"
                    f"<td>{_markdown(header.get('description'))}</td></tr>"
                )
            parts.append(
                "<table><tr><th>Header</th><th>Required</th><th>Type</th><th>Description</th></tr>"
                + "".join(rows)
                + "</table>"
            )
        parts.append(_content(contract, response.get("content") or {}))
    return "\n".join(part for part in parts if part)


def _operation_section(
    contract: Mapping[str, Any], method: str, path: str, operation: Mapping[str, Any]
) -> str:
    operation_id = operation.get("operationId") or f"{method}-{path}"
    parts = [
        f'<section class="operation" id="{_anchor("op", operation_id)}">',
        f"<h3>{_method_badge(method)} <code>{_text(path)}</code></h3>",
        f"<p><strong>{_text(operation.get('summary', ''))}</strong> "
        f"<span class='muted'>operationId <code>{_text(operation_id)}</code></span></p>",
        _security_label(contract, operation),
        _markdown(operation.get("description")),
        _parameters(contract, operation.get("parameters") or []),
    ]
    body = operation.get("requestBody")
    if body:
        name = _ref_name(body["$ref"]) if "$ref" in body else None
        body = _deref(contract, body)
        required = "required" if body.get("required") else "optional"
        parts.append(f"<h4>Request body ({required}){' ' + _text(name) if name else ''}</h4>")
        parts.append(_markdown(body.get("description")))
        parts.append(_content(contract, body.get("content") or {}))
    parts.append(_responses(contract, operation.get("responses") or {}))
    parts.append("</section>")
    return "\n".join(part for part in parts if part)


def _operations(contract: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    found = []
    for path, path_item in (contract.get("paths") or {}).items():
        path_item = _deref(contract, path_item)
        for method in HTTP_METHODS:
            if method in path_item:
                found.append((method, path, path_item[method]))
    return found


def render_docs_html(contract: Mapping[str, Any]) -> str:
    """The whole documentation page for `contract` (the dict of an OpenAPI document)."""
    info = contract.get("info") or {}
    components = contract.get("components") or {}
    operations = _operations(contract)
    title = f"{info.get('title', 'API')} {info.get('version', '')}".strip()

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_text(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{_text(info.get('title', 'API'))}</h1>",
        f"<p class='muted'>Version {_text(info.get('version', ''))} &middot; "
        f"OpenAPI {_text(contract.get('openapi', ''))} &middot; "
        "the contract itself is at <a href='openapi.yaml'>openapi.yaml</a></p>",
    ]
    if info.get("summary"):
        parts.append(f"<p><strong>{_text(info['summary'])}</strong></p>")
    parts.append(_markdown(info.get("description")))

    servers = contract.get("servers") or []
    if servers:
        items = "".join(
            f"<li><code>{_text(server.get('url', ''))}</code> "
            f"{_inline(server.get('description', ''))}</li>"
            for server in servers
        )
        parts.append(f"<h2>Servers</h2><ul>{items}</ul>")

    parts.append("<h2>Operations</h2><ul>")
    for method, path, operation in operations:
        anchor = _anchor("op", operation.get("operationId") or f"{method}-{path}")
        parts.append(
            f"<li><a href='#{anchor}'>{_method_badge(method)} "
            f"<code>{_text(path)}</code></a> {_text(operation.get('summary', ''))}</li>"
        )
    parts.append("</ul>")

    schemes = components.get("securitySchemes") or {}
    if schemes:
        parts.append("<h2>Authentication</h2>")
        for name, scheme in schemes.items():
            scheme = _deref(contract, scheme)
            kind = scheme.get("type", "")
            detail = f"{kind} {scheme.get('scheme', '')}".strip()
            parts.append(
                f"<h3 id='{_anchor('auth', name)}'>{_text(name)}</h3>"
                f"<p>Type: <code>{_text(detail)}</code></p>{_markdown(scheme.get('description'))}"
            )

    tags = {tag.get("name"): tag for tag in contract.get("tags") or []}
    parts.append("<h2>Endpoints</h2>")
    shown: set[str] = set()
    for tag_name in [*tags, None]:
        group = [
            op
            for op in operations
            if (op[2].get("tags") or [None])[0] == tag_name
            or (tag_name is None and (op[2].get("tags") or [None])[0] not in tags)
        ]
        group = [op for op in group if f"{op[0]} {op[1]}" not in shown]
        if not group:
            continue
        if tag_name is not None:
            tag = tags[tag_name]
            parts.append(f"<h3>{_text(tag.get('summary') or tag_name)}</h3>")
            parts.append(_markdown(tag.get("description")))
        for method, path, operation in group:
            shown.add(f"{method} {path}")
            parts.append(_operation_section(contract, method, path, operation))

    schemas = components.get("schemas") or {}
    if schemas:
        parts.append("<h2>Schemas</h2>")
        parts.extend(_schema_section(name, schema) for name, schema in schemas.items())
    parts.append("</body></html>")
    return "\n".join(part for part in parts if part) + "\n"
