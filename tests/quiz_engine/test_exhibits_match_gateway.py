"""Exhibits that claim to show the course gateway show what it really sends.

Each question named here has an exhibit of a WebSocket session, an HTTP error or an SSE stream from
the course gateway. The test makes the real gateway (uvicorn on a port-0 socket, a real
`websockets` or `httpx` client) do what the exhibit shows and compares what it sent, byte for byte.
Only what differs from run to run is masked on both sides: the random request id, the retry delays
worked out from the token buckets at that instant, and in SSE deltas and end events the generated
text, token counts and timings (there the event's shape must match).
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from support import API_KEY
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

BANK = Path(__file__).resolve().parents[2] / "quizzes" / "bank"
WAIT = 5.0
# An exhibit shortens a long value as `<start>... (312,448 characters)`; it is sent in full.
SHORTENED = re.compile(r"([A-Za-z0-9+/=]*)\.\.\. \(([0-9,]+) characters\)")
CLOSED = re.compile(r'^\[connection closed by the gateway: code (\d+), reason "(.*)"\]$')
VARYING = [
    (re.compile(r"req_[0-9a-f]{16}"), "req_<id>"),
    (re.compile(r'"retry_after_seconds":[0-9.]+'), '"retry_after_seconds":<s>'),
    (re.compile(r"^retry-after: \d+$", re.M), "retry-after: <s>"),
]

# The settings each exhibit's stem describes, beyond the test defaults.
WEBSOCKET_EXHIBITS = {
    "ssews-005": {},
    "ssews-006": {
        "ws_messages_per_second": 0.5,
        "ws_message_burst": 1,
        "ws_rate_limited_before_close": 2,
    },
}
QUESTION = {
    "question": "What does the notice period clause say?",
    "document_id": "api-gateway-websocket-limits",
}
HEADERS = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}


def exhibit(question_id: str) -> str:
    for path in sorted(BANK.glob("*.yaml")):
        for question in yaml.safe_load(path.read_text())["questions"]:
            if question["id"] == question_id:
                return question["exhibit"]
    raise LookupError(question_id)


def masked(text: str) -> str:
    for pattern, replacement in VARYING:
        text = pattern.sub(replacement, text)
    return text


def in_full(message: str) -> str:
    def pad(match: re.Match) -> str:
        start, length = match.group(1), int(match.group(2).replace(",", ""))
        return start + "A" * (length - len(start))

    return SHORTENED.sub(pad, message)


def replay_websocket(gateway, lines: list[str]) -> list[str]:
    """Send the exhibit's `>` lines in order; return every line the gateway produced."""
    seen = []
    with connect(
        f"{gateway.server.ws_url}/v1/chat",
        additional_headers={"Authorization": f"Bearer {API_KEY}"},
        compression=None,
        open_timeout=WAIT,
        max_size=None,
    ) as ws:
        expected_replies = 0
        for line in lines:
            if line.startswith("> "):
                for _ in range(expected_replies):
                    seen.append("< " + ws.recv(timeout=WAIT))
                expected_replies = 0
                ws.send(in_full(line[2:]))
            elif line.startswith("< "):
                expected_replies += 1
        try:
            while True:
                seen.append("< " + ws.recv(timeout=WAIT))
        except ConnectionClosed as closed:
            frame = closed.rcvd
            seen.append(
                f'[connection closed by the gateway: code {frame.code}, reason "{frame.reason}"]'
            )
    return seen


@pytest.mark.parametrize("question_id", sorted(WEBSOCKET_EXHIBITS))
def test_websocket_exhibit_is_what_the_gateway_sends(start_gateway, question_id):
    lines = exhibit(question_id).strip().splitlines()
    gateway = start_gateway(**WEBSOCKET_EXHIBITS[question_id])
    client_lines = [line for line in lines if line.startswith("> ")]
    expected = [masked(line) for line in lines if not line.startswith("> ")]
    assert CLOSED.match(lines[-1]), "a WebSocket exhibit ends with the gateway's close"
    assert [masked(line) for line in replay_websocket(gateway, lines)] == expected, client_lines


