"""Clients that leave or stop reading: whatever they do, the model stops and the slot is freed.

Each test drives the real gateway on uvicorn over loopback with a client that misbehaves the
way a real one does: it hangs up while it waits for the whole answer, hangs up before the first
token of a stream, or opens a chat and never reads again. Waits are metrics reaching a value
within a deadline, never sleeps.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading

import pytest
from support import API_KEY, QUESTION
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

pytestmark = pytest.mark.timeout(60)

MODEL = "fake-docqa"


def hang_up_after_sending(gateway, path: str, body: dict) -> None:
    """POST `body` over a raw socket, wait until the gateway has admitted it, then hang up."""
    host, port = gateway.url.removeprefix("http://").split(":")
    data = json.dumps(body)
    with socket.create_connection((host, int(port))) as client:
        client.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n{data}".encode()
        )
        gateway.wait_for_metric("gateway_streams_active", 1)


def test_a_client_that_leaves_a_whole_answer_stops_the_model_and_frees_the_slot(start_gateway):
    # 20 tokens a second and 1000 to go: the answer would take 50 s.
    gateway = start_gateway(fake_tokens_per_second=20, max_tokens_cap=1000)
    hang_up_after_sending(gateway, "/v1/ask", {**QUESTION, "max_tokens": 1000})
    gateway.wait_for_metric("gateway_streams_active", 0, timeout=10)
    gateway.wait_for_metric("gateway_stream_cancellations_total", 1, reason="client_disconnect")
    generated = gateway.metric("gateway_model_tokens_generated_total", model=MODEL)
    assert generated < 1000
    # The model has stopped: nothing more is generated while the next ask runs.
    response = gateway.client().post("/v1/ask", json={**QUESTION, "max_tokens": 3})
    assert response.json()["stop_reason"] == "max_tokens"
    gateway.wait_for_metric("gateway_streams_active", 0)
    assert gateway.metric("gateway_model_tokens_generated_total", model=MODEL) == generated + 3


def test_a_stream_whose_client_leaves_before_the_first_token_frees_its_slot(start_gateway):
    # The first token comes after 30 s; the first-token timeout is longer still.
    gateway = start_gateway(fake_first_token_seconds=30, first_token_timeout_seconds=40)
    hang_up_after_sending(gateway, "/v1/ask/stream", QUESTION)
    gateway.wait_for_metric("gateway_streams_active", 0, timeout=10)
    gateway.wait_for_metric("gateway_stream_cancellations_total", 1, reason="client_disconnect")
    assert gateway.metric("gateway_model_tokens_generated_total", model=MODEL) == 0


def test_a_chat_client_that_stops_reading_is_closed_after_the_send_timeout(start_gateway):
    gateway = start_gateway(
        fake_behavior="runaway",
        fake_tokens_per_second=50_000,
        max_tokens_cap=10_000_000,
        tokens_per_minute=10**9,
        send_timeout_seconds=0.3,
        max_stream_seconds=60,
    )
    host, port = gateway.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills quickly
    sock.connect((host, int(port)))
    with connect(
        f"{gateway.server.ws_url}/v1/chat",
        sock=sock,
        additional_headers={"Authorization": f"Bearer {API_KEY}"},
        compression=None,
        max_queue=1,  # the client stops taking frames off the socket once one is waiting
        open_timeout=10,
    ) as ws:
        ask = {
            "type": "ask",
            "id": "q1",
            "question": "q",
            "document_id": "server-sent-events",
            "max_tokens": 5_000_000,
        }
        ws.send(json.dumps(ask))
        # Never read: the gateway's sends block, and its send timeout must end the answer.
        gateway.wait_for_metric("gateway_streams_active", 0, timeout=30)
        gateway.wait_for_metric("gateway_ws_connections_active", 0, timeout=30)
        assert gateway.metric("gateway_stream_cancellations_total", reason="send_timeout") == 1
        # The socket is closed: what was queued can still be read, then it ends. The 1008 close
        # frame waits behind the unread messages and may be dropped with them when the server
        # tears the connection down; when it does arrive, it says 1008.
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=30)
    assert closed.value.rcvd is None or closed.value.rcvd.code == 1008


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# Its socket is torn down, not closed with a handshake, so `connect` is not a context manager.
@pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager")
def test_a_chat_client_that_keeps_sending_but_never_reads_is_closed_without_a_traceback(
    start_gateway,
):
    gateway = start_gateway(
        send_timeout_seconds=0.3, ws_messages_per_second=100_000, ws_message_burst=100_000
    )
    captured = Captured()
    for name in ("uvicorn.error", "gateway"):
        logging.getLogger(name).addHandler(captured)
    host, port = gateway.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    stop = threading.Event()
    ws = connect(
        f"{gateway.server.ws_url}/v1/chat",
        sock=sock,
        additional_headers={"Authorization": f"Bearer {API_KEY}"},
        compression=None,
        max_queue=1,
        open_timeout=10,
    )

    def send_forever() -> None:
        # Each message off the contract gets an `error` back, which nobody reads.
        with contextlib.suppress(ConnectionClosed, OSError):
            while not stop.is_set():
                ws.send(json.dumps({"type": "nope", "id": "x" * 4000}))

    sender = threading.Thread(target=send_forever, daemon=True)
    try:
        sender.start()
        gateway.wait_for_metric("gateway_ws_connections_active", 0, timeout=30)
    finally:
        stop.set()
        # Not a closing handshake: this client's sender may be blocked mid-frame.
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        sender.join(timeout=10)
        for name in ("uvicorn.error", "gateway"):
            logging.getLogger(name).removeHandler(captured)
    assert not [r for r in captured.records if r.exc_info or r.levelno >= logging.ERROR]
