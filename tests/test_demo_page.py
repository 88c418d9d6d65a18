"""The demo page at `/`, driven in a real Chromium against a real gateway.

The page is a client like any other: these tests watch what a person sees (tokens arriving,
figures, problems by code) and check on the gateway's own meters that the page's Stop and
Cancel really stop the model, and that it never retries by itself.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from browser import needs_chromium, screenshot
from playwright.sync_api import expect
from support import API_KEY

pytestmark = [needs_chromium, pytest.mark.timeout(60)]

GENERATED = "gateway_model_tokens_generated_total"
MODEL = {"model": "fake-docqa"}
ROOT = Path(__file__).resolve().parent.parent
FOLLOW_UP = "And how long can it last?"


def page_errors(page) -> list[str]:
    """Errors the page's own code caused. Chromium itself logs every answer with an error
    status ("Failed to load resource: ... status of 429"), which a refusal under test is."""
    texts = [str(getattr(message, "text", message)) for message in page.console_errors]
    return [
        text for text in texts if not re.match(r"Failed to load resource: .* status of 4", text)
    ]


def open_page(page, gateway, *, key: str | None = API_KEY):
    page.goto(gateway.url + "/")
    if key is not None:
        page.get_by_label("API key").fill(key)
        page.get_by_label("API key").press("Tab")  # `change`: the page lists the documents
    expect(page.get_by_label("Document", exact=True)).to_have_value("api-gateway-websocket-limits")
    return page


def ask(page, question: str | None = None):
    if question is not None:
        page.get_by_label("Question").fill(question)
    page.get_by_role("button", name="Ask").click()


def turn(page, number: int = 1):
    return page.locator("#turns > li").nth(number - 1)


def generated(gateway) -> float:
    return gateway.metric(GENERATED, **MODEL)


def assert_meter_still(gateway, seconds: float = 0.5) -> None:
    """The cost meter does not move over a window long enough for a running model to add
    several tokens: the model was stopped, not merely hidden from the page."""
    before = generated(gateway)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert generated(gateway) == before, "the model kept generating after the page stopped"
        time.sleep(0.01)


def test_the_page_loads_without_a_key_and_offers_the_course_key_only_by_default(
    start_gateway, page
):
    gateway = start_gateway(api_keys=("course-key",))
    response = page.goto(gateway.url + "/")
    assert response.status == 200
    expect(page.get_by_label("API key")).to_have_value("course-key")
    expect(page.get_by_label("Document", exact=True)).to_have_value("api-gateway-websocket-limits")
    assert page.evaluate("sessionStorage.length") == 0  # nothing stored until the person types

    other = start_gateway()  # keys of its own: the page must not show any of them
    page.goto(other.url + "/")
    expect(page.get_by_label("API key")).to_have_value("")
    page.get_by_label("API key").fill(API_KEY)
    page.reload()
    expect(page.get_by_label("API key")).to_have_value(API_KEY)  # kept in sessionStorage
    assert API_KEY not in page.url
    assert page.console_errors == []


def test_the_first_token_is_on_screen_long_before_the_model_sends_its_last(start_gateway, page):
    gateway = start_gateway(fake_tokens_per_second=20.0)
    open_page(page, gateway)
    ask(page)
    answer = turn(page).locator(".answer")
    expect(answer).not_to_be_empty()
    # Seen while the model is still streaming: the gateway has not finished the answer.
    assert gateway.metric("gateway_streams_active") == 1
    assert turn(page).get_attribute("data-state") == "streaming"
    screenshot(page, "sse-streaming")
    expect(turn(page)).to_have_attribute("data-state", "ended", timeout=20_000)
    first = int(turn(page).get_attribute("data-first-token-at"))
    ended = int(turn(page).get_attribute("data-ended-at"))
    tokens = int(page.locator("#fig-tokens").inner_text())
    # At 20 tokens/s the last token comes (tokens - 1) / 20 s after the first one.
    assert ended - first >= (tokens - 1) * 50 * 0.8, (first, ended, tokens)
    expect(page.locator("#fig-stop")).to_have_text("end_turn")
    expect(page.locator("#fig-ttft")).to_have_text(re.compile(r"^\d+ ms$"))
    expect(page.locator("#fig-rate")).to_have_text(re.compile(r"^\d+\.\d$"))
    expect(page.locator("#fig-limits")).to_contain_text("max_tokens 256")
    assert generated(gateway) == tokens
    background = "getComputedStyle(document.body).backgroundColor"
    light = page.evaluate(background)
    screenshot(page, "sse-ended-light")
    page.emulate_media(color_scheme="dark")
    assert page.evaluate(background) != light  # the page follows the system's dark mode
    screenshot(page, "sse-ended-dark")
    page.set_viewport_size({"width": 390, "height": 844})
    # Readable at phone width: one column, nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "sse-ended-dark-phone")
    assert page.console_errors == []


def test_stop_aborts_the_sse_request_and_the_model_stops(start_gateway, page):
    gateway = start_gateway(fake_behavior="runaway", fake_tokens_per_second=50.0)
    open_page(page, gateway)
    ask(page)
    expect(page.locator("#fig-tokens")).to_have_text(re.compile(r"^[1-9]\d+$"))  # 10 or more
    page.get_by_role("button", name="Stop").click()
    expect(turn(page)).to_have_attribute("data-state", "ended")
    expect(page.locator("#fig-stop")).to_have_text("stopped (request aborted)")
    gateway.wait_for_metric("gateway_streams_active", 0)
    gateway.wait_for_metric("gateway_stream_cancellations_total", 1, reason="client_disconnect")
    assert_meter_still(gateway)
    screenshot(page, "sse-stopped")
    assert page.console_errors == []


def test_cancel_in_chat_stops_the_model_and_a_follow_up_uses_the_conversation(start_gateway, page):
    gateway = start_gateway(fake_tokens_per_second=30.0, demo_controls=True)
    open_page(page, gateway)
    page.get_by_label("Chat (WebSocket)").check()
    ask(page)
    expect(turn(page, 1)).to_have_attribute("data-state", "ended", timeout=20_000)
    first_input = int(turn(page, 1).get_attribute("data-input-tokens"))
    first_answer = turn(page, 1).locator(".answer").inner_text()

    ask(page, FOLLOW_UP)
    expect(turn(page, 2)).to_have_attribute("data-state", "ended", timeout=20_000)
    second_answer = turn(page, 2).locator(".answer").inner_text()
    assert "does not answer" not in second_answer  # found through the first question
    # The follow-up named no document, yet the prompt holds the document and the first turn.
    second_input = int(turn(page, 2).get_attribute("data-input-tokens"))
    assert second_input > first_input + len(first_answer.split()) // 2
    screenshot(page, "chat-follow-up")

    # Cancel: the runaway model streams until the page cancels it.
    switched = gateway.client().http.put(
        "/demo/fake-model", json={"behavior": "runaway", "tokens_per_second": 50}
    )
    assert switched.status_code == 200
    ask(page, "What closes a connection?")
    expect(turn(page, 3).locator(".answer")).not_to_be_empty()
    page.get_by_role("button", name="Cancel").click()
    expect(turn(page, 3)).to_have_attribute("data-stop-reason", "cancelled")
    gateway.wait_for_metric("gateway_stream_cancellations_total", 1, reason="cancelled")
    gateway.wait_for_metric("gateway_streams_active", 0)
    assert_meter_still(gateway)
    expect(page.locator("#turns > li")).to_have_count(3)
    screenshot(page, "chat-cancelled")
    assert page.console_errors == []


def test_rate_limited_shows_a_countdown_and_never_retries_by_itself(start_gateway, page):
    # Burst 2: the document list and one answer; the next ask waits 1 / 0.4 = 2.5 s.
    gateway = start_gateway(rate_limit_rps=0.4, rate_limit_burst=2)
    asks = []
    page.on("request", lambda r: r.url.endswith("/v1/ask/stream") and asks.append(time.monotonic()))
    open_page(page, gateway)
    ask(page)
    expect(turn(page, 1)).to_have_attribute("data-state", "ended", timeout=20_000)
    ask(page)
    problem = turn(page, 2).locator(".problem")
    expect(problem).to_contain_text("rate_limited")
    countdown = turn(page, 2).locator(".countdown")
    expect(countdown).to_have_text(re.compile(r"You can try again in \d s\."))
    expect(page.get_by_role("button", name="Ask")).to_be_disabled()
    screenshot(page, "rate-limited-countdown")
    retry = turn(page, 2).get_by_role("button", name="Try again")
    expect(retry).to_be_visible(timeout=10_000)  # the wait is over: a button, not a request
    expect(countdown).to_have_text("You can try again now.")
    assert len(asks) == 2, "the page sent a request by itself during the wait"
    screenshot(page, "rate-limited-retry-offered")
    retry.click()
    expect(turn(page, 3)).to_have_attribute("data-state", "ended", timeout=20_000)
    assert len(asks) == 3
    assert page_errors(page) == []


def test_a_stream_cut_by_max_stream_seconds_shows_stream_timeout_and_the_partial_answer(
    start_gateway, page
):
    gateway = start_gateway(
        fake_behavior="runaway", fake_tokens_per_second=30.0, max_stream_seconds=1.0
    )
    open_page(page, gateway)
    ask(page)
    expect(turn(page)).to_have_attribute("data-state", "failed", timeout=10_000)
    expect(turn(page).locator(".problem")).to_contain_text("stream_timeout")
    expect(turn(page).locator(".answer")).not_to_be_empty()
    expect(page.locator("#fig-stop")).to_have_text("error: stream_timeout")
    assert int(page.locator("#fig-tokens").inner_text()) > 5
    # Not retryable: trying the same request again would be cut again.
    expect(turn(page).get_by_role("button", name="Try again")).to_be_hidden()
    screenshot(page, "stream-timeout")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "stream-timeout-phone")
    assert page.console_errors == []


@pytest.mark.parametrize(
    ("settings", "body", "code"),
    [
        ({}, {"max_tokens": "5000"}, "max_tokens_exceeded"),
        ({"max_request_bytes": 2000}, {"paste": "x " * 2000}, "request_too_large"),
        ({}, {"key": "wrong-key"}, "unauthorized"),
    ],
    ids=["max_tokens_exceeded", "request_too_large", "unauthorized"],
)
def test_each_refusal_is_shown_by_its_code(start_gateway, page, settings, body, code):
    gateway = start_gateway(**settings)
    open_page(page, gateway)
    if "max_tokens" in body:
        page.get_by_label("Max tokens").fill(body["max_tokens"])
    if "paste" in body:
        page.get_by_label("Document", exact=True).select_option(label="Paste a document…")
        page.get_by_label("Pasted document").fill(body["paste"])
    if "key" in body:
        page.get_by_label("API key").fill(body["key"])
    ask(page)
    expect(turn(page).locator(".problem .code")).to_have_text(code)
    expect(turn(page).get_by_role("button", name="Try again")).to_be_hidden()
    screenshot(page, code)
    assert page_errors(page) == []


def test_a_closed_chat_socket_is_shown_with_its_close_code(start_gateway, page):
    gateway = start_gateway(ws_max_message_bytes=1000)
    open_page(page, gateway)
    page.get_by_label("Chat (WebSocket)").check()
    page.get_by_label("Document", exact=True).select_option(label="Paste a document…")
    # Over the 1000-byte limit but under twice it: the chat reads it and says why (a message
    # over twice the limit is refused by the server unread, with 1009 and no error).
    page.get_by_label("Pasted document").fill("A long pasted document. " * 55)
    ask(page)
    # The gateway says why before it closes; the page shows that code and the close code.
    expect(turn(page).locator(".problem .code")).to_have_text("request_too_large")
    expect(turn(page).locator(".problem")).to_contain_text("1009")
    expect(page.locator("#connection")).to_contain_text("code 1009 (message too big)")
    screenshot(page, "chat-socket-closed")
    assert page_errors(page) == []


def test_the_presenter_panel_exists_only_with_the_demo_flag(start_gateway, page):
    off = start_gateway()
    open_page(page, off)
    expect(page.locator("#presenter")).to_be_hidden()
    refused = off.client().http.put(
        "/demo/fake-model", json={"behavior": "stall", "tokens_per_second": 5}
    )
    assert refused.status_code == 404 and refused.json()["code"] == "not_found"

    on = start_gateway(demo_controls=True)
    open_page(page, on)
    expect(page.get_by_label("Behaviour")).to_have_value("normal")
    page.get_by_label("Behaviour").select_option("throttled")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#presenter-status")).to_contain_text("now throttled")
    ask(page)
    expect(turn(page).locator(".problem .code")).to_have_text("rate_limited")
    screenshot(page, "presenter-throttled")
    page.emulate_media(color_scheme="dark")
    screenshot(page, "presenter-throttled-dark")
    assert page_errors(page) == []


def test_every_control_has_an_accessible_name_and_the_answers_are_announced(start_gateway, page):
    gateway = start_gateway(demo_controls=True)
    open_page(page, gateway)
    snapshot = page.locator("body").aria_snapshot()
    for line in (
        '- textbox "API key"',
        '- group "Mode"',
        '- radio "Document Q&A (SSE)" [checked]',
        '- radio "Chat (WebSocket)"',
        '- combobox "Document"',
        '- textbox "Question"',
        '- spinbutton "Max tokens"',
        '- button "Ask"',
        '- button "Stop" [disabled]',
        '- combobox "Behaviour"',
        '- spinbutton "Tokens per second"',
        '- button "Apply"',
    ):
        assert line in snapshot, f"{line!r} not in\n{snapshot}"
    controls = page.locator("input, select, textarea, button").filter(visible=True)
    assert controls.count() >= 10
    for index in range(controls.count()):
        node = controls.nth(index).aria_snapshot()
        assert re.match(r'- \w+ "[^"]+"', node), f"a control without an accessible name: {node}"
    assert page.locator("#turns").get_attribute("aria-live") == "polite"

    # Keyboard alone: from the key field, Tab reaches the mode, the document, the question.
    page.get_by_label("API key").focus()
    for expected in ("mode-sse", "document", "question"):
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == expected
    page.keyboard.press("Enter")  # asks; Shift+Enter would start a new line
    expect(turn(page)).to_have_attribute("data-state", "ended", timeout=20_000)
    assert page.console_errors == []


def start_cli(*args: str) -> tuple[subprocess.Popen, list[str]]:
    """`python -m reference_impl` on a free port; its start-up lines up to the demo page's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "reference_impl", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    lines = []
    while not lines or "demo page:" not in lines[-1]:
        line = process.stdout.readline()
        assert line, f"the gateway exited: {lines}"
        lines.append(line)
    return process, lines