def test_restart_exhibit_is_what_the_gateway_sends(start_gateway):
    """ssews-007: the server stops while an answer streams. The deltas in the exhibit stand for
    any deltas of the same ask; the lines after them must be exactly what the gateway sends."""
    lines = exhibit("ssews-007").strip().splitlines()
    deltas = [json.loads(line[2:]) for line in lines if '"type":"delta"' in line]
    ending = [masked(line) for line in lines if '"type":"delta"' not in line]
    ask_id = deltas[0]["id"]
    # Slow enough that the answer is still streaming when the server stops.
    gateway = start_gateway(fake_tokens_per_second=20.0)
    with connect(
        f"{gateway.server.ws_url}/v1/chat",
        additional_headers={"Authorization": f"Bearer {API_KEY}"},
        compression=None,
        open_timeout=WAIT,
    ) as ws:
        ws.send(json.dumps({"type": "ask", "id": ask_id, **QUESTION}))
        received = [json.loads(ws.recv(timeout=WAIT)) for _ in range(1 + len(deltas))]
        assert [m["type"] for m in received] == ["start"] + ["delta"] * len(deltas)
        stopper = threading.Thread(target=gateway.server.stop)
        stopper.start()
        seen = []
        try:
            while True:
                message = json.loads(ws.recv(timeout=WAIT))
                if message["type"] != "delta":
                    seen.append("< " + json.dumps(message, separators=(",", ":")))
        except ConnectionClosed as closed:
            frame = closed.rcvd
            seen.append(
                f'[connection closed by the gateway: code {frame.code}, reason "{frame.reason}"]'
            )
        stopper.join(WAIT)
    assert [masked(line) for line in seen] == ending


def ask(gateway, **fields) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/ask", headers=HEADERS, json={**QUESTION, **fields}, timeout=WAIT * 4
    )


def while_busy(gateway, streams: int, **fields) -> httpx.Response:
    """Ask once while `streams` other answers, each like it, are still running."""
    running = [threading.Thread(target=ask, args=(gateway,), kwargs=fields) for _ in range(streams)]
    for thread in running:
        thread.start()
    gauge = gateway.app.state.gateway.admission.admission  # this worker's memory
    deadline = time.monotonic() + WAIT
    while gauge.total_active < streams:
        assert time.monotonic() < deadline, "the background answers never started"
        time.sleep(0.005)
    try:
        return ask(gateway, **fields)
    finally:
        for thread in running:
            thread.join(WAIT * 4)


def burst(gateway, requests: int) -> httpx.Response:
    """Send `requests` asks at once; return the first refused one."""
    with httpx.Client(headers=HEADERS, timeout=WAIT * 4) as client:
        results: list[httpx.Response] = []
        threads = [
            threading.Thread(
                target=lambda: results.append(
                    client.post(f"{gateway.url}/v1/ask", json={**QUESTION, "max_tokens": 1})
                )
            )
            for _ in range(requests)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * 4)
    refused = [r for r in results if r.status_code != 200]
    assert refused, "no request was refused"
    return refused[0]


# How to make the real gateway answer as each exhibit shows, with the settings its stem states.
SLOW = {"fake_first_token_seconds": 1.0}
HTTP_EXHIBITS = {
    "limits-003": lambda start: ask(start(), max_tokens=4000),
    "limits-010": lambda start: ask(start(), document="x" * 412_600),
    "errors-001": lambda start: burst(start(rate_limit_rps=5.0, rate_limit_burst=10), 12),
    "errors-006": lambda start: while_busy(start(max_total_streams=2, **SLOW), 2),
    "errors-012": lambda start: while_busy(
        start(tokens_per_minute=4000, **SLOW), 3, max_tokens=1024
    ),
}


