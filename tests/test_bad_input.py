"""Every kind of bad input gets its documented answer, and the gateway stays healthy after it.

The kinds, how each is sent and what it gets are one table, `bad_input.CATALOGUE`, which also
writes `docs/reliability.md`. For each kind, against a real gateway on a loopback port:
- the answer is the documented one: an RFC 9457 problem with its status and code on HTTP, an
  `error` message with its code and the documented close code (or none) on WebSocket;
- nothing in any answer is a traceback, a file path or an internal name;
- the server logged no traceback (a client's mistake is not the gateway's failure);
- afterwards a normal stream is answered to its `end`, and no stream, connection or slot is
  left counted.
"""

from __future__ import annotations

import json

import pytest
from bad_input import CATALOGUE, Context, Kind
from reliability_doc import PAGE, render
from support import API_KEY, QUESTION

pytestmark = pytest.mark.timeout(60)

# What must never reach a client: a traceback, a source path, the package's own names, and
# the API key (sent in the query string by one kind: never echoed).
LEAKS = (
    "Traceback",
    'File "',
    ".py",
    "/work/",
    "site-packages",
    "reference_impl",
    "Error:",
    API_KEY,
)


def tracebacks_logged(caplog, capfd) -> list[str]:
    """Every traceback the server logged: the gateway's records reach pytest's log capture;
    uvicorn's own handlers write to stderr, which `capfd` holds."""
    found = [record.getMessage() for record in caplog.records if record.exc_info]
    captured = capfd.readouterr()
    for stream in (captured.out, captured.err):
        if "Traceback" in stream:
            found.append(stream[max(0, stream.index("Traceback") - 200) :][:1500])
    return found


def assert_healthy(gateway) -> None:
    result = gateway.client().stream({**QUESTION, "max_tokens": 3})
    assert result.names == ["start", "delta", "delta", "delta", "end"], result.names
    for gauge in ("gateway_streams_active", "gateway_ws_connections_active"):
        gateway.wait_for_metric(gauge, 0)
    # The gauges as a scraper reads them, too.
    exposition = gateway.client().get("/metrics").text
    assert "gateway_streams_active 0.0" in exposition


@pytest.mark.parametrize("kind", CATALOGUE, ids=[f"{k.channel}: {k.name}" for k in CATALOGUE])
def test_bad_input_gets_its_documented_answer_and_the_gateway_stays_healthy(
    start_gateway, caplog, capfd, kind: Kind
):
    gateway = start_gateway(**kind.settings)
    outcome = kind.send(Context(gateway, start_gateway))
    got = (outcome.status, outcome.code, outcome.close)
    wanted = (kind.expected.status, kind.expected.code, kind.expected.close)
    assert outcome.matches(kind.expected), f"{kind.name}: got {got}, wanted {wanted} {outcome.note}"
    if kind.channel == "WebSocket" and kind.expected.code not in (None, "busy"):
        # Refused before any answer started: the error is the first thing said.
        assert "start" not in outcome.types, outcome.types
    for text in outcome.texts:
        for leak in LEAKS:
            assert leak not in text, f"{kind.name}: the answer holds {leak!r}: {text[:300]}"
    assert_healthy(gateway)
    assert not tracebacks_logged(caplog, capfd)


def test_the_catalogue_has_at_least_thirty_kinds_each_named_once():
    names = [(kind.channel, kind.name) for kind in CATALOGUE]
    assert len(names) >= 30 and len(set(names)) == len(names)


def test_docs_reliability_md_is_the_catalogue():
    on_disk = PAGE.read_text(encoding="utf-8")
    assert on_disk == render(), (
        "docs/reliability.md is stale: run `python tests/reliability_doc.py`"
    )


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("[" * 32 + "]" * 32, None),
        ("[" * 33 + "]" * 33, "nested more than 32 levels deep"),
        ('{"a": ' * 32 + "1" + "}" * 32, None),
        ('{"a": ' * 33 + "1" + "}" * 33, "nested more than 32 levels deep"),
        ('{"a": 1, "a": 1}', "repeats a key"),
        ('{"a": {"b": 1, "b": 2}}', "repeats a key"),
        ("[NaN]", "NaN"),
        ("[-Infinity]", "-Infinity"),
        ('["a\\u0000b"]', "NUL"),
        ('{"a\\u0000": 1}', "NUL"),
        ('["\\udfff"]', "lone surrogate"),
        ('["\\ud83d\\ude00 \\u202e \\u0007"]', None),
        ("[1, 2", "not valid JSON"),
    ],
)
def test_the_json_rule_both_edges_share(impl, text, refused):
    loads = impl.load("json_input").loads
    if refused is None:
        assert loads(text) == json.loads(text)
        assert loads(text.encode()) == json.loads(text)
    else:
        with pytest.raises(ValueError, match=refused):
            loads(text)