def stop_cli(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=20)


def get_when_up(url: str, **kwargs) -> httpx.Response:
    deadline = time.monotonic() + 20
    while True:  # the lines are printed just before uvicorn starts serving
        try:
            return httpx.get(url, **kwargs)
        except httpx.ConnectError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.05)


def test_the_command_line_links_the_page_and_demo_turns_the_panel_on():
    process, lines = start_cli("--demo")
    try:
        match = re.search(
            r"demo page: (http://127\.0\.0\.1:\d+)/  \(API key: course-key\)", lines[-1]
        )
        assert match, lines
        url = match.group(1)
        page = get_when_up(url + "/")
        assert page.status_code == 200 and 'data-demo-controls="on"' in page.text
        switched = httpx.put(
            url + "/demo/fake-model",
            json={"behavior": "stall", "tokens_per_second": 5},
            headers={"Authorization": "Bearer course-key"},
        )
        assert switched.json() == {"behavior": "stall", "tokens_per_second": 5.0}
    finally:
        stop_cli(process)

    process, lines = start_cli("--api-keys", "my-own-secret")
    try:
        assert "(API key: <your key>)" in lines[-1], lines
        url = re.search(r"(http://127\.0\.0\.1:\d+)/", lines[-1]).group(1)
        page = get_when_up(url + "/")
        assert "my-own-secret" not in page.text and 'data-demo-controls="off"' in page.text
    finally:
        stop_cli(process)


def test_the_page_and_the_presenter_switch_keep_to_the_contract(start_gateway):
    client = start_gateway(demo_controls=True).client()
    assert "<title>" in client.get("/").text
    assert client.get("/demo/assets/demo.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/demo/assets/demo.css").status_code == 200
    assert client.get("/demo/assets/other.js").json()["code"] == "not_found"
    setting = {"behavior": "runaway", "tokens_per_second": 25}
    assert client.request("PUT", "/demo/fake-model", json=setting).json() == setting
    bad = client.request("PUT", "/demo/fake-model", json={"behavior": "sleepy"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_request"
    anonymous = start_gateway(demo_controls=True).client(api_key=None)
    assert anonymous.get("/").status_code == 200  # the page itself needs no key
    assert anonymous.request("PUT", "/demo/fake-model", json=setting).status_code == 401
    bedrock_like = start_gateway(demo_controls=True, model="bedrock", bedrock_model_id="m")
    refused = bedrock_like.client().request("PUT", "/demo/fake-model", json=setting)
    assert refused.status_code == 404  # never for a real model, flag or not