@pytest.mark.parametrize("question_id", sorted(HTTP_EXHIBITS))
def test_http_problem_exhibit_is_what_the_gateway_sends(start_gateway, question_id):
    head, _, body = exhibit(question_id).strip().partition("\n\n")
    response = HTTP_EXHIBITS[question_id](start_gateway)
    shown = [f"HTTP/1.1 {response.status_code} {response.reason_phrase}"]
    for header in head.splitlines()[1:]:
        name = header.split(":", 1)[0]
        shown.append(f"{name}: {response.headers[name]}")
    assert masked("\n".join(shown)) == masked(head)
    assert masked(response.text) == masked(body)


# SSE exhibits. Timings, token counts and the generated text differ from run to run, so a delta or
# end event must have the real event's shape (the same keys, nested the same way, the same value
# types); a start or error event must equal the real one. The real error comes from a run with a
# short timeout, and its number is then put back to the exhibit's (the detail says "15 s" where
# the fast run said "0.3 s").
SSE_EXHIBITS = [
    "stream-004",
    "latency-005",
    "ssews-008",
    "sse-wire-005",
    "limits-004",
    "guard-001",
    "guard-005",
    "guard-008",
    "errors-009",
]
FAST = 0.3
DEFAULT_LIMITS = {
    "max_tokens": 256,
    "max_stream_seconds": 120.0,
    "first_token_timeout_seconds": 10.0,
    "idle_timeout_seconds": 15.0,
}
# How the real gateway is made to end a stream with each error code.
ERROR_RUNS = {
    "idle_timeout": ({"fake_behavior": "stall"}, "idle_timeout_seconds"),
    "stream_timeout": ({"fake_behavior": "runaway"}, "max_stream_seconds"),
    "model_error": ({"fake_behavior": "fail_midstream"}, None),
}


def sse_events(text: str) -> list[dict[str, str]]:
    """The events of an SSE exhibit or body: each a dict of its field lines, in order."""
    events = []
    for block in re.split(r"\n\s*\n", text.strip()):
        fields = {}
        for line in block.splitlines():
            if line.startswith(":") or line.startswith("["):
                continue  # a comment (ping, or a note that lines were left out) or a note
            name, _, value = line.partition(": ")
            fields[name] = value
        if fields:
            events.append(fields)
    return events


def shape(value):
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return type(value).__name__ if not isinstance(value, float) else "number"


def real_stream(start_gateway, limits: dict, **settings) -> list[dict[str, str]]:
    gateway = start_gateway(
        max_stream_seconds=limits["max_stream_seconds"],
        first_token_timeout_seconds=limits["first_token_timeout_seconds"],
        idle_timeout_seconds=limits["idle_timeout_seconds"],
        max_tokens_cap=max(1024, limits["max_tokens"]),
        **settings,
    )
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/ask/stream",
        headers=HEADERS,
        json={**QUESTION, "max_tokens": limits["max_tokens"]},
        timeout=WAIT * 4,
    ) as response:
        return sse_events(response.read().decode())


@pytest.mark.parametrize("question_id", SSE_EXHIBITS)
def test_sse_exhibit_is_what_the_gateway_sends(start_gateway, question_id):
    shown = sse_events(exhibit(question_id))
    start = next((e for e in shown if e["event"] == "start"), None)
    limits = json.loads(start["data"])["limits"] if start else DEFAULT_LIMITS
    real = {e["event"]: e for e in real_stream(start_gateway, limits)}
    for event in shown:
        assert list(event) == ["id", "event", "data"], event
        name, data = event["event"], json.loads(event["data"])
        if name == "error":
            settings, limit = ERROR_RUNS[data["code"]]
            fast_limits = {**limits, **({limit: FAST} if limit else {})}
            expected = real_stream(start_gateway, fast_limits, **settings)[-1]["data"]
            if limit:
                expected = expected.replace(f"{FAST:g} s", f"{limits[limit]:g} s")
            assert masked(event["data"]) == masked(expected), question_id
        elif name == "start":
            assert masked(event["data"]) == masked(real["start"]["data"]), question_id
        else:
            assert shape(data) == shape(json.loads(real[name]["data"])), (question_id, name)


