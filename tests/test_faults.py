"""Faults: a model that misbehaves, a client that leaves or stops reading, a server told to stop.

After each, the gateway is back to rest: no stream open, no slot or token reservation held,
and nothing in the server's log but expected lines.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time

import httpx
import httpx_sse
import pytest
from server_process import API_KEY, ServerProcess
from support import QUESTION

from reference_impl.contract import validate as contract

GRACE = 5.0
STREAMS = 50
CHATS = 50


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server_log():
    """What the in-process server logs: uvicorn's loggers do not reach the root logger."""
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("uvicorn", "gateway", "sse_starlette")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler.records
    for logger in loggers:
        logger.removeHandler(handler)


def at_rest(gateway, log: list[logging.LogRecord]) -> None:
    """No stream open, no slot held, the whole token budget free again; no error logged."""
    gateway.wait_for_metric("gateway_streams_active", 0, timeout=20)
    admission = gateway.app.state.gateway.admission.admission  # this worker's memory
    assert admission.total_active == 0 and not any(admission.active.values())
    reservations = [r for budget in admission.budgets.values() for r in budget.entries]
    assert all(r.settled for r in reservations), "a reservation was never settled"
    assert gateway.metric("gateway_ws_connections_active") == 0
    unexpected = [r for r in log if r.levelno >= logging.ERROR or r.exc_info]
    assert not unexpected, [r.getMessage() for r in unexpected]


@pytest.mark.parametrize(
    ("behavior", "code"),
    [("throttled", "model_error"), ("stall", "idle_timeout"), ("fail_midstream", "model_error")],
)
def test_a_misbehaving_model_ends_every_stream_with_one_error_and_frees_everything(
    start_gateway, server_log, behavior, code
):
    gateway = start_gateway(fake_behavior=behavior, idle_timeout_seconds=0.3)
    result = gateway.client().stream(QUESTION)
    if result.response.status_code != 200:  # refused before the first token: a real status
        assert result.response.json()["code"] in (code, "rate_limited", "overloaded")
    else:
        assert result.names[-1] == "error" and result.data(-1)["code"] == code
        assert result.names.count("error") == 1
    at_rest(gateway, server_log)


def test_a_runaway_model_is_cut_and_a_client_that_leaves_stops_the_model(start_gateway, server_log):
    gateway = start_gateway(fake_behavior="runaway", max_stream_seconds=0.5)
    result = gateway.client().stream(QUESTION)
    assert result.names[-1] == "error" and result.data(-1)["code"] == "stream_timeout"
    at_rest(gateway, server_log)
    gateway = start_gateway(
        fake_behavior="runaway", max_stream_seconds=60, fake_tokens_per_second=100
    )
    body = {**QUESTION, "max_tokens": 200}  # 2 s of tokens, were the model left running
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        headers = {"Authorization": "Bearer test-key"}
        with http.stream("POST", "/v1/ask/stream", json=body, headers=headers) as response:
            for line in response.iter_lines():
                if line.startswith("event: delta"):
                    break  # and leave
    at_rest(gateway, server_log)
    # The meter: the model made far fewer tokens than it would have, had it not been stopped.
    assert gateway.metric("gateway_model_tokens_generated_total", model="fake-docqa") < 100
    assert gateway.metric("gateway_stream_cancellations_total", reason="client_disconnect") == 1


def test_an_sse_client_that_stops_reading_is_dropped_and_everything_freed(
    start_gateway, server_log
):
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
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect((host, int(port)))
    body = json.dumps({**QUESTION, "max_tokens": 5_000_000})
    client.sendall(
        f"POST /v1/ask/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-key\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode()
    )
    try:
        assert client.recv(64).startswith(b"HTTP/1.1 200")
        at_rest(gateway, server_log)
        # The server closed the connection too: what was sent before is there, then the end.
        client.settimeout(20)
        while client.recv(1 << 16):
            pass
    finally:
        client.close()
    assert gateway.metric("gateway_stream_cancellations_total", reason="send_timeout") == 1
    unexpected = [r for r in server_log if r.levelno >= logging.ERROR or r.exc_info]
    assert not unexpected, [r.getMessage() for r in unexpected]


# --- SIGTERM: every open stream is told, and the process exits within its grace period --------


async def open_sse(url: str, ready: asyncio.Event, opened: list) -> list[dict]:
    events: list[dict] = []
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(timeout=60) as http:
        async with httpx_sse.aconnect_sse(
            http, "POST", f"{url}/v1/ask/stream", json=QUESTION, headers=headers
        ) as source:
            assert source.response.status_code == 200
            try:
                async for event in source.aiter_sse():
                    events.append({"event": event.event, "data": event.data, "id": event.id})
                    if event.event == "delta" and len(opened) < STREAMS + 1:
                        opened.append(1)
                        if len(opened) >= STREAMS:
                            ready.set()
            except httpx.RemoteProtocolError:
                events.append({"event": "cut", "data": "", "id": ""})
    return events


