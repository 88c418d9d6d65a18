"""The gateway's security rules, checked against a real server with real clients.

Keys: compared in constant time, never written to the log (start-up lines included), never
accepted in the URL, and guessed at no faster than `auth_failures_per_minute` per address.
Browsers: a foreign `Origin` is refused on HTTP and on the WebSocket handshake; a listed one
gets CORS. Answers: problem objects never carry tracebacks, paths or internal names. Tickets
are single-use and expire. A client's request id never reaches headers or logs. Every server
runs on 127.0.0.1 port 0; clients are httpx and websockets.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support import API_KEY, QUESTION
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
REQUEST_ID = re.compile(r"req_[0-9a-f]{16}")
BEARER = {"Authorization": f"Bearer {API_KEY}"}


def http(gateway, **kwargs) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, timeout=10, **kwargs)


def raw_request(gateway, request_line: bytes, headers: list[bytes], body: bytes = b"") -> bytes:
    """Send bytes httpx would refuse to send (a header with trailing space, CR/LF in a value);
    the whole answer."""
    host, port = gateway.url.removeprefix("http://").split(":")
    lines = [request_line, b"Host: " + host.encode(), *headers, b"Connection: close"]
    if body:
        lines += [b"Content-Type: application/json", b"Content-Length: %d" % len(body)]
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def open_chat(gateway, query: str = "", headers: dict | None = None):
    return connect(
        f"{gateway.server.ws_url}/v1/chat{query}",
        additional_headers=headers or {},
        compression=None,
        open_timeout=10,
    )


def close_code(ws) -> int | None:
    """Read until the server closes; its close code."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=10)
    return closed.value.rcvd.code if closed.value.rcvd else None


# --- keys -----------------------------------------------------------------------------------


def test_keys_are_compared_with_hmac_compare_digest(start_gateway, monkeypatch):
    gateway = start_gateway()
    compared = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    with http(gateway) as client:
        assert client.get("/v1/documents", headers=BEARER).status_code == 200
        wrong = client.get("/v1/documents", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    assert (API_KEY.encode(), API_KEY.encode()) in compared
    assert any(a == b"nope" for a, _ in compared)


@pytest.mark.parametrize(
    "query", ["?api_key=test-key", "?key=test-key", "?access_token=test-key", "?x=test-key"]
)
def test_a_key_in_the_query_string_is_refused_and_not_echoed(start_gateway, query):
    gateway = start_gateway()
    with http(gateway) as client:
        # Even with a good key in the header: the URL has already leaked it.
        response = client.get(f"/v1/documents{query}", headers=BEARER)
    assert response.status_code == 401
    problem = response.json()
    assert problem["code"] == "unauthorized" and "Authorization header" in problem["detail"]
    assert API_KEY not in response.text


def test_a_key_in_the_query_string_of_the_chat_is_refused(start_gateway):
    gateway = start_gateway()
    with open_chat(gateway, "?api_key=test-key", BEARER) as ws:
        error = json.loads(ws.recv(timeout=10))
        assert error["problem"]["code"] == "unauthorized"
        assert API_KEY not in json.dumps(error)
        assert close_code(ws) == 4401


def start_cli(*args: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "course.serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        start_new_session=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
    )
    first = process.stdout.readline()
    match = re.search(r"on (http://127\.0\.0\.1:\d+)", first)
    assert match, first
    return process, match.group(1)


def wait_until_serving(url: str) -> None:
    deadline = time.monotonic() + 20
    while True:  # the port is printed just before uvicorn starts serving
        try:
            httpx.get(f"{url}/healthz")
            return
        except httpx.ConnectError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


@pytest.mark.timeout(90)
def test_no_key_is_ever_written_to_the_server_log(impl):
    secret, other = "sk-secret-9f3a7c", "sk-other-77b1e0"
    process, url = start_cli("--api-keys", f"{secret},{other}")  # logs at info: access log on
    try:
        wait_until_serving(url)
        with httpx.Client(base_url=url, timeout=10) as client:
            good = {"Authorization": f"Bearer {secret}"}
            assert client.post("/v1/ask", json=QUESTION, headers=good).status_code == 200
            client.post("/v1/ask", content=b"{not json", headers=good)  # an error, with a key
            client.post("/v1/ask", json=QUESTION, headers={"Authorization": f"Bearer {secret}x"})
            client.get(f"/v1/documents?api_key={secret}")  # the key in the URL
            client.get(f"/nowhere?token={other}", headers=good)
            ticket = client.post("/v1/chat/tickets", headers=good).json()["ticket"]
        ws_url = url.replace("http://", "ws://")
        with connect(f"{ws_url}/v1/chat?api_key={other}", open_timeout=10) as ws:
            close_code(ws)
        with connect(f"{ws_url}/v1/chat?ticket={ticket}", open_timeout=10) as ws:
            ws.send(json.dumps({"type": "ping"}))
            ws.recv(timeout=10)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        output = process.stdout.read()  # after the first line, which start_cli read
    assert "GET /v1/documents?api_key=..." in output  # the access log was on, and redacted
    assert secret not in output and other not in output
    assert ticket not in output
    assert "Bearer <your key>" in output, output[:3000]  # the start-up example: a placeholder


def test_the_start_up_example_shows_the_course_key_when_it_is_the_one_in_use(impl):
    process, url = start_cli()
    try:
        assert "Bearer course-key" in process.stdout.readline()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=30)


