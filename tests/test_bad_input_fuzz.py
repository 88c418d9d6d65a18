"""Generated bad input beyond the catalogue: never a 5xx, never a 1011, always a catalogue code.

Hypothesis builds request bodies and chat messages from JSON-ish values (nested lists and
objects, numbers of every kind, NaN included), strings with odd code points (NUL, lone
surrogates, control characters, right-to-left marks, noncharacters) and asks with fields of
the wrong type, and sends each to a real gateway. Whatever is sent, the answer is either a
normal one or the catalogue's: a problem object on HTTP, an `error` message on the chat, whose
connection stays open. Examples are few and derandomized, so the module runs in seconds and
the same way every time.
"""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import API_KEY
from websockets.sync.client import connect

from reference_impl.errors import CATALOGUE

pytestmark = pytest.mark.timeout(120)

FAST = {
    "fake_tokens_per_second": 20_000.0,
    "fake_first_token_seconds": 0.0,
    "ws_messages_per_second": 1e6,
    "ws_message_burst": 1_000_000,
}
EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ODD = st.sampled_from(["\x00", "\ud800", "\udfff", "\u202e", "\u200f", "\x07", "\x1b", "\ufeff"])
# Every code point, surrogates included (Hypothesis leaves them out by default).
ANY_CHARACTER = st.characters(exclude_categories=())
STRINGS = st.one_of(
    st.text(ANY_CHARACTER, max_size=20),
    st.lists(st.one_of(ODD, st.text(max_size=3)), min_size=1, max_size=6).map("".join),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),  # NaN and the infinities too: json.dumps writes them, JSON has no such thing
    STRINGS,
)
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(STRINGS, children, max_size=3)
    ),
    max_leaves=8,
)
DOCUMENT_IDS = st.one_of(st.just("server-sent-events"), STRINGS, VALUES)
ASK_FIELDS = st.fixed_dictionaries(
    {"question": st.one_of(STRINGS, VALUES)},
    optional={
        "document_id": DOCUMENT_IDS,
        "document": st.one_of(STRINGS, VALUES),
        "max_tokens": st.one_of(st.integers(-5, 2000), st.floats(), VALUES),
        "temperature": VALUES,
    },
)
# Deeper than any message the contract describes, up to past the decoder's recursion limit.
DEEP = st.integers(min_value=33, max_value=5000).map(lambda n: "[" * n + "]" * n)
BODIES = st.one_of(ASK_FIELDS, VALUES)
MESSAGES = st.one_of(
    ASK_FIELDS.map(lambda fields: {"type": "ask", "id": "f1", **fields}),
    st.fixed_dictionaries({"type": st.sampled_from(["ask", "cancel", "ping", "pong"])}).flatmap(
        lambda base: st.dictionaries(STRINGS, VALUES, max_size=3).map(lambda rest: {**rest, **base})
    ),
    VALUES,
)


def as_json(value) -> str:
    # ensure_ascii: a lone surrogate goes out as its \ud800 escape, as a client's JSON would.
    return json.dumps(value)


def refused_strings(text: str) -> bool:
    """Whether the JSON in `text` holds a string the gateway refuses: one with a NUL or a lone
    surrogate (a Python str holds a character above U+FFFF as one, so any surrogate in it is
    lone)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return False
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            if "\x00" in node or any(0xD800 <= ord(c) <= 0xDFFF for c in node):
                return True
        elif isinstance(node, dict):
            pending.extend([*node, *node.values()])
        elif isinstance(node, list):
            pending.extend(node)
    return False


def test_generated_request_bodies_never_get_a_server_error(start_gateway):
    gateway = start_gateway(**FAST)
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=10) as client:

        @EXAMPLES
        @given(st.one_of(BODIES.map(as_json), DEEP, st.text(ANY_CHARACTER, max_size=30)))
        def check(body: str) -> None:
            response = client.post("/v1/ask", content=body.encode("utf-8", "surrogatepass"))
            assert response.status_code < 500, (body, response.text)
            if refused_strings(body):
                assert response.status_code == 400, (body, response.text)
            if response.status_code == 200:
                assert "answer" in response.json()
                return
            assert response.headers["content-type"].startswith("application/problem+json")
            problem = response.json()
            assert problem["code"] in CATALOGUE and problem["status"] == response.status_code

        check()
    assert gateway.metric("gateway_rejections_total", code="internal_error") == 0
    gateway.wait_for_metric("gateway_streams_active", 0)


def test_generated_chat_messages_get_an_answer_or_an_error_and_never_close_1011(start_gateway):
    gateway = start_gateway(**FAST)
    with connect(
        f"{gateway.server.ws_url}/v1/chat",
        additional_headers={"Authorization": f"Bearer {API_KEY}"},
        compression=None,
        open_timeout=10,
    ) as ws:

        @EXAMPLES
        @given(st.one_of(MESSAGES.map(as_json), DEEP, st.text(ANY_CHARACTER, max_size=30)))
        def check(text: str) -> None:
            # A text frame must be UTF-8, so a raw lone surrogate goes out replaced (the JSON
            # branch sends it escaped, which is what reaches the gateway's decoder).
            ws.send(text if _utf8(text) else text.encode("utf-8", "replace").decode())
            while True:
                message = json.loads(ws.recv(timeout=10))
                if message["type"] == "error":
                    assert message["problem"]["code"] in CATALOGUE, message
                    assert message["problem"]["code"] != "internal_error", (text, message)
                    break
                assert not (message["type"] == "start" and refused_strings(text)), text
                if message["type"] in ("end", "pong"):
                    break

        check()
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}, "the chat is still open"
    assert gateway.metric("gateway_rejections_total", code="internal_error") == 0
    gateway.wait_for_metric("gateway_ws_connections_active", 0)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
