"""Resumable streams: a dropped SSE answer resumes where it stopped, with no second model call.

`GET /v1/ask/stream/{request_id}` with `Last-Event-ID` (or `?after=`) replays the events after
that id and continues live, to the same single terminal event. Every response is checked
against the contract, and the model-call and cost meters prove the model ran once. Real
servers on loopback, real SSE clients, a real redis-server for the variant across workers.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import httpx
import httpx_sse
import pytest
from support import API_KEY, QUESTION, ModelThatNeverWaits

from reference_impl.contract import validate as contract

pytestmark = pytest.mark.timeout(60)

MODEL = {"model": "fake-docqa"}
MODEL_CALLS = "gateway_model_requests_total"
GENERATED = "gateway_model_tokens_generated_total"
COST = "gateway_model_cost_dollars_total"
CANCELLED = "gateway_stream_cancellations_total"


@dataclass
class Dropped:
    """A stream the client left after `events` (parsed), knowing the answer's id."""

    request_id: str
    events: list[dict]

    @property
    def last_id(self) -> int:
        return int(self.events[-1]["id"])


def parsed(raw: bytes) -> list[dict]:
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=raw)
    return [
        {"event": e.event, "data": e.data, "id": e.id}
        for e in httpx_sse.EventSource(response).iter_sse()
    ]


def drop_after(gateway, body: dict, deltas: int, key: str = API_KEY) -> Dropped:
    """POST a stream, read `start` and `deltas` delta events, then close the connection."""
    headers = {"Authorization": f"Bearer {key}"}
    events = []
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as http:
        with httpx_sse.connect_sse(http, "POST", "/v1/ask/stream", json=body) as source:
            assert source.response.status_code == 200
            for event in source.iter_sse():
                events.append({"event": event.event, "data": event.data, "id": event.id})
                if event.event in ("end", "error"):
                    raise AssertionError("the answer ended before the client dropped it")
                if len(events) == deltas + 1:
                    break
    assert events[0]["event"] == "start"
    return Dropped(json.loads(events[0]["data"])["request_id"], events)


