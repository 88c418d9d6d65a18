"""course/measure.py: the measurements the notebooks print, checked against a real gateway.

No test here holds a speed target: each one asserts a relation that must hold on any machine
(streamed before full, capped below uncapped, patient below impatient).
"""

from __future__ import annotations

import threading

import pytest
from support import API_KEY, QUESTION

from course import measure
from reference_impl.contract import validate as contract

pytestmark = pytest.mark.timeout(60)


# --- pure helpers ------------------------------------------------------------------------------


def test_percentiles_interpolate_between_the_nearest_ranks():
    values = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5]  # order does not matter
    assert measure.percentiles(values, (0, 50, 90, 100)) == pytest.approx(
        {0: 1, 50: 5.5, 90: 9.1, 100: 10}
    )
    assert measure.percentiles([0.25]) == {50: 0.25, 90: 0.25, 99: 0.25}


@pytest.mark.parametrize(("values", "points"), [([], (50,)), ([1.0], (101,)), ([1.0], (-1,))])
def test_percentiles_refuse_no_values_and_points_outside_0_to_100(values, points):
    with pytest.raises(ValueError):
        measure.percentiles(values, points)


def test_in_parallel_really_runs_the_calls_at_the_same_time():
    together = threading.Barrier(3, timeout=10)  # breaks unless all three wait at once

    def arrive(name):
        together.wait()
        return name

    assert measure.in_parallel(3, arrive, "user") == ["user", "user", "user"]


# --- timing one answer --------------------------------------------------------------------------


def test_streaming_client_sees_its_first_token_before_the_full_response_arrives(start_gateway):
    gateway = start_gateway(fake_tokens_per_second=50)
    body = {**QUESTION, "max_tokens": 20}
    streamed = measure.time_to_first_token(gateway.url, API_KEY, body)
    whole = measure.time_full_response(gateway.url, API_KEY, body)
    assert streamed.status == whole.status == 200
    assert streamed.tokens == whole.tokens == 20
    assert streamed.first_byte_s <= streamed.first_token_s < streamed.total_s
    assert streamed.first_token_s < whole.first_token_s, "streaming shows words before the end"
    assert whole.first_token_s == whole.total_s, "a full response shows nothing until it is all in"


def test_an_error_before_the_first_token_is_timed_as_an_http_error(start_gateway):
    gateway = start_gateway(fake_behavior="throttled")
    timing = measure.time_to_first_token(gateway.url, API_KEY, QUESTION)
    assert timing.status == 429 and timing.first_token_s is None and timing.tokens == 0
    assert measure.time_full_response(gateway.url, API_KEY, QUESTION).status == 429


def test_read_stream_gives_the_raw_text_and_the_events_a_real_client_parsed(start_gateway):
    gateway = start_gateway()
    result = measure.read_stream(gateway.url, API_KEY, {**QUESTION, "max_tokens": 3})
    assert result.status == 200 and result.problem is None
    assert result.names == ["start", "delta", "delta", "delta", "end"]
    assert result.raw.startswith("id: 1\n") or result.raw.startswith("event: start\n")
    assert result.raw.count("\n\n") == len(result.events)
    assert result.data(-1)["usage"]["output_tokens"] == 3
    assert result.summary == "200: start, 3 x delta, end max_tokens"
    contract.validate_stream(result.events)
    refused = measure.read_stream(gateway.url, "wrong-key", QUESTION)
    assert refused.status == 401 and refused.events == []
    assert refused.problem["code"] == "unauthorized"
    assert refused.summary == "401: no stream, problem unauthorized"


def test_read_stream_summarises_a_stream_cut_by_an_error(start_gateway):
    gateway = start_gateway(
        fake_behavior="stall", idle_timeout_seconds=0.2, first_token_timeout_seconds=1
    )
    result = measure.read_stream(gateway.url, API_KEY, QUESTION)
    assert result.summary == "200: start, 3 x delta, error idle_timeout (504)"


def test_metric_reads_the_served_meters_and_waiting_has_a_deadline(start_gateway):
    gateway = start_gateway()
    measure.read_stream(gateway.url, API_KEY, {**QUESTION, "max_tokens": 4})
    assert measure.metric(gateway.url, "gateway_tokens_delivered_total") == 4
    assert measure.metric(gateway.url, "gateway_rejections_total", code="nothing") == 0
    with pytest.raises(TimeoutError):
        measure.wait_for_metric(gateway.url, "gateway_streams_active", lambda v: v > 0, 0.05)


