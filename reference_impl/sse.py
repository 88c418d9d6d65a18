"""The SSE wire format: the one place where events become bytes.

A server-sent event stream (WHATWG HTML, "Server-sent events") is UTF-8 text made of fields,
one per line, and a blank line ends each event:

    id: 7
    event: delta
    data: {"index": 6, "text": "token"}
    <blank line>

Three rules make an encoder safe, and each is a lab task:

1. A `data` value with line breaks becomes several `data:` lines. The browser joins them back
   with "\\n". Writing the value raw would end the event early or start a bogus field.
2. `event` and `id` are one line each. A CR or LF inside them would let whoever controls the
   value inject fields or whole events (a request id echoed from a header, say), so they are
   refused, not cleaned.
3. A line starting with ":" is a comment. Clients ignore it, proxies see traffic: that is the
   keep-alive that stops an idle proxy from cutting a slow stream. It needs no blank line.

Reading a stream back is a client's job: `parse_stream` hands it to httpx-sse.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from json.encoder import encode_basestring_ascii
from typing import Any

# The standard treats CRLF, a lone CR and a lone LF all as line ends.
LINE_BREAK = re.compile(r"\r\n|\r|\n")

CONTENT_TYPE = "text/event-stream"


class SSEFieldError(ValueError):
    """A field value that would break the event framing if it were written as it is."""


def data_lines(data: str) -> list[str]:
    """Split a data value into the `data:` lines that carry it, one per line of the value.

    Every line becomes `"data: " + line`, with the space even when the line is empty: "a\n\nb\n"
    gives ["data: a", "data: ", "data: b", "data: "] (a final line break is a last, empty line).
    """
    # BEGIN SOLUTION lab01: split multi-line data into one data line per line
    return [f"data: {line}" for line in LINE_BREAK.split(data)]
    # END SOLUTION


def single_line_field(name: str, value: str) -> str:
    """Return `name: value`, refusing values that would inject lines into the stream."""
    # BEGIN SOLUTION lab01: refuse CR, LF (and NUL in an id) in single-line fields
    if "\r" in value or "\n" in value:
        raise SSEFieldError(f"SSE field {name!r} must be a single line, got {value!r}")
    if name == "id" and "\0" in value:
        # The standard says a client ignores an id with NUL, which would break resumption.
        raise SSEFieldError(f"SSE id must not contain NUL, got {value!r}")
    return f"{name}: {value}"
    # END SOLUTION


def encode_event(
    data: str | None = None,
    *,
    event: str | None = None,
    id: str | int | None = None,
    retry_ms: int | None = None,
) -> bytes:
    """Encode one event. Fields appear in a fixed order: id, event, retry, data."""
    lines: list[str] = []
    if id is not None:
        lines.append(single_line_field("id", str(id)))
    if event is not None:
        lines.append(single_line_field("event", event))
    if retry_ms is not None:
        if isinstance(retry_ms, bool) or not isinstance(retry_ms, int) or retry_ms < 0:
            raise SSEFieldError(
                f"retry must be a non-negative whole number of ms, got {retry_ms!r}"
            )
        lines.append(f"retry: {retry_ms}")
    if data is not None:
        lines.extend(data_lines(data))
    if not lines:
        raise SSEFieldError("an event needs at least one field")
    return ("\n".join(lines) + "\n\n").encode("utf-8")


# One encoder object: json.dumps with custom separators builds a new encoder on every call.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


@lru_cache(maxsize=256)
def _event_line(event: str) -> str:
    # Event names come from a small fixed set; check each once (a refused name is not cached).
    return single_line_field("event", event) + "\n"


def encode_json_event(event: str, payload: Any, id: int | str | None = None) -> bytes:
    """Encode `payload` as compact JSON in one event, the hot path of every stream.

    JSON text never holds a raw line break (json escapes them as \\n), so the payload is one
    `data:` line and needs no splitting; a whole-number id needs no checking either.
    """
    if id is None:
        id_line = ""
    elif isinstance(id, int):
        id_line = f"id: {id}\n"
    else:
        id_line = single_line_field("id", id) + "\n"
    return f"{id_line}{_event_line(event)}data: {_compact_json(payload)}\n\n".encode()


def encode_delta_event(index: int, text: str, id: int) -> bytes:
    """The `delta` event, byte for byte what `encode_json_event("delta", {"index": index,
    "text": text}, id)` makes.

    It is written out by hand because it is sent once per token: a general JSON encoder builds
    its machinery on every call, which cost more than the rest of a token's way through the
    gateway. The text is escaped by the same function json uses (`ensure_ascii`, the default).
    """
    data = f'{{"index":{index},"text":{encode_basestring_ascii(text)}}}'
    return f"id: {id}\nevent: delta\ndata: {data}\n\n".encode()


def encode_comment(text: str = "") -> bytes:
    """A comment: ignored by clients, but bytes on the wire that keep proxies from idling out.

    No blank line follows it. The standard says a blank line with no data dispatches nothing,
    but some clients (httpx-sse 0.4, for one) emit an empty "message" event for a blank line
    once an id has been seen. A comment line on its own is complete, so we send just that.
    """
    # BEGIN SOLUTION lab01: encode a comment, one ':' line per line of text
    return "".join(f": {line}\n" if line else ":\n" for line in LINE_BREAK.split(text)).encode()
    # END SOLUTION


def parse_stream(text: str | bytes) -> list[dict[str, Any]]:
    """Read a whole SSE body back into events the way a client does (for tests, notebooks and
    the contract checks), with httpx-sse: parsing is the client's job, so it is not ours to
    write again.

    Each event is a dict: `event` ("message" when unnamed), `data` (its data lines joined with
    "\n"), `id` (the last event id, carried forward from earlier events as the standard says;
    left out while there is none) and `retry` when the event set one. Comments are dropped.
    """
    import httpx
    import httpx_sse

    body = text.encode() if isinstance(text, str) else text
    response = httpx.Response(200, headers={"content-type": CONTENT_TYPE}, content=body)
    events: list[dict[str, Any]] = []
    for event in httpx_sse.EventSource(response).iter_sse():
        fields: dict[str, Any] = {"event": event.event, "data": event.data}
        if event.id:
            fields["id"] = event.id
        if event.retry is not None:
            fields["retry"] = event.retry
        events.append(fields)
    return events