def resume(gateway, request_id: str, after: int | str | None = None, *, key=API_KEY, query=False):
    """GET the rest of an answer; the response (checked against the contract) and its events."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    params = {}
    if after is not None and query:
        params["after"] = str(after)
    elif after is not None:
        headers["Last-Event-ID"] = str(after)
    path = f"/v1/ask/stream/{request_id}"
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as http:
        response = http.get(path, params=params)
    contract.validate_response(
        "GET", path, response.status_code, response.headers, response.content
    )
    if response.status_code != 200:
        return response, []
    events = parsed(response.content)
    if after is not None and events:
        contract.validate_resumed_stream(events, after=int(after))
    return response, events


def text_of(events: list[dict]) -> str:
    return "".join(json.loads(e["data"])["text"] for e in events if e["event"] == "delta")


def terminal(events: list[dict]) -> list[dict]:
    return [e for e in events if e["event"] in ("end", "error")]


def whole_answer(gateway, body: dict) -> str:
    answer = gateway.client().post("/v1/ask", json=body)
    assert answer.status_code == 200
    return answer.json()["answer"]


# --- replay and live continuation --------------------------------------------------------------


def test_a_resume_replays_the_events_after_last_event_id_and_continues_live(start_gateway):
    gateway = start_gateway(fake_tokens_per_second=40.0, resume_grace_seconds=5.0)
    body = {**QUESTION, "max_tokens": 30}
    dropped = drop_after(gateway, body, deltas=3)
    assert gateway.metric("gateway_streams_active") == 1  # still streaming: the resume is live
    headers = {"Authorization": f"Bearer {API_KEY}", "Last-Event-ID": str(dropped.last_id)}
    rest, active_at_first_event = [], None
    url = f"/v1/ask/stream/{dropped.request_id}"
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as http:
        with httpx_sse.connect_sse(http, "GET", url) as source:
            assert source.response.status_code == 200
            assert source.response.headers["x-request-id"] == dropped.request_id
            for event in source.iter_sse():
                if active_at_first_event is None:
                    active_at_first_event = gateway.metric("gateway_streams_active")
                rest.append({"event": event.event, "data": event.data, "id": event.id})
    assert active_at_first_event == 1  # continued live, not replayed after the fact
    contract.validate_resumed_stream(rest, after=dropped.last_id)
    assert rest[0]["id"] == str(dropped.last_id + 1)
    everything = dropped.events + rest
    contract.validate_stream(everything)  # one whole stream: ids 1..n, one terminal event
    assert len(terminal(everything)) == 1 and rest[-1]["event"] == "end"
    assert text_of(everything) == whole_answer(gateway, body)


def test_a_finished_answer_is_replayed_byte_for_byte_with_after_in_the_query(start_gateway):
    gateway = start_gateway()
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        original = http.post(
            "/v1/ask/stream", json=QUESTION, headers={"Authorization": f"Bearer {API_KEY}"}
        )
    request_id = original.headers["x-request-id"]
    response, events = resume(gateway, request_id, 0, query=True)
    assert response.content == original.content
    assert events == parsed(original.content)
    _, tail = resume(gateway, request_id, 2)  # a Last-Event-ID from the middle
    assert tail == parsed(original.content)[2:]
    # It had everything already: 204, so an EventSource stops reconnecting (an empty 200
    # stream would have it come back every few seconds).
    nothing, _ = resume(gateway, request_id, len(events))
    assert nothing.status_code == 204 and nothing.content == b""
    assert nothing.headers["x-request-id"] == request_id
    last_but_one, ending = resume(gateway, request_id, len(events) - 1)
    assert last_but_one.status_code == 200 and ending == parsed(original.content)[-1:]
    assert gateway.metric(MODEL_CALLS, **MODEL) == 1


def test_the_model_is_called_once_across_three_reconnects(start_gateway):
    gateway = start_gateway(fake_tokens_per_second=60.0, resume_grace_seconds=5.0)
    body = {**QUESTION, "max_tokens": 40}
    dropped = drop_after(gateway, body, deltas=2)
    seen, request_id = list(dropped.events), dropped.request_id
    for _ in range(3):  # three reconnects, each dropped again after a few events
        headers = {"Authorization": f"Bearer {API_KEY}", "Last-Event-ID": seen[-1]["id"]}
        url = f"/v1/ask/stream/{request_id}"
        with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as http:
            with httpx_sse.connect_sse(http, "GET", url) as source:
                for count, event in enumerate(source.iter_sse(), start=1):
                    seen.append({"event": event.event, "data": event.data, "id": event.id})
                    if count == 3 or event.event in ("end", "error"):
                        break
    _, rest = resume(gateway, request_id, seen[-1]["id"])
    everything = seen + rest
    contract.validate_stream(everything)
    end = json.loads(everything[-1]["data"])
    assert everything[-1]["event"] == "end"
    gateway.wait_for_metric("gateway_streams_active", 0)
    # The meters: one model call, billed once, for exactly the tokens the end event reports.
    assert gateway.metric(MODEL_CALLS, **MODEL) == 1
    assert gateway.metric(GENERATED, **MODEL) == end["usage"]["output_tokens"]
    settings = gateway.settings
    one_answer = (
        end["usage"]["input_tokens"] / 1000 * settings.price_per_1k_input_tokens
        + end["usage"]["output_tokens"] / 1000 * settings.price_per_1k_output_tokens
    )
    assert gateway.metric(COST) == pytest.approx(one_answer)
    assert gateway.metric(CANCELLED, reason="client_disconnect") == 0


# --- who may resume, and until when ------------------------------------------------------------


def test_another_key_and_an_unknown_id_both_get_the_same_404(start_gateway):
    gateway = start_gateway()
    original = gateway.client().stream(QUESTION)
    request_id = original.response.headers["x-request-id"]
    other, _ = resume(gateway, request_id, 0, key="other-key")
    unknown, _ = resume(gateway, "req_00000000deadbeef", 0)
    nonsense, _ = resume(gateway, "not-an-id", 0)
    for response in (other, unknown, nonsense):
        assert response.status_code == 404
        problem = response.json()
        assert problem["code"] == "not_found" and problem["retryable"] is False
    # No hint that the other key's answer exists: the same words as for an unknown id.
    assert other.json()["detail"] == unknown.json()["detail"]
    no_key, _ = resume(gateway, request_id, 0, key=None)
    assert no_key.status_code == 401 and no_key.json()["code"] == "unauthorized"


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "", "٣", "9" * 40])
def test_a_last_event_id_that_is_not_a_whole_number_is_400_invalid_request(start_gateway, bad):
    gateway = start_gateway()
    request_id = gateway.client().stream(QUESTION).response.headers["x-request-id"]
    for query in (False, True) if bad.isascii() else (True,):  # a header is ASCII
        response, _ = resume(gateway, request_id, bad, query=query)
        assert response.status_code == 400, (bad, query)
        assert response.json()["code"] == "invalid_request"


def test_after_the_retention_window_a_resume_is_410_stream_expired(start_gateway):
    gateway = start_gateway(stream_retention_seconds=300)
    now = [1000.0]
    gateway.app.state.answers.buffer.clock = lambda: now[0]  # a clock the test moves
    request_id = gateway.client().stream(QUESTION).response.headers["x-request-id"]
    now[0] += 299
    assert resume(gateway, request_id, 0)[0].status_code == 200  # within the window
    now[0] += 1
    response, _ = resume(gateway, request_id, 0)
    assert response.status_code == 410
    problem = response.json()
    assert problem["code"] == "stream_expired" and problem["retryable"] is False
    assert resume(gateway, request_id, 0, key="other-key")[0].status_code == 404


# --- the grace period: the model outlives its reader, for a while --------------------------------


def test_a_client_that_never_comes_back_stops_the_model_after_the_grace_period(start_gateway):
    grace = 1.0
    gateway = start_gateway(
        fake_behavior="runaway", fake_tokens_per_second=100.0, resume_grace_seconds=grace
    )
    dropped = drop_after(gateway, {**QUESTION, "max_tokens": 1000}, deltas=2)
    left_at = time.monotonic()
    gateway.wait_for_metric(CANCELLED, 1, timeout=grace + 5, reason="client_disconnect")
    stopped_after = time.monotonic() - left_at
    assert stopped_after >= grace * 0.9  # not at once: a resume was possible meanwhile
    generated = gateway.metric(GENERATED, **MODEL)
    assert generated > 10  # the model ran on during the grace period, for nobody
    gateway.wait_for_metric("gateway_streams_active", 0)
    # Stopped: the meter stands still over a window in which a running model adds ~20 tokens.
    watch_until = time.monotonic() + 0.2
    while time.monotonic() < watch_until:
        assert gateway.metric(GENERATED, **MODEL) == generated
        time.sleep(0.01)
    response, _ = resume(gateway, dropped.request_id, dropped.last_id)
    assert response.status_code == 410 and response.json()["code"] == "stream_expired"


def test_a_client_that_comes_back_within_the_grace_period_keeps_the_model_running(start_gateway):
    grace = 0.5
    gateway = start_gateway(fake_tokens_per_second=20.0, resume_grace_seconds=grace)
    body = {**QUESTION, "max_tokens": 40}  # about 2 s of answer, four grace periods
    dropped = drop_after(gateway, body, deltas=2)
    response, rest = resume(gateway, dropped.request_id, dropped.last_id)
    assert response.status_code == 200
    assert rest[-1]["event"] == "end"
    assert json.loads(rest[-1]["data"])["stop_reason"] in ("end_turn", "max_tokens")
    assert gateway.metric(CANCELLED, reason="client_disconnect") == 0
    assert text_of(dropped.events + rest) == whole_answer(gateway, body)


# --- the course's client: course.measure resumes after a simulated drop ------------------------


def test_the_course_client_resumes_after_each_drop_with_one_model_call(start_gateway):
    from course import measure

    gateway = start_gateway(fake_tokens_per_second=60.0, resume_grace_seconds=5.0)
    body = {**QUESTION, "max_tokens": 40}
    resumed = measure.resume_after_drops(
        gateway.url, API_KEY, body, drops=3, tokens_per_connection=4
    )
    assert resumed.connections == 4 and resumed.terminal_events == 1
    assert resumed.ending in ("end_turn", "max_tokens")
    assert resumed.model_calls == 1
    assert resumed.tokens_generated == gateway.metric(GENERATED, **MODEL) > 0
    assert resumed.dollars == pytest.approx(gateway.metric(COST)) and resumed.dollars > 0
    assert resumed.text == whole_answer(gateway, body)


# --- Redis: a resume may land on another worker ---------------------------------------------------


def test_on_redis_a_resume_on_another_gateway_replays_and_continues(start_gateway, redis_url):
    shared = {"redis_url": redis_url, "fake_tokens_per_second": 40.0, "resume_grace_seconds": 5.0}
    first, second = start_gateway(**shared), start_gateway(**shared)
    body = {**QUESTION, "max_tokens": 30}
    dropped = drop_after(first, body, deltas=3)
    response, rest = resume(second, dropped.request_id, dropped.last_id)
    assert response.status_code == 200
    everything = dropped.events + rest
    contract.validate_stream(everything)
    assert len(terminal(everything)) == 1 and everything[-1]["event"] == "end"
    assert text_of(everything) == whole_answer(first, body)
    # One model call in all, on the first gateway; the second only replayed.
    assert first.metric(MODEL_CALLS, **MODEL) == 2  # the answer, and whole_answer's own call
    assert second.metric(MODEL_CALLS, **MODEL) == 0
    other, _ = resume(second, dropped.request_id, 0, key="other-key")
    assert other.status_code == 404
    _, replayed = resume(second, dropped.request_id, 0, query=True)
    assert replayed == everything
    complete, _ = resume(second, dropped.request_id, len(everything))
    assert complete.status_code == 204


def test_on_redis_an_answer_expires_with_its_key(start_gateway, redis_url):
    # Redis expires the key on its own clock: a window short enough to wait out.
    gateway = start_gateway(redis_url=redis_url, stream_retention_seconds=2.0)
    request_id = gateway.client().stream(QUESTION).response.headers["x-request-id"]
    assert resume(gateway, request_id, 0)[0].status_code == 200
    deadline = time.monotonic() + 10
    while (response := resume(gateway, request_id, 0)[0]).status_code == 200:
        assert time.monotonic() < deadline, "the Redis stream did not expire"
        time.sleep(0.05)
    assert response.status_code == 410 and response.json()["code"] == "stream_expired"


def test_when_redis_goes_down_mid_answer_the_model_stops_and_the_stream_is_settled(
    start_gateway, redis_server, capfd
):
    # Nobody can read the answer any more (its reader and the grace period's watch need Redis
    # too): the model stops at once, the slot is freed, and nothing lands in the log.
    gateway = start_gateway(
        redis_url=redis_server.url,
        redis_unavailable="per_worker",
        redis_timeout_seconds=0.2,
        fake_tokens_per_second=20.0,
    )
    body = {**QUESTION, "max_tokens": 400}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    names = []
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as http:
        with httpx_sse.connect_sse(http, "POST", "/v1/ask/stream", json=body) as source:
            for event in source.iter_sse():
                names.append(event.event)
                if names.count("delta") == 2:
                    redis_server.stop()
    assert names[:3] == ["start", "delta", "delta"]  # then it ended, however it could
    gateway.wait_for_metric("gateway_streams_active", 0)
    assert gateway.metric(GENERATED, **MODEL) < 40, "the model went on for nobody"
    assert "Traceback" not in capfd.readouterr().err


def test_the_redis_writer_batches_behind_the_answer_and_hands_a_failed_write_back(redis_server):
    # The answer does not wait for each XADD (replay.RedisWriter): events handed in while one
    # batch is on its way go in the next, in order; once a write fails, the answer's next
    # event raises, so its maker stops the model instead of generating for nobody.
    from reference_impl.replay import RedisReplay
    from reference_impl.settings import Settings
    from reference_impl.shared_limits import REDIS_DOWN

    async def scenario() -> None:
        settings = Settings(redis_url=redis_server.url, redis_timeout_seconds=0.2)
        buffer = RedisReplay.from_url(settings)
        try:
            await buffer.open("req_w", API_KEY)
            for event_id in range(1, 101):
                await buffer.append("req_w", event_id, b"e%d" % event_id)
            await buffer.finish("req_w")
            read = b"".join([piece async for piece in buffer.read("req_w", 0)])
            assert read == b"".join(b"e%d" % n for n in range(1, 101))
            assert await buffer.last_event_id("req_w") == 100
            await buffer.open("req_x", API_KEY)
            redis_server.stop()
            with pytest.raises(REDIS_DOWN):
                for event_id in range(1, 1000):
                    await buffer.append("req_x", event_id, b"x")
                    await asyncio.sleep(0)  # the batch on its way meets the stopped server
        finally:
            await buffer.aclose()

    asyncio.run(scenario())


def test_with_redis_down_a_stream_is_a_503_problem_and_nothing_is_held(
    start_gateway, redis_server, capfd
):
    # Admission falls back to this worker's limits; the answers' buffer has no fallback (a
    # resume must find the answer wherever it lands), so the stream is refused, not broken.
    gateway = start_gateway(
        redis_url=redis_server.url, redis_unavailable="per_worker", redis_timeout_seconds=0.2
    )
    request_id = gateway.client().stream(QUESTION).response.headers["x-request-id"]
    redis_server.stop()
    refused = gateway.client().stream(QUESTION)
    assert refused.response.status_code == 503
    problem = refused.response.json()
    assert problem["code"] == "limits_unavailable" and problem["retryable"] is True
    assert "retry-after" in refused.response.headers
    gateway.wait_for_metric("gateway_streams_active", 0)
    resumed, _ = resume(gateway, request_id, 0)
    assert resumed.status_code == 503 and resumed.json()["code"] == "limits_unavailable"
    assert "Traceback" not in capfd.readouterr().err


def test_stopping_the_server_stops_an_answer_waiting_for_its_reader_and_settles_it(
    start_gateway,
):
    gateway = start_gateway(
        fake_behavior="runaway", fake_tokens_per_second=100.0, resume_grace_seconds=60.0
    )
    drop_after(gateway, {**QUESTION, "max_tokens": 1000}, deltas=2)
    assert gateway.metric("gateway_streams_active") == 1  # waiting for a resume
    gateway.server.stop()
    # No model is left running in a stopped server: stopped, billed and counted once, and
    # ended as every open answer is at a shutdown, with `shutting_down` for a later reader.
    assert gateway.metric("gateway_streams_active") == 0
    assert gateway.metric("gateway_rejections_total", code="shutting_down") == 1
    assert gateway.metric(CANCELLED, reason="client_disconnect") == 0
    assert gateway.metric("gateway_stream_duration_seconds_count") == 1


def test_a_model_that_never_waits_cannot_hold_the_event_loop_while_its_reader_is_slow(
    start_gateway,
):
    gateway = start_gateway(
        model=ModelThatNeverWaits(), max_tokens_cap=1_000_000, max_stream_seconds=60
    )
    headers = {"Authorization": f"Bearer {API_KEY}"}
    body = {**QUESTION, "max_tokens": 500_000}  # within the test key's tokens per minute
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=5) as http:
        with httpx_sse.connect_sse(http, "POST", "/v1/ask/stream", json=body) as source:
            events = source.iter_sse()
            assert next(events).event == "start"
            assert next(events).event == "delta"
            # The reader pauses; the answer's maker must wait for it, not run on to the end
            # with the event loop to itself: the gateway still answers others at once.
            with httpx.Client(base_url=gateway.url, timeout=2) as other:
                assert other.get("/healthz").status_code == 200
            assert gateway.metric("gateway_streams_active") == 1
            generated = gateway.metric(GENERATED, model="never-waits")
            assert generated < 10_000  # held back by the reader, not all its tokens ahead