def test_read_stream_timed_stamps_every_line_and_sees_the_pings_a_parser_drops(start_gateway):
    # 5 tokens at 10 a second (about 0.5 s) with a ping every 0.05 s: pings fall between tokens.
    gateway = start_gateway(fake_tokens_per_second=10, ping_seconds=0.05)
    timed = measure.read_stream_timed(gateway.url, API_KEY, {**QUESTION, "max_tokens": 5})
    assert timed.read.status == 200
    assert timed.read.names == ["start", *["delta"] * 5, "end"]
    stamps = [at for at, _ in timed.lines]
    assert stamps == sorted(stamps) and 0 < stamps[0] and stamps[-1] <= timed.read.seconds
    tokens, pings = timed.token_times_s, timed.ping_times_s
    assert len(tokens) == 5 and all(a < b for a, b in zip(tokens, tokens[1:], strict=False))
    assert ": ping" in timed.read.raw and "ping" not in timed.read.names
    assert any(tokens[0] < ping < tokens[-1] for ping in pings), "pings flow between tokens"
    assert len(pings) == timed.read.raw.count(": ping")
    refused = measure.read_stream_timed(gateway.url, "wrong-key", QUESTION)
    assert refused.read.status == 401 and refused.read.problem["code"] == "unauthorized"
    assert refused.lines == () and refused.token_times_s == refused.ping_times_s == ()


# --- what a runaway costs ----------------------------------------------------------------------


def test_an_edge_capped_runaway_generates_at_most_max_tokens_plus_two(start_gateway, impl):
    gateway = start_gateway(fake_behavior="runaway")
    for _ in range(2):  # each call measures its own stream, not the gateway's total
        capped = measure.runaway_cost(gateway.url, API_KEY, QUESTION, max_tokens=20)
        assert capped.ending == "max_tokens" and capped.tokens_delivered == 20
        assert 20 <= capped.tokens_generated <= 22
        arrivals = capped.token_times_s
        assert len(arrivals) == capped.tokens_delivered, "one arrival time per token received"
        assert all(a < b for a, b in zip(arrivals, arrivals[1:], strict=False))
        assert 0 < arrivals[0] and arrivals[-1] <= capped.seconds
    s = gateway.settings
    document = impl.documents.builtin()[QUESTION["document_id"]].text
    prompt = impl.model.ModelRequest(QUESTION["question"], document, 20).prompt_tokens
    expected = (
        prompt * s.price_per_1k_input_tokens
        + capped.tokens_generated * s.price_per_1k_output_tokens
    ) / 1000
    assert capped.dollars == pytest.approx(expected)


def test_a_runaway_without_a_token_cap_runs_until_the_clock_and_costs_more(start_gateway):
    capped = measure.runaway_cost(
        start_gateway(fake_behavior="runaway").url, API_KEY, QUESTION, max_tokens=20
    )
    uncapped_gateway = start_gateway(
        fake_behavior="runaway",
        max_tokens_cap=100_000,
        tokens_per_minute=10_000_000,
        max_stream_seconds=0.5,
    )
    uncapped = measure.runaway_cost(uncapped_gateway.url, API_KEY, QUESTION, max_tokens=100_000)
    assert uncapped.ending == "stream_timeout"
    assert uncapped.tokens_generated > capped.tokens_generated
    assert uncapped.dollars > capped.dollars


def test_runaway_cost_says_when_the_gateway_refused_the_stream(start_gateway):
    gateway = start_gateway(fake_behavior="runaway", max_tokens_cap=50)
    with pytest.raises(ValueError, match="400 max_tokens_exceeded"):
        measure.runaway_cost(gateway.url, API_KEY, QUESTION, max_tokens=51)


# --- a reader who leaves -----------------------------------------------------------------------


def test_generation_stands_still_once_the_reader_has_left(start_gateway):
    gateway = start_gateway(fake_behavior="runaway", fake_tokens_per_second=100)
    left = measure.disconnect_mid_stream(
        gateway.url, API_KEY, {**QUESTION, "max_tokens": 1000}, after_tokens=3, watch_seconds=0.3
    )
    assert left.tokens_read == 3
    assert 3 <= left.generated_at_release < 1000
    # At 100 tokens/s a model still running would add about 30 tokens while we watch.
    assert left.generated_after_watch == left.generated_at_release
    assert gateway.metric("gateway_stream_cancellations_total", reason="client_disconnect") == 1


# --- admission ---------------------------------------------------------------------------------


def test_the_token_budget_is_held_by_an_open_stream_and_freed_when_it_ends(start_gateway):
    gateway = start_gateway(fake_behavior="stall", tokens_per_minute=900, ping_seconds=30)
    body = {**QUESTION, "max_tokens": 400}  # reserves prompt (~185) + 400 of the 900
    first, second = measure.hold_streams(gateway.url, API_KEY, body, count=2)
    assert first.status == 200
    assert (second.status, second.code) == (429, "quota_exceeded")
    assert int(second.retry_after) >= 1 and second.detail
    # The stalled stream used its prompt and 3 tokens; settling gave the rest back.
    assert [a.status for a in measure.hold_streams(gateway.url, API_KEY, body, count=1)] == [200]


def test_hold_streams_meets_the_concurrency_limit(start_gateway):
    gateway = start_gateway(fake_behavior="stall", max_concurrent_streams=2, ping_seconds=30)
    answers = measure.hold_streams(gateway.url, API_KEY, QUESTION, count=3)
    assert [(a.status, a.code) for a in answers] == [
        (200, None),
        (200, None),
        (429, "rate_limited"),
    ]
    assert gateway.metric("gateway_streams_active") == 0