def source_client(gateway, address: str) -> httpx.Client:
    """A client whose requests come from `address` (any 127.x.y.z reaches 127.0.0.1)."""
    return http(gateway, transport=httpx.HTTPTransport(local_address=address))


def test_wrong_keys_are_throttled_per_address_and_a_right_key_elsewhere_is_not(start_gateway):
    gateway = start_gateway(auth_failures_per_minute=5)
    wrong = {"Authorization": "Bearer guess"}
    with source_client(gateway, "127.0.0.1") as guesser:
        statuses = [guesser.get("/v1/documents", headers=wrong).status_code for _ in range(20)]
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
        throttled = guesser.get("/v1/documents", headers=BEARER)  # even the right key
        assert throttled.status_code == 429 and throttled.json()["code"] == "rate_limited"
        assert 1 <= int(throttled.headers["Retry-After"]) <= 60
        # Variants of the header are the same address's tries.
        for header in (b"bearer  guess", b"BEARER guess ", b"guess"):
            answer = raw_request(
                gateway, b"GET /v1/documents HTTP/1.1", [b"Authorization: " + header]
            )
            assert status_of(answer) == 429
        with open_chat(gateway, "?ticket=tkt_guess") as ws:
            error = json.loads(ws.recv(timeout=10))
            assert error["problem"]["code"] == "rate_limited"
            assert close_code(ws) == 1013
    with source_client(gateway, "127.0.0.2") as other:
        assert other.get("/v1/documents", headers=BEARER).status_code == 200


def test_a_flood_of_wrong_keys_gets_429s_not_a_verdict_on_each(start_gateway):
    gateway = start_gateway()  # the default: 30 a minute
    with http(gateway) as client:
        statuses = [
            client.get("/v1/documents", headers={"Authorization": f"Bearer k{i}"}).status_code
            for i in range(200)
        ]
    assert statuses.count(401) == 30 and statuses.count(429) == 170


@pytest.mark.parametrize(
    "header", [b"Bearer test-key", b"bearer  test-key", b"Bearer test-key ", b"BEARER test-key"]
)
def test_the_request_rate_cannot_be_dodged_by_the_header_spelling(start_gateway, header):
    gateway = start_gateway(rate_limit_rps=0.01, rate_limit_burst=2)
    with http(gateway) as client:
        for spelling in ("Bearer test-key", "bearer  test-key"):  # the burst, spent
            assert client.get("/v1/documents", headers={"Authorization": spelling}).is_success
    answer = raw_request(gateway, b"GET /v1/documents HTTP/1.1", [b"Authorization: " + header])
    assert status_of(answer) == 429 and b'"code":"rate_limited"' in answer


# --- browsers: Origin and CORS --------------------------------------------------------------


def test_a_foreign_origin_is_refused_on_http_and_the_websocket_before_accept(start_gateway):
    gateway = start_gateway()
    foreign = {"Origin": "https://evil.example", **BEARER}
    with http(gateway) as client:
        response = client.post("/v1/ask", json=QUESTION, headers=foreign)
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "origin_not_allowed"
        assert "access-control-allow-origin" not in response.headers
        assert (
            client.post("/v1/ask", json=QUESTION, headers={"Origin": "null", **BEARER}).status_code
            == 403
        )
    with pytest.raises(InvalidStatus) as refused:
        open_chat(gateway, headers=foreign)
    assert refused.value.response.status_code == 403
    assert json.loads(refused.value.response.body)["code"] == "origin_not_allowed"
    assert gateway.metric("gateway_rejections_total", code="origin_not_allowed") == 3
    assert gateway.metric("gateway_model_requests_total", model="fake-docqa") == 0


def test_the_same_origin_and_clients_without_origin_are_let_through(start_gateway):
    gateway = start_gateway()
    same = {"Origin": gateway.url, **BEARER}
    with http(gateway) as client:
        assert client.post("/v1/ask", json=QUESTION, headers=same).status_code == 200
        assert client.post("/v1/ask", json=QUESTION, headers=BEARER).status_code == 200
    for headers in (same, BEARER):
        with open_chat(gateway, headers=headers) as ws:
            ws.send(json.dumps({"type": "ping"}))
            assert json.loads(ws.recv(timeout=10))["type"] == "pong"


