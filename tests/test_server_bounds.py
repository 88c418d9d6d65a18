"""The server's own bounds, against a real `python -m reference_impl`: slow or idle clients,
huge headers and WebSocket messages, malformed HTTP, and a log free of tracebacks after each."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from server_process import API_KEY, ServerProcess

# Small bounds, so each one is reached quickly.
BOUNDS = {
    "request_read_timeout_seconds": 1.0,
    "max_header_bytes": 8192,
    "max_connections": 30,
    "keep_alive_seconds": 1.0,
    "rate_limit_rps": 1000,
    "rate_limit_burst": 1000,
}
ASK = b'{"question": "What is the idle timeout?", "document_id": "server-sent-events"}'


@pytest.fixture(scope="module")
def server():
    running = ServerProcess(**BOUNDS)
    yield running
    log = running.stop()
    assert "Traceback" not in log, log


def request_head(path: str = "/v1/ask", length: int | None = None, extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
    head += "Content-Type: application/json\r\n"
    if length is not None:
        head += f"Content-Length: {length}\r\n"
    return (head + extra + "\r\n").encode()


def connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or 15 s pass)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def problem_of(raw: bytes) -> tuple[int, dict, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return status, headers, json.loads(body)


def test_a_body_that_stops_coming_gets_408_request_timeout_and_the_connection_closes(server):
    sock = connect(server)
    sock.sendall(request_head(length=len(ASK)) + ASK[:10])  # declares more than it sends
    started = time.monotonic()
    status, headers, body = problem_of(read_all(sock))
    assert status == 408 and body["code"] == "request_timeout" and body["retryable"] is True
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert time.monotonic() - started < 1.0 + 5
    sock.close()


def test_a_body_trickled_a_byte_at_a_time_is_cut_at_the_read_timeout(server):
    sock = connect(server)
    sock.sendall(request_head(length=len(ASK)))
    sock.settimeout(0.2)
    started, answer = time.monotonic(), b""
    for byte in ASK:  # 80 bytes at 5 a second would take 16 s
        try:
            sock.sendall(bytes([byte]))
            answer = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
        if answer:
            break
    sock.settimeout(15)
    answer += read_all(sock)
    status, _, body = problem_of(answer)
    assert status == 408 and body["code"] == "request_timeout"
    assert time.monotonic() - started < 1.0 + 5
    sock.close()


def test_headers_that_stop_coming_get_408_and_an_idle_connection_is_closed(server):
    slow = connect(server)
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never the blank line
    idle = connect(server)  # never a byte
    started = time.monotonic()
    status, _, body = problem_of(read_all(slow))
    assert status == 408 and body["code"] == "request_timeout"
    assert read_all(idle) == b""  # closed, with nothing to say: no request had begun
    assert time.monotonic() - started < 1.0 + 5
    slow.close()
    idle.close()


def test_many_idle_connections_are_capped_then_closed(server):
    before = server.open_fds()
    sockets = [connect(server) for _ in range(BOUNDS["max_connections"] + 5)]
    refused = [problem_of(read_all(s)) for s in sockets[-5:]]
    assert {(status, body["code"]) for status, _, body in refused} == {(503, "overloaded")}
    for sock in sockets[:-5]:
        assert read_all(sock) == b""  # closed by the server after the read timeout
        sock.close()
    for sock in sockets[-5:]:
        sock.close()
    deadline = time.monotonic() + 10
    while server.open_fds() > before:  # the server has let go of them all
        assert time.monotonic() < deadline, (server.open_fds(), before)
        time.sleep(0.05)


def test_an_answer_given_before_the_body_arrived_says_the_connection_closes(server):
    # A refusal decided from the headers alone (here a wrong key) goes out before the body
    # is read. The connection then closes, as the rest of the body is not waited for, and the
    # client must be told so: a keep-alive client told nothing sends its next request on a
    # connection about to close, and gets a reset instead of an answer.
    with connect(server) as sock:
        head = request_head(length=len(ASK)).replace(API_KEY.encode(), b"not-the-key")
        sock.sendall(head)  # the body is never sent
        status, headers, problem = problem_of(read_all(sock))
    assert (status, problem["code"]) == (401, "unauthorized")
    assert headers.get("connection") == "close"


def test_a_client_that_leaves_mid_body_leaves_no_traceback(server):
    log_before = len(server.lines)
    refused = server.metric("gateway_rejections_total", code="invalid_request")
    sock = connect(server)
    sock.sendall(request_head(length=len(ASK)) + ASK[:10])
    sock.close()  # mid-body: the client's mistake
    server.wait_for_metric("gateway_rejections_total", refused + 1, code="invalid_request")
    assert "Traceback" not in "".join(server.lines[log_before:])


def test_an_invalid_chunk_size_and_malformed_http_get_a_400_problem(server):
    sock = connect(server)
    sock.sendall(request_head(extra="Transfer-Encoding: chunked\r\n") + b"zz\r\nabc\r\n")
    status, headers, body = problem_of(read_all(sock))
    assert status == 400 and body["code"] == "invalid_request"
    assert headers["content-type"] == "application/problem+json"
    sock.close()
    sock = connect(server)
    sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    status, _, body = problem_of(read_all(sock))
    assert status == 400 and body["code"] == "invalid_request"
    sock.close()
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert "Traceback" not in server.log


def test_headers_above_the_limit_get_431_headers_too_large(server):
    response = httpx.get(
        f"{server.url}/v1/documents", headers={"Authorization": "Bearer " + "k" * 20_000}
    )
    assert response.status_code == 431
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "headers_too_large"
    assert response.json()["retryable"] is False


def test_an_invalid_utf8_websocket_text_frame_closes_1007_without_a_traceback(server):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect as ws_connect

    url = server.url.replace("http://", "ws://") + "/v1/chat"
    with ws_connect(url, additional_headers={"Authorization": f"Bearer {API_KEY}"}) as ws:
        ws.send(b"\xff\xfe", text=True)  # a text frame that is not UTF-8
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    assert ws.close_code == 1007
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert "Traceback" not in server.log


# --- memory: a bound on what one client can make the server hold ------------------------------


def test_a_32_mib_header_does_not_reach_the_servers_memory():
    server = ServerProcess()  # default settings: 16 KiB of headers
    try:
        before = server.peak_memory_bytes()
        sock = connect(server)
        head = b"GET /v1/documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        answer = b""
        try:
            sock.sendall(head)
            chunk = b"k" * (1024 * 1024)
            for _ in range(32):
                sock.sendall(chunk)
        except OSError:  # the server refused and closed while the header was still coming
            pass
        answer = read_all(sock)
        sock.close()
        if answer:  # read before the reset, when the client got that far
            assert problem_of(answer)[0] == 431
        grown = server.peak_memory_bytes() - before
        # Unbounded, httptools held the whole header (and copies of it): over 100 MiB.
        assert grown < 8 * 1024 * 1024, f"peak memory grew by {grown / 2**20:.1f} MiB"
    finally:
        log = server.stop()
    assert "Traceback" not in log, log


def test_a_websocket_message_far_above_the_limit_is_refused_before_it_is_read():
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect as ws_connect

    server = ServerProcess()  # default: 128 KiB messages
    try:
        before = server.peak_memory_bytes()
        url = server.url.replace("http://", "ws://") + "/v1/chat"
        headers = {"Authorization": f"Bearer {API_KEY}"}
        with ws_connect(url, additional_headers=headers, max_size=None) as ws:
            with pytest.raises(ConnectionClosed):
                ws.send("x" * (15 * 1024 * 1024))  # under uvicorn's own default of 16 MiB
                ws.recv(timeout=20)
        # 1009 from the server; 1006 when the client was still writing as the server closed.
        assert ws.close_code in (1009, 1006)
        grown = server.peak_memory_bytes() - before
        assert grown < 8 * 1024 * 1024, f"peak memory grew by {grown / 2**20:.1f} MiB"
    finally:
        log = server.stop()
    assert "Traceback" not in log, log


# --- the same bounds wherever the gateway runs ------------------------------------------------


def test_the_background_server_applies_the_bounds(start_gateway):
    gateway = start_gateway(max_header_bytes=2000)
    response = httpx.get(
        f"{gateway.url}/v1/documents", headers={"Authorization": "Bearer " + "k" * 3000}
    )
    assert response.status_code == 431 and response.json()["code"] == "headers_too_large"
    config = gateway.server.server.config
    assert config.ws_max_size == 2 * gateway.settings.ws_max_message_bytes
    assert config.timeout_keep_alive == gateway.settings.keep_alive_seconds


@pytest.mark.timeout(90)
def test_the_workers_apply_the_bounds():
    import os
    import re
    import signal
    import subprocess
    import sys

    from server_process import ROOT

    env = {**os.environ, "GATEWAY_API_KEYS": API_KEY, "GATEWAY_MAX_HEADER_BYTES": "2000"}
    process = subprocess.Popen(
        [sys.executable, "-m", "reference_impl", "--port", "0", "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        url = re.match(r"Gateway \(reference_impl\) on (http://\S+)", process.stdout.readline())[1]
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(
                    f"{url}/v1/documents", headers={"Authorization": "Bearer " + "k" * 3000}
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the workers did not start"
                time.sleep(0.1)
        assert response.status_code == 431 and response.json()["code"] == "headers_too_large"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert "Traceback" not in output, output
