"""The demo page resumes a dropped SSE answer, in a real Chromium, with no second model call.

Between the browser and the gateway runs a small TCP relay that the test can cut, as a flaky
network would: every open connection is closed at once, mid-answer. The page must pick the
answer up where it stopped (`GET /v1/ask/stream/{id}` with `Last-Event-ID`) and show it whole,
and the gateway's meters must show one model call.
"""

from __future__ import annotations

import re
import socket
import threading

import pytest
from browser import needs_chromium, screenshot
from playwright.sync_api import expect
from support import API_KEY, QUESTION

pytestmark = [needs_chromium, pytest.mark.timeout(60)]

MODEL = {"model": "fake-docqa"}


class CuttableRelay:
    """A TCP relay on a loopback port of its own to `target`, whose connections `cut()`
    closes all at once (both sides), like a network that drops."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        with self.lock:
            dropped, self.open = self.open, []
        for connection in dropped:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()

    def close(self) -> None:
        self.listener.close()
        self.cut()


@pytest.fixture
def relay_to():
    relays = []

    def start(gateway) -> CuttableRelay:
        relay = CuttableRelay(int(gateway.url.rsplit(":", 1)[1]))
        relays.append(relay)
        return relay

    yield start
    for relay in relays:
        relay.close()


def test_a_dropped_answer_resumes_on_the_page_with_no_second_model_call(
    start_gateway, relay_to, page
):
    gateway = start_gateway(fake_tokens_per_second=20.0, resume_grace_seconds=10.0)
    relay = relay_to(gateway)
    page.goto(relay.url + "/")
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_label("API key").press("Tab")
    expect(page.get_by_label("Document", exact=True)).to_have_value(QUESTION["document_id"])
    page.get_by_label("Question").fill(QUESTION["question"])
    page.get_by_label("Max tokens").fill("60")
    page.get_by_role("button", name="Ask").click()
    turn = page.locator("#turns > li").first
    expect(page.locator("#fig-tokens")).to_have_text(re.compile(r"^([5-9]|\d\d)$"))
    assert turn.get_attribute("data-state") == "streaming"
    relay.cut()  # the network drops every connection, mid-answer
    expect(turn).to_have_attribute("data-state", "ended", timeout=20_000)
    assert int(turn.get_attribute("data-resumes")) >= 1
    expect(turn.locator(".summary")).to_contain_text("resumed")
    screenshot(page, "sse-resumed")
    # One model call, and the page shows the answer whole: no token lost, none twice.
    assert gateway.metric("gateway_model_requests_total", **MODEL) == 1
    assert gateway.metric("gateway_stream_cancellations_total", reason="client_disconnect") == 0
    generated = gateway.metric("gateway_model_tokens_generated_total", **MODEL)
    assert int(page.locator("#fig-tokens").inner_text()) == generated
    answer = gateway.client().post("/v1/ask", json={**QUESTION, "max_tokens": 60}).json()
    assert turn.locator(".answer").inner_text() == answer["answer"]
    # Only the browser's own report of the cut connection, nothing from the page's code.
    errors = [str(getattr(m, "text", m)) for m in page.console_errors]
    assert [e for e in errors if "ERR_" not in e] == [], errors
