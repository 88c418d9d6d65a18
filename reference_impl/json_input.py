"""The JSON the gateway accepts from a client: one rule for HTTP bodies and WebSocket messages.

`json.loads` alone takes more than the gateway can answer safely. Refused here, before any
schema check, so every edge reads the same rule and none of it is an internal error:

- text that is not UTF-8 or not JSON, and `NaN` / `Infinity` (Python reads them; JSON has none);
- nesting deeper than `MAX_DEPTH` levels: 10,000 `[` overflow the decoder's recursion (a
  `RecursionError`, which used to surface as a 500), and even a few hundred levels make every
  later step that walks the value (the schema check, its error message) recurse as deep. An
  ask is one flat object, so 32 levels is far beyond any message the contract describes;
- an object that repeats a key: which value wins is up to each parser (Python takes the last,
  others the first), so a proxy and the gateway could read two different requests (RFC 8259
  section 4; I-JSON, RFC 7493, forbids it);
- a NUL character or a lone surrogate (`\\ud800` without its pair) in any string: a lone
  surrogate cannot be encoded as UTF-8, so it would fail later, at the model's client or on the
  wire, after the answer had started (I-JSON forbids it too); NUL ends strings in C libraries,
  logs and databases downstream. Other characters, control characters and right-to-left marks
  included, are text like any other: Hebrew and Arabic questions are answered.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32


class RefusedJson(ValueError):
    """Why a client's JSON is refused, as the end of a sentence: "The body {reason}."."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise RefusedJson("repeats a key in one object; send each key once")
    return value


def _constant(name: str) -> Any:
    raise RefusedJson(f"holds {name}, which is not a JSON number")


_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant)


def _string_problem(text: str) -> str | None:
    if text.isascii():  # the common case, one pass in C
        return "holds a NUL character in a string" if "\x00" in text else None
    if "\x00" in text:
        return "holds a NUL character in a string"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone surrogate in a string (a \\ud800-\\udfff escape without its pair)"
    return None


def loads(data: str | bytes) -> Any:
    """The JSON value in `data` (UTF-8 bytes or text), or `RefusedJson` saying why not."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = _DECODER.decode(text)
    except RefusedJson:
        raise
    except RecursionError:
        raise RefusedJson(f"is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RefusedJson("is not valid JSON") from None
    check_value(value)
    return value


def check_value(value: Any) -> None:
    """Refuse a decoded value nested too deep or with a string the gateway will not take.

    Walks the value without recursion; an ask is one small object, so this costs microseconds.
    """
    pending = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, str):
            problem = _string_problem(node)
            if problem is not None:
                raise RefusedJson(problem)
            continue
        if not isinstance(node, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise RefusedJson(f"is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, dict):
            pending.extend((key, depth) for key in node)
            pending.extend((item, depth + 1) for item in node.values())
        else:
            pending.extend((item, depth + 1) for item in node)