# --- retries -----------------------------------------------------------------------------------


def test_honouring_retry_after_makes_fewer_attempts_than_retrying_at_once(start_gateway):
    gateway = start_gateway(rate_limit_rps=2, rate_limit_burst=2)
    # Each key has its own bucket, so the two runs do not share a budget.
    storm = measure.retry_storm(
        gateway.url, API_KEY, clients=6, seconds=1.5, honour_retry_after=False
    )
    patient = measure.retry_storm(
        gateway.url, "other-key", clients=6, seconds=1.5, honour_retry_after=True, seed=7
    )
    assert storm.successes >= 2 and patient.successes >= 2  # at least the burst got through
    assert patient.attempts < storm.attempts
    assert patient.refused < storm.refused
    assert patient.load_factor < storm.load_factor
    # Retry-After is at least 1 s, so within 1.5 s a patient client tries at most twice.
    assert patient.attempts <= 2 * 6, "a patient client never retries sooner than Retry-After"
    assert storm.attempts == storm.refused + storm.successes


def test_an_error_that_is_not_retryable_is_tried_once_when_the_api_is_heeded(start_gateway):
    gateway = start_gateway()
    heeded = measure.retry_storm(
        gateway.url, "wrong-key", clients=3, seconds=0.5, honour_retry_after=True
    )
    assert (heeded.attempts, heeded.successes, heeded.gave_up) == (3, 0, 3)
    hammered = measure.retry_storm(
        gateway.url, "wrong-key", clients=3, seconds=0.5, honour_retry_after=False
    )
    assert hammered.successes == 0 and hammered.attempts > 3
    assert hammered.load_factor == float("inf")


@pytest.mark.parametrize(
    ("url", "clients", "seconds"),
    [("http://example.com", 2, 1), ("http://127.0.0.1:1", 0, 1), ("http://127.0.0.1:1", 2, 61)],
)
def test_retry_storm_stays_on_loopback_and_small(url, clients, seconds):
    with pytest.raises(ValueError):
        measure.retry_storm(url, API_KEY, clients=clients, seconds=seconds, honour_retry_after=True)


# --- per-token arrival times and the impatient client ------------------------------------------


def test_a_streamed_answer_records_when_each_token_arrived_and_a_full_one_all_at_the_end(
    start_gateway,
):
    gateway = start_gateway(fake_tokens_per_second=100)
    body = {**QUESTION, "max_tokens": 12}
    streamed = measure.time_to_first_token(gateway.url, API_KEY, body)
    whole = measure.time_full_response(gateway.url, API_KEY, body)
    arrivals = streamed.token_times_s
    assert len(arrivals) == streamed.tokens == 12
    assert arrivals[0] == streamed.first_token_s and arrivals[-1] <= streamed.total_s
    assert all(a < b for a, b in zip(arrivals, arrivals[1:], strict=False)), "one by one"
    assert whole.token_times_s == (whole.total_s,) * 12, "a body brings every token at once"


def test_a_client_timeout_shorter_than_the_answer_pays_one_model_call_per_attempt(
    start_gateway,
):
    # 30 tokens at 100 a second: about 0.3 s per answer, against a 0.05 s client timeout.
    gateway = start_gateway(fake_tokens_per_second=100)
    body = {**QUESTION, "max_tokens": 30}
    impatient = measure.impatient_client(
        gateway.url, API_KEY, body, client_timeout_s=0.05, max_attempts=3
    )
    assert (impatient.attempts, impatient.timed_out, impatient.answered) == (3, 3, False)
    assert impatient.model_calls == 3, "each attempt is a model call, and pays its prompt"
    # The gateway stops the model when the client leaves (it watches for the disconnect).
    assert impatient.tokens_generated < 3 * 30

    patient = measure.impatient_client(
        gateway.url, API_KEY, body, client_timeout_s=30, max_attempts=3
    )
    assert (patient.attempts, patient.answered, patient.model_calls) == (1, True, 1)
    assert patient.tokens_generated == 30
    assert impatient.dollars > patient.dollars, "three prompts and no answer cost more than one"


def test_a_storm_records_every_send_time_and_a_bystanders_latency_throughout(start_gateway):
    gateway = start_gateway(rate_limit_rps=2, rate_limit_burst=2)
    storm = measure.retry_storm(
        gateway.url,
        API_KEY,
        clients=4,
        seconds=1.0,
        honour_retry_after=False,
        bystander_key="other-key",
        bystander_every=0.1,
    )
    assert len(storm.sent_s) == storm.attempts
    assert list(storm.sent_s) == sorted(storm.sent_s)
    assert 0 <= storm.sent_s[0] and storm.sent_s[-1] <= storm.seconds
    # The bystander kept asking for the whole storm, and it is not counted in the storm.
    asked = [at for at, _ in storm.bystander]
    assert len(asked) >= 3 and asked[-1] >= 0.5
    assert all(latency > 0 for _, latency in storm.bystander)
