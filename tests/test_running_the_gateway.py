"""Running the gateway: the background server of notebooks and tests, and the command line."""

from __future__ import annotations

import contextlib
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
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support import API_KEY, QUESTION

ROOT = Path(__file__).resolve().parent.parent


def hello_app(text: str) -> Starlette:
    return Starlette(routes=[Route("/", lambda request: PlainTextResponse(text))])


def test_starting_a_server_under_a_running_name_replaces_it(impl):
    BackgroundServer = impl.background.BackgroundServer
    first = BackgroundServer(hello_app("first"), name="rerun-cell").start()
    old_url = first.url
    second = BackgroundServer(hello_app("second"), name="rerun-cell").start()
    try:
        assert httpx.get(second.url).text == "second"
        with pytest.raises(httpx.ConnectError):
            httpx.get(old_url, timeout=2)
        assert BackgroundServer.running["rerun-cell"] is second
    finally:
        second.stop()
    assert "rerun-cell" not in BackgroundServer.running


def test_stopping_resets_sse_starlettes_process_wide_exit_flag(impl):
    from sse_starlette.sse import AppStatus

    server = impl.background.BackgroundServer(hello_app("x"), name="flag").start()
    AppStatus.should_exit = True  # what a shutdown sets, for every later stream in the process
    server.stop()
    assert AppStatus.should_exit is False


def test_an_app_that_cannot_start_is_reported(impl):
    async def broken(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            raise RuntimeError("no start for you")

    with pytest.raises(RuntimeError):
        impl.background.BackgroundServer(broken, name="broken", lifespan="on").start(timeout=5)


def start_cli(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "course.serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        start_new_session=True,
    )
    first_line = process.stdout.readline()
    return process, first_line


@pytest.mark.timeout(60)
def test_the_command_line_serves_the_gateway_and_prints_url_but_not_its_key():
    process, line = start_cli("--api-keys", "cli-key", "--fake-tokens-per-second", "500")
    try:
        match = re.match(r"Gateway \(reference_impl\) on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        url = match.group(1)
        example = process.stdout.readline()
        # A configured key stays off the terminal: the example names a placeholder.
        assert "Bearer <your key>" in example and "cli-key" not in example
        deadline = time.monotonic() + 20
        while True:  # the port is printed just before uvicorn starts serving
            try:
                response = httpx.post(
                    f"{url}/v1/ask", json=QUESTION, headers={"Authorization": "Bearer cli-key"}
                )
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert response.status_code == 200 and response.json()["stop_reason"] == "end_turn"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def test_the_command_line_follows_lab_impl_and_refuses_bad_settings():
    process, line = start_cli(env={"LAB_IMPL": "labs"})
    try:
        assert line.startswith("Gateway (labs) on http://127.0.0.1:")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    bad = subprocess.run(
        [sys.executable, "-m", "course.serve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**os.environ, "GATEWAY_MAX_STREAM_SECONDS": "soon"},
    )
    assert bad.returncode == 2 and "cannot start the gateway" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.timeout(60)
def test_a_client_that_stops_reading_is_dropped_after_the_send_timeout(start_gateway):
    gateway = start_gateway(
        fake_behavior="runaway",
        fake_tokens_per_second=50_000,
        max_tokens_cap=10_000_000,
        send_timeout_seconds=0.3,
        max_stream_seconds=60,
        tokens_per_minute=10**9,
    )
    host, port = gateway.url.removeprefix("http://").split(":")
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills quickly
    client.connect((host, int(port)))
    body = '{"question": "q", "document_id": "server-sent-events", "max_tokens": 5000000}'
    client.sendall(
        f"POST /v1/ask/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode()
    )
    try:
        assert client.recv(64).startswith(b"HTTP/1.1 200")
        # Never read again: the server's sends block, and the send timeout must end the stream.
        gateway.wait_for_metric("gateway_streams_active", 0, timeout=40)
    finally:
        client.close()
    assert gateway.metric("gateway_stream_cancellations_total", reason="send_timeout") == 1
    assert gateway.metric("gateway_stream_cancellations_total", reason="client_disconnect") == 0
    assert gateway.metric("gateway_model_tokens_generated_total", model="fake-docqa") > 0


def test_permessage_deflate_is_off_even_when_the_client_offers_it(start_gateway):
    from websockets.sync.client import connect

    gateway = start_gateway()
    url = gateway.url.replace("http://", "ws://") + "/v1/chat"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with connect(url, additional_headers=headers, compression="deflate") as connection:
        assert connection.protocol.extensions == []
        connection.send(json.dumps({"type": "ping"}))
        assert json.loads(connection.recv(timeout=10)) == {"type": "pong"}


@pytest.mark.timeout(60)
def test_the_command_line_ends_open_answers_with_an_error_then_1012_on_sigterm():
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    process, line = start_cli(
        "--api-keys", "cli-key", "--fake-behavior", "stall", "--log-level", "warning"
    )
    try:
        url = re.match(r"Gateway \(reference_impl\) on (http://\S+)", line).group(1)
        ws_url = url.replace("http://", "ws://") + "/v1/chat"
        deadline = time.monotonic() + 20
        while True:  # the port is printed just before uvicorn starts serving
            try:
                connection = connect(
                    ws_url, additional_headers={"Authorization": "Bearer cli-key"}, compression=None
                )
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        with connection:
            connection.send(json.dumps({"type": "ask", "id": "q1", **QUESTION}))
            assert json.loads(connection.recv(timeout=10))["type"] == "start"
            assert json.loads(connection.recv(timeout=10))["type"] == "delta"
            os.killpg(process.pid, signal.SIGTERM)
            messages = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    messages.append(json.loads(connection.recv(timeout=20)))
        last = messages[-1]
        assert last["type"] == "error" and last["problem"]["code"] == "shutting_down"
        assert closed.value.rcvd.code == 1012
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


@pytest.mark.timeout(60)
def test_ctrl_c_stops_the_command_line_gateway_with_one_line_and_no_traceback():
    process, line = start_cli()
    assert line.startswith("Gateway (reference_impl) on http://127.0.0.1:"), line
    url = line.split(" on ", 1)[1].split()[0]
    deadline = time.monotonic() + 20
    while True:  # serving: Ctrl-C now reaches uvicorn, not the start-up
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                break
        except httpx.ConnectError:
            pass
        assert time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert output.rstrip().splitlines()[-1] == "Gateway stopped (Ctrl-C).", output