def test_cancel_exhibit_has_the_shape_of_what_the_gateway_sends(start_gateway):
    """ssews-004: a cancel mid-answer, then a follow-up on the same connection. Generated text,
    token counts and timings vary; every message's type, id, stop reason and shape must not."""
    lines = exhibit("ssews-004").strip().splitlines()
    # A token every 250 ms: the cancel arrives long before a third delta could be sent.
    gateway = start_gateway(fake_tokens_per_second=4.0)
    seen = []
    with connect(
        f"{gateway.server.ws_url}/v1/chat",
        additional_headers={"Authorization": f"Bearer {API_KEY}"},
        compression=None,
        open_timeout=WAIT,
    ) as ws:
        replies = 0
        for line in lines + ["> end"]:
            if line.startswith("> "):
                for _ in range(replies):
                    seen.append(json.loads(ws.recv(timeout=WAIT)))
                replies = 0
                if line != "> end":
                    ws.send(line[2:])
            else:
                replies += 1
    shown = [json.loads(line[2:]) for line in lines if line.startswith("< ")]
    assert [shape(m) for m in seen] == [shape(m) for m in shown]
    keys = ("type", "id", "stop_reason")
    assert [[m.get(k) for k in keys] for m in seen] == [[m.get(k) for k in keys] for m in shown]


CONTRACT = BANK.parent.parent / "reference_impl" / "contract" / "openapi.yaml"


def is_excerpt(part, whole) -> bool:
    """`part` keeps some keys and list items of `whole` and changes nothing it keeps."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            key in whole and is_excerpt(value, whole[key]) for key, value in part.items()
        )
    if isinstance(part, list):
        return isinstance(whole, list) and all(
            any(is_excerpt(item, candidate) for candidate in whole) for item in part
        )
    return part == whole


def test_contract_exhibit_is_an_excerpt_of_the_gateway_contract():
    """contract-004 shows part of the course gateway's OpenAPI document, unchanged."""
    shown = yaml.safe_load(exhibit("contract-004"))
    assert is_excerpt(shown, yaml.safe_load(CONTRACT.read_text()))


def test_full_response_exhibit_has_the_shape_of_what_the_gateway_sends(start_gateway):
    """latency-001 shows a POST /v1/ask body and the end event of POST /v1/ask/stream."""
    text = exhibit("latency-001")
    body = next(line for line in text.splitlines() if line.startswith('{"request_id"'))
    gateway = start_gateway()
    answered = ask(gateway)
    assert shape(json.loads(body)) == shape(answered.json())
    end = next(e for e in sse_events(text.split("/v1/ask/stream", 1)[1]) if e.get("event") == "end")
    real = {e["event"]: e for e in real_stream(start_gateway, DEFAULT_LIMITS)}
    assert shape(json.loads(end["data"])) == shape(json.loads(real["end"]["data"]))


# Exhibits that mention the course gateway but show something else: stream-008 shows the events
# Amazon Bedrock sent to the gateway's adapter, not what the gateway sends.
NOT_GATEWAY_OUTPUT = {"stream-008"}


def test_every_exhibit_that_claims_the_course_gateway_is_checked():
    checked = (
        set(WEBSOCKET_EXHIBITS)
        | set(HTTP_EXHIBITS)
        | set(SSE_EXHIBITS)
        | {"ssews-004", "ssews-007", "contract-004", "latency-001"}
    )
    claiming = {
        question["id"]
        for path in sorted(BANK.glob("*.yaml"))
        for question in yaml.safe_load(path.read_text())["questions"]
        if "exhibit" in question and "course gateway" in " ".join(question["stem"].split())
    }
    assert claiming - NOT_GATEWAY_OUTPUT <= checked, sorted(claiming - NOT_GATEWAY_OUTPUT - checked)