async def open_chat(ws_url: str, ready: asyncio.Event, opened: list) -> tuple[list, int | None]:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    messages: list[dict] = []
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with connect(ws_url, additional_headers=headers, compression=None) as ws:
        await ws.send(json.dumps({"type": "ask", "id": "q1", **QUESTION}))
        try:
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 60))
                messages.append(message)
                if (
                    message["type"] == "delta"
                    and sum(1 for m in messages if m["type"] == "delta") == 1
                ):
                    opened.append(1)
                    if len(opened) >= CHATS:
                        ready.set()
        except ConnectionClosed:
            pass
    return messages, ws.close_code


@pytest.mark.timeout(120)
def test_sigterm_ends_every_open_stream_with_shutting_down_and_exits_within_the_grace():
    server = ServerProcess(
        fake_behavior="stall",
        idle_timeout_seconds=60,
        shutdown_grace_seconds=GRACE,
        max_concurrent_streams=200,
        max_total_streams=256,
        ws_max_connections_per_key=200,
        rate_limit_rps=1000,
        rate_limit_burst=1000,
        ws_messages_per_second=1000,
        tokens_per_minute=10**9,
    )

    async def scenario():
        sse_ready, chat_ready = asyncio.Event(), asyncio.Event()
        sse_opened, chats_opened = [], []
        ws_url = server.url.replace("http://", "ws://") + "/v1/chat"
        streams = [
            asyncio.create_task(open_sse(server.url, sse_ready, sse_opened)) for _ in range(STREAMS)
        ]
        chats = [
            asyncio.create_task(open_chat(ws_url, chat_ready, chats_opened)) for _ in range(CHATS)
        ]
        await asyncio.wait_for(asyncio.gather(sse_ready.wait(), chat_ready.wait()), 60)
        stopped_at = time.monotonic()
        server.terminate()
        stream_results = await asyncio.gather(*streams)
        chat_results = await asyncio.gather(*chats)
        return stopped_at, stream_results, chat_results

    try:
        stopped_at, stream_results, chat_results = asyncio.run(scenario())
        server.process.wait(timeout=GRACE + 5)
        exited_within = time.monotonic() - stopped_at
    finally:
        log = server.stop()
    assert exited_within < GRACE + 5
    for events in stream_results:
        assert events[-1]["event"] == "error", events[-3:]
        assert json.loads(events[-1]["data"])["code"] == "shutting_down"
        assert [e["event"] for e in events].count("error") == 1
        contract.validate_stream(events)
    for messages, close_code in chat_results:
        assert messages[-1]["type"] == "error", messages[-3:]
        assert messages[-1]["problem"]["code"] == "shutting_down"
        assert close_code == 1012
    assert "Traceback" not in log, log


@pytest.mark.timeout(60)
def test_sigterm_finishes_within_the_grace_while_clients_hold_a_body_or_stop_reading():
    from websockets.sync.client import connect

    grace = 2.0
    server = ServerProcess(
        fake_behavior="runaway",
        fake_tokens_per_second=50_000,
        max_tokens_cap=10_000_000,
        max_stream_seconds=60,
        tokens_per_minute=10**9,
        shutdown_grace_seconds=grace,
        request_read_timeout_seconds=60,  # the body's own deadline is not what ends this
        send_timeout_seconds=60,
    )
    half = socket.create_connection(("127.0.0.1", server.port))
    half.sendall(
        f"POST /v1/ask HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode()
    )
    ws_url = server.url.replace("http://", "ws://") + "/v1/chat"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    # max_queue=1: the client stops reading from its socket once one message waits unread.
    ws = connect(ws_url, additional_headers=headers, compression=None, max_queue=1).__enter__()
    try:
        ws.send(json.dumps({"type": "ask", "id": "q1", **QUESTION, "max_tokens": 5_000_000}))
        server.wait_for_metric("gateway_streams_active", 1)
        time.sleep(0.5)  # the harder case: buffers full of unread answer (the bound holds anyway)
        stopped_at = time.monotonic()
        server.terminate()
        server.process.wait(timeout=grace + 5)
        assert time.monotonic() - stopped_at < grace + 5
    finally:
        half.close()
        ws.socket.close()
        log = server.stop()
    assert "Traceback" not in log, log


@pytest.mark.timeout(60)
def test_sigterm_answers_requests_still_waiting_for_the_model_with_503_shutting_down():
    grace = 3.0
    server = ServerProcess(
        fake_first_token_seconds=30,  # longer than the grace period
        first_token_timeout_seconds=60,
        shutdown_grace_seconds=grace,
    )

    async def scenario():
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as http:
            waiting = [
                asyncio.create_task(http.post("/v1/ask/stream", json=QUESTION)),
                asyncio.create_task(http.post("/v1/ask", json=QUESTION)),
            ]
            deadline = time.monotonic() + 20
            while server.metric("gateway_streams_active") < 2:  # both admitted, both waiting
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            server.terminate()
            return await asyncio.gather(*waiting)

    try:
        stopped_at = time.monotonic()
        responses = asyncio.run(scenario())
        server.process.wait(timeout=grace + 5)
        assert time.monotonic() - stopped_at < grace + 5 + 20
    finally:
        log = server.stop()
    for response in responses:
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "shutting_down"
        path = "/v1/ask/stream" if response.request.url.path.endswith("stream") else "/v1/ask"
        contract.validate_response(
            "POST", path, response.status_code, response.headers, response.content
        )
    assert "Traceback" not in log, log