def test_a_listed_origin_gets_cors_and_opens_the_chat(start_gateway):
    gateway = start_gateway(allowed_origins=("https://app.example",))
    listed = {"Origin": "https://app.example"}
    with http(gateway) as client:
        preflight = client.options(
            "/v1/ask",
            headers={
                **listed,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert "Authorization" in preflight.headers["access-control-allow-headers"]
        answer = client.post("/v1/ask", json=QUESTION, headers={**listed, **BEARER})
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == "https://app.example"
        assert "X-Request-Id" in answer.headers["access-control-expose-headers"]
        other = client.post(
            "/v1/ask", json=QUESTION, headers={"Origin": "https://app.example.evil", **BEARER}
        )
        assert other.status_code == 403
    with open_chat(gateway, headers={**listed, **BEARER}) as ws:
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "pong"


# --- answers say nothing internal ------------------------------------------------------------

INTERNALS = re.compile(r"Traceback|File \"|\.py\b|reference_impl|site-packages|/work/|/home/|/usr/")


def test_problem_objects_never_carry_tracebacks_paths_or_internal_names(start_gateway):
    gateway = start_gateway(auth_failures_per_minute=3, max_request_bytes=1000)
    failing = start_gateway(fake_behavior="fail_midstream")
    problems = []
    with http(gateway) as client:
        for method, path, kwargs in [
            (
                "POST",
                "/v1/ask",
                {"content": b"{nope", "headers": {**BEARER, "Content-Type": "application/json"}},
            ),
            (
                "POST",
                "/v1/ask",
                {"content": b"x", "headers": {**BEARER, "Content-Type": "text/plain"}},
            ),
            (
                "POST",
                "/v1/ask",
                {"json": {"question": "q", "document_id": "../../etc/passwd"}, "headers": BEARER},
            ),
            ("POST", "/v1/ask", {"json": {**QUESTION, "max_tokens": 10**9}, "headers": BEARER}),
            (
                "POST",
                "/v1/ask",
                {"content": b"x" * 2000, "headers": {**BEARER, "Content-Type": "application/json"}},
            ),
            ("GET", "/v1/nowhere", {"headers": BEARER}),
            ("DELETE", "/v1/ask", {"headers": BEARER}),
            ("GET", "/v1/documents?api_key=x", {"headers": BEARER}),
            ("GET", "/v1/documents", {"headers": {"Origin": "https://evil.example"}}),
        ] + [("GET", "/v1/documents", {"headers": {"Authorization": "Bearer bad"}})] * 5:
            problems.append(client.request(method, path, **kwargs))
    with http(failing) as client:
        with client.stream("POST", "/v1/ask/stream", json=QUESTION, headers=BEARER) as stream:
            body = stream.read().decode()
        problems.append(client.post("/v1/ask", json=QUESTION, headers=BEARER))
    codes = set()
    for response in problems:
        assert response.headers["content-type"] == "application/problem+json", response.text
        problem = response.json()
        codes.add(problem["code"])
        assert not INTERNALS.search(response.text), response.text
        assert REQUEST_ID.fullmatch(problem["request_id"])
    assert not INTERNALS.search(body) and "model_error" in body
    assert {
        "invalid_request",
        "unsupported_media_type",
        "max_tokens_exceeded",
        "request_too_large",
        "not_found",
        "method_not_allowed",
        "unauthorized",
        "origin_not_allowed",
        "rate_limited",
        "model_error",
    } <= codes


# --- tickets ------------------------------------------------------------------------------


def ticket_of(gateway) -> str:
    with http(gateway) as client:
        response = client.post("/v1/chat/tickets", headers=BEARER)
    assert response.status_code == 201
    return response.json()["ticket"]


def test_a_ticket_opens_one_connection_once_and_expires(start_gateway):
    gateway = start_gateway(ws_ticket_seconds=0.3)
    ticket = ticket_of(gateway)
    with open_chat(gateway, f"?ticket={ticket}") as ws:
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "pong"
    with open_chat(gateway, f"?ticket={ticket}") as ws:
        assert close_code(ws) == 4401
    late = ticket_of(gateway)
    issued = time.monotonic()
    while time.monotonic() < issued + 0.3:  # the ticket's lifetime, measured
        time.sleep(0.02)
    with open_chat(gateway, f"?ticket={late}") as ws:
        assert close_code(ws) == 4401


# --- request ids ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "supplied",
    [
        b"req_abc\r\nSet-Cookie: INJECTED=1",
        b"INJECTED" * 2000,
        "INJECTED-r\u00e9q-\u2603".encode(),
        b"req_1\nINJECTED log line",
    ],
)
def test_a_supplied_request_id_never_reaches_headers_or_logs(start_gateway, supplied, caplog):
    gateway = start_gateway()
    body = b'{"question": "q", "document_id": "server-sent-events", "max_tokens": 2}'
    answer = raw_request(
        gateway,
        b"POST /v1/ask HTTP/1.1",
        [b"X-Request-Id: " + supplied, b"Authorization: Bearer " + API_KEY.encode()],
        body,
    )
    head = answer.partition(b"\r\n\r\n")[0]
    # The server refuses a header with a bare CR/LF outright, or answers with its own id.
    assert b"INJECTED" not in answer and b"set-cookie" not in head.lower()
    if status_of(answer) == 200:
        [request_id] = [
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"x-request-id:")
        ]
        assert REQUEST_ID.fullmatch(request_id.decode())
    assert "INJECTED" not in caplog.text
