"""Admission limits shared by every worker, in a real Redis (reference_impl/shared_limits.py).

The same behaviours as the per-worker limits of limits.py and tickets.py are checked on both
implementations through the one interface the gateway uses (`AdmissionControl`), with the same
error codes, messages and waits. Then what only Redis gives: three processes enforce one limit,
a slot is freed once wherever the release comes from, every key expires, and an outage is
refused (or, if the settings say so, counted and served with per-worker limits).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import time

import hypothesis
import pytest
import redis
from hypothesis import strategies as st
from support import TEST_SETTINGS

from reference_impl import limits as limits_module
from reference_impl import shared_limits
from reference_impl.contract import validate as contract
from reference_impl.errors import GatewayError, problem_from, problem_response
from reference_impl.metrics import Metrics
from reference_impl.settings import Settings

KEY, OTHER = "test-key", "other-key"
DEADLINE = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings(**overrides) -> Settings:
    return Settings(**{**TEST_SETTINGS, **overrides})


@pytest.fixture(params=["memory", "redis"])
def make_limits(request):
    """make_limits(clock, **settings) -> AdmissionControl, per-worker or in the test's Redis."""
    if request.param == "memory":
        return lambda clock, **overrides: shared_limits.MemoryAdmission(
            settings(**overrides), clock
        )
    url = request.getfixturevalue("redis_url")
    return lambda clock, **overrides: shared_limits.RedisAdmission.from_url(
        settings(**overrides), url, clock=clock
    )


async def refusal(call) -> GatewayError:
    with pytest.raises(GatewayError) as refused:
        await call
    return refused.value


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


# --- the same behaviours, both implementations ------------------------------------------------


def test_the_rate_allows_the_burst_then_refuses_with_the_wait(make_limits):
    async def scenario():
        clock = Clock()
        limits = make_limits(clock, rate_limit_rps=2.0, rate_limit_burst=3)
        for _ in range(3):
            await limits.check_rate(KEY)
        refused = await refusal(limits.check_rate(KEY))
        assert refused.code == "rate_limited" and refused.status == 429
        assert refused.detail == "More than 2 requests per second (burst 3) for this API key."
        assert refused.retry_after_seconds == pytest.approx(0.5)
        await limits.check_rate(OTHER)  # each key has its own bucket
        clock.now += 0.5
        await limits.check_rate(KEY)
        clock.now += 100  # the refill stops at the burst
        for _ in range(3):
            await limits.check_rate(KEY)
        assert (await refusal(limits.check_rate(KEY))).code == "rate_limited"
        await limits.aclose()

    asyncio.run(scenario())


def test_the_budget_reserves_max_tokens_up_front_and_settles_to_what_was_used(make_limits):
    async def scenario():
        clock = Clock()
        limits = make_limits(clock, tokens_per_minute=1000)
        first = await limits.admit(KEY, 100, 500)  # reserves 600
        clock.now += 10
        refused = await refusal(limits.admit(KEY, 100, 400))
        assert refused.code == "quota_exceeded" and refused.status == 429
        assert refused.detail == "Token budget of 1000 per minute is in use (600 reserved)."
        assert refused.retry_after_seconds == pytest.approx(50)
        await limits.admit(OTHER, 100, 400)  # each key has its own budget
        await first.release(100)  # the stream used far less than it reserved
        await limits.admit(KEY, 100, 400)
        await limits.aclose()

    asyncio.run(scenario())


def test_the_budget_frees_reservations_after_a_minute_and_refuses_the_impossible(make_limits):
    async def scenario():
        clock = Clock()
        limits = make_limits(clock, tokens_per_minute=1000)
        await limits.admit(KEY, 0, 1000)
        clock.now += 60.001
        await limits.admit(KEY, 0, 1000)
        refused = await refusal(limits.admit(KEY, 1, 1000))
        assert refused.code == "quota_exceeded" and refused.retry_after_seconds == 60
        assert refused.detail == (
            "This request needs up to 1001 tokens, more than the budget of 1000 tokens per "
            "minute; lower max_tokens or shorten the prompt."
        )
        await limits.aclose()

    asyncio.run(scenario())


def test_the_wait_is_until_just_enough_of_the_oldest_reservations_leave_the_window(make_limits):
    async def scenario():
        clock = Clock()
        limits = make_limits(clock, tokens_per_minute=1000)
        await limits.admit(KEY, 0, 400)
        clock.now += 10
        await limits.admit(KEY, 0, 600)
        clock.now += 10
        # 400 more are needed: exactly the oldest reservation, which leaves in 40 s.
        assert (await refusal(limits.admit(KEY, 0, 400))).retry_after_seconds == 40
        assert (await refusal(limits.admit(KEY, 0, 401))).retry_after_seconds == 50
        await limits.aclose()

    asyncio.run(scenario())


def test_stream_slots_per_key_refuse_with_rate_limited_until_one_is_released(make_limits):
    async def scenario():
        limits = make_limits(Clock(), max_concurrent_streams=2)
        first = await limits.admit(KEY, 10, 10)
        await limits.admit(KEY, 10, 10)
        refused = await refusal(limits.admit(KEY, 10, 10))
        assert refused.code == "rate_limited" and refused.retry_after_seconds == 1.0
        assert refused.detail == "This API key already has 2 streams open, the most it may have."
        await limits.admit(OTHER, 10, 10)
        await first.release(20)
        await limits.admit(KEY, 10, 10)
        await limits.aclose()

    asyncio.run(scenario())


def test_the_gateway_wide_slots_refuse_with_503_overloaded(make_limits):
    async def scenario():
        limits = make_limits(Clock(), max_total_streams=2)
        first = await limits.admit(KEY, 10, 10)
        await limits.admit(OTHER, 10, 10)
        refused = await refusal(limits.admit("third-key", 10, 10))
        assert refused.code == "overloaded" and refused.status == 503
        assert refused.retry_after_seconds == 1.0
        await first.release(0)
        await limits.admit("third-key", 10, 10)
        await limits.aclose()

    asyncio.run(scenario())


def test_a_hold_released_twice_frees_one_slot(make_limits):
    async def scenario():
        limits = make_limits(Clock(), max_concurrent_streams=2)
        first = await limits.admit(KEY, 10, 10)
        await limits.admit(KEY, 10, 10)
        await first.release(5)
        await first.release(5)
        await limits.admit(KEY, 10, 10)
        assert (await refusal(limits.admit(KEY, 10, 10))).code == "rate_limited"
        await limits.aclose()

    asyncio.run(scenario())


def test_a_ticket_opens_once_for_the_key_it_was_issued_to(make_limits):
    async def scenario():
        limits = make_limits(Clock())
        issued = await limits.issue_ticket(KEY)
        assert issued.ticket.startswith("tkt_") and issued.key == KEY
        assert await limits.redeem_ticket(issued.ticket) == KEY
        assert await limits.redeem_ticket(issued.ticket) is None
        assert await limits.redeem_ticket("tkt_never-issued") is None
        await limits.aclose()

    asyncio.run(scenario())


# --- what only a shared store gives ------------------------------------------------------------


def admit_in_a_process(redis_url, attempts, ready, go, results) -> None:
    """One gateway worker: its own process, event loop and admission, built from the settings."""

    async def burst():
        worker_settings = settings(
            redis_url=redis_url,
            rate_limit_rps=0.001,
            rate_limit_burst=10,
            max_concurrent_streams=3,
        )
        limits = shared_limits.build_admission(worker_settings)
        passed_rate = admitted = 0
        ready.release()
        go.wait()
        for _ in range(attempts):
            try:
                await limits.check_rate(KEY)
                passed_rate += 1
            except GatewayError:
                pass
        for _ in range(attempts):
            try:
                await limits.admit(KEY, 10, 10)  # held, never released: a long stream
                admitted += 1
            except GatewayError:
                pass
        await limits.aclose()
        return passed_rate, admitted

    results.put(asyncio.run(burst()))


def burst_from_workers(redis_url: str | None, count: int) -> tuple[int, int]:
    """Each worker process sends 10 requests, then opens 10 streams, all at once; the totals
    that got through, over all of them."""
    # Forked, not spawned: a spawned process imports the whole test module again, seconds on a
    # busy machine. Each child builds its own event loop and Redis client after the fork and
    # touches nothing of the parent's but the settings.
    context = multiprocessing.get_context("fork")
    ready, go, results = context.Semaphore(0), context.Event(), context.Queue()
    workers = [
        context.Process(target=admit_in_a_process, args=(redis_url, attempts, ready, go, results))
        for attempts in [10] * count
    ]
    for worker in workers:
        worker.start()
    try:
        for _ in workers:
            assert ready.acquire(timeout=30), "a worker process did not start"
        go.set()
        counts = [results.get(timeout=30) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


@pytest.mark.timeout(120)
def test_three_worker_processes_on_one_redis_enforce_one_limit(redis_url):
    # The limits: a burst of 10 requests and 3 open streams per key. Per worker, each worker
    # lets its own 10 and 3 through; on Redis, all three together get exactly those.
    assert burst_from_workers(None, 3) == (30, 9)
    assert burst_from_workers(redis_url, 3) == (10, 3)


def test_a_slot_is_freed_once_whichever_copy_of_the_hold_releases_it(redis_url):
    async def scenario():
        limits = shared_limits.RedisAdmission.from_url(
            settings(max_concurrent_streams=2), redis_url
        )
        first = await limits.admit(KEY, 10, 10)
        await limits.admit(KEY, 10, 10)
        # A second release of the same hold, as a retry or another code path would send it:
        # Redis itself frees the slot once, not only the Python object.
        retry = shared_limits.RedisHold(limits, KEY, first.hold_id, first.tokens)
        assert await limits.release(first, 5) is True
        assert await limits.release(retry, 5) is False
        await limits.admit(KEY, 10, 10)
        assert (await refusal(limits.admit(KEY, 10, 10))).code == "rate_limited"
        await limits.aclose()

    asyncio.run(scenario())


def test_a_release_cancelled_midway_still_frees_the_slot(redis_url):
    direct = redis.Redis.from_url(redis_url)

    async def scenario():
        admitting = shared_limits.RedisAdmission.from_url(settings(), redis_url)
        hold = await admitting.admit(KEY, 10, 10)
        # The release goes through a client with no connection yet, so it is cancelled while
        # connecting, before its command is sent: as a stream's `finally` is when the client
        # that left cancels the task running it.
        releasing = shared_limits.RedisAdmission.from_url(settings(), redis_url)
        release = asyncio.create_task(
            shared_limits.RedisHold(releasing, KEY, hold.hold_id, hold.tokens).release(5)
        )
        await asyncio.sleep(0)
        release.cancel()
        with pytest.raises(asyncio.CancelledError):
            await release
        deadline = time.monotonic() + DEADLINE
        while direct.exists("gateway:slots"):
            assert time.monotonic() < deadline, "the cancelled release never freed the slot"
            await asyncio.sleep(0.01)
        await admitting.aclose()
        await releasing.aclose()

    asyncio.run(scenario())


def test_the_slots_of_a_worker_that_died_come_back_when_their_lease_ends(redis_url):
    direct = redis.Redis.from_url(redis_url)

    async def crash_holding_two_slots():
        limits = shared_limits.RedisAdmission.from_url(
            settings(max_concurrent_streams=2), redis_url, slot_lease_seconds=0.5
        )
        await limits.admit(KEY, 10, 10)
        await limits.admit(KEY, 10, 10)
        assert (await refusal(limits.admit(KEY, 10, 10))).code == "rate_limited"
        await limits.aclose()  # gone without releasing anything

    async def admit_again():
        limits = shared_limits.RedisAdmission.from_url(
            settings(max_concurrent_streams=2), redis_url
        )
        await limits.admit(KEY, 10, 10)
        await limits.admit(KEY, 10, 10)
        await limits.aclose()

    asyncio.run(crash_holding_two_slots())
    slots = [k for k in direct.scan_iter("gateway:slots*")]
    assert len(slots) == 2  # the key's slots and the gateway's
    wait_until(lambda: direct.exists(*slots) == 0, "the slot leases expired")
    asyncio.run(admit_again())


def test_every_key_expires_so_nothing_is_kept_forever(redis_url):
    direct = redis.Redis.from_url(redis_url)

    async def scenario():
        limits = shared_limits.RedisAdmission.from_url(
            settings(rate_limit_rps=2.0, rate_limit_burst=3, ws_ticket_seconds=0.3), redis_url
        )
        await limits.check_rate(KEY)
        hold = await limits.admit(KEY, 10, 10)
        await hold.release(15)
        await limits.admit(OTHER, 10, 10)
        issued = await limits.issue_ticket(KEY)
        await limits.aclose()
        return issued

    issued = asyncio.run(scenario())
    keys = list(direct.scan_iter("gateway:*"))
    # 2 budgets, the slots of OTHER (KEY's set went with its last slot), all slots, KEY's
    # bucket, the ticket.
    assert len(keys) == 6
    for key in keys:
        assert direct.pttl(key) > 0, f"{key!r} never expires"
    # The bucket, one request short of full at 2 tokens a second, is forgotten soon after it
    # would be full again; the ticket at the end of its life.
    bucket = next(k for k in keys if k.startswith(b"gateway:bucket:"))
    assert direct.pttl(bucket) <= 1500
    ticket = next(k for k in keys if k.startswith(b"gateway:ticket:"))
    wait_until(lambda: direct.exists(bucket, ticket) == 0, "the bucket and the ticket expired")

    async def redeem_late():
        late = shared_limits.RedisAdmission.from_url(settings(), redis_url)
        assert await late.redeem_ticket(issued.ticket) is None
        await late.aclose()

    asyncio.run(redeem_late())


def test_no_api_key_or_ticket_appears_in_a_redis_key_name(redis_url):
    direct = redis.Redis.from_url(redis_url)
    secret = "sk-live-do-not-log-me"

    async def scenario():
        limits = shared_limits.RedisAdmission.from_url(settings(api_keys=(secret,)), redis_url)
        await limits.check_rate(secret)
        await limits.admit(secret, 10, 10)
        issued = await limits.issue_ticket(secret)
        await limits.aclose()
        return issued.ticket

    ticket = asyncio.run(scenario())
    names = b" ".join(direct.scan_iter("*"))
    assert names and secret.encode() not in names and ticket.encode() not in names


# --- when Redis goes away mid-run --------------------------------------------------------------


def test_with_redis_gone_admission_refuses_with_a_503_problem_and_counts_it(redis_server):
    metrics = Metrics()
    limits = shared_limits.build_admission(settings(redis_url=redis_server.url), metrics)

    async def scenario():
        await limits.check_rate(KEY)
        hold = await limits.admit(KEY, 10, 10)
        redis_server.stop()
        await hold.release(15)  # never raises: the slot's lease frees it
        for call in (limits.check_rate(KEY), limits.admit(KEY, 10, 10)):
            refused = await refusal(call)
            assert refused.code == "limits_unavailable" and refused.status == 503
            assert refused.retry_after_seconds == 1.0
        assert (await refusal(limits.issue_ticket(KEY))).code == "limits_unavailable"
        redis_server.start()  # back, empty, on the same port, without the scripts
        await limits.check_rate(KEY)
        await (await limits.admit(KEY, 10, 10)).release(15)
        await limits.aclose()
        return refused

    refused = asyncio.run(scenario())
    assert metrics.value("gateway_limits_unavailable_total", {"action": "refused"}) == 3
    response = problem_response(problem_from(refused, "req_0123456789abcdef"))
    assert response.headers["retry-after"] == "1"
    for method, path in (("GET", "/v1/documents"), ("POST", "/v1/ask/stream")):
        contract.validate_response(method, path, 503, response.headers, response.body)


def test_a_redis_that_stops_answering_is_unavailable_after_the_timeout(redis_server):
    metrics = Metrics()
    limits = shared_limits.build_admission(
        settings(redis_url=redis_server.url, redis_timeout_seconds=0.2), metrics
    )

    async def scenario():
        await limits.check_rate(KEY)
        redis_server.process.send_signal(signal.SIGSTOP)  # alive, connected, silent
        try:
            assert (await refusal(limits.check_rate(KEY))).code == "limits_unavailable"
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        await limits.aclose()

    asyncio.run(scenario())
    assert metrics.value("gateway_limits_unavailable_total", {"action": "refused"}) == 1


def test_with_redis_gone_the_per_worker_policy_falls_back_and_counts_it(redis_server):
    metrics = Metrics()
    limits = shared_limits.build_admission(
        settings(
            redis_url=redis_server.url,
            redis_unavailable="per_worker",
            rate_limit_rps=0.001,
            rate_limit_burst=2,
        ),
        metrics,
    )

    async def scenario():
        await limits.check_rate(KEY)
        await limits.check_rate(KEY)
        redis_server.stop()
        # This worker's own bucket is full: the burst is let through again, once per worker.
        await limits.check_rate(KEY)
        await limits.check_rate(KEY)
        assert (await refusal(limits.check_rate(KEY))).code == "rate_limited"
        hold = await limits.admit(KEY, 10, 10)
        await hold.release(15)
        issued = await limits.issue_ticket(KEY)
        assert await limits.redeem_ticket(issued.ticket) == KEY
        await limits.aclose()

    asyncio.run(scenario())
    assert metrics.value("gateway_limits_unavailable_total", {"action": "per_worker"}) == 6


def test_without_a_redis_url_admission_is_per_worker_and_says_so(monkeypatch):
    limits = shared_limits.build_admission(settings())
    assert isinstance(limits, shared_limits.MemoryAdmission) and limits.scope == "per_worker"
    monkeypatch.setenv("GATEWAY_REDIS_URL", "")
    assert Settings().redis_url is None
    shared = shared_limits.build_admission(settings(redis_url="redis://127.0.0.1:1/0"))
    assert shared.scope == "shared"


def test_both_implementations_word_every_refusal_with_the_one_builder(monkeypatch):
    """Each refusal is worded once, in limits.py: a change to a builder changes what this
    worker's memory and Redis both answer, so the two cannot drift apart."""
    builders = ("rate_limited", "too_many_streams", "overloaded")
    builders += ("over_budget_ever", "over_budget_now")
    for name in builders:
        assert getattr(shared_limits, name) is getattr(limits_module, name), name
        monkeypatch.setattr(
            limits_module, name, lambda *args, name=name: GatewayError("overloaded", name)
        )
    memory = limits_module.Admission(
        settings(
            rate_limit_burst=1, max_concurrent_streams=1, max_total_streams=1, tokens_per_minute=100
        ),
        Clock(),
    )

    def refused(call) -> str:
        with pytest.raises(GatewayError) as error:
            call()
        return error.value.detail

    memory.check_rate(KEY)
    assert refused(lambda: memory.check_rate(KEY)) == "rate_limited"
    assert refused(lambda: memory.admit(KEY, 10, 200)) == "over_budget_ever"
    first = memory.admit(KEY, 10, 60)
    assert refused(lambda: memory.admit(KEY, 10, 60)) == "too_many_streams"
    first.release(70)
    assert refused(lambda: memory.admit(KEY, 10, 60)) == "over_budget_now"
    memory.admit(OTHER, 1, 1)
    assert refused(lambda: memory.admit(KEY, 1, 1)) == "overloaded"


# --- both implementations agree on any sequence of requests ------------------------------------

RATE = st.tuples(st.just("rate"), st.sampled_from([KEY, KEY, KEY, OTHER]))
ADMIT = st.tuples(
    st.just("admit"), st.sampled_from([KEY, KEY, OTHER]), st.integers(0, 300), st.integers(1, 700)
)
RELEASE = st.tuples(st.just("release"), st.integers(0, 20), st.integers(0, 1000))
# Steps that binary floats hold exactly, so both sides compute the same numbers; 30 + 30 lands
# a reservation exactly on the edge of the window.
WAIT = st.tuples(st.just("wait"), st.sampled_from([0.25, 0.5, 1.0, 30.0, 60.0, 61.0]))
OPERATIONS = st.lists(st.one_of(RATE, RATE, ADMIT, RELEASE, WAIT), min_size=5, max_size=40)


async def replay(limits, clock: Clock, operations) -> list:
    """What each operation did: None when let through, else (code, detail, retry after)."""
    holds, outcomes = [], []
    for operation in operations:
        kind, outcome = operation[0], None
        try:
            if kind == "rate":
                await limits.check_rate(operation[1])
            elif kind == "admit":
                holds.append(await limits.admit(*operation[1:]))
            elif kind == "release" and holds:
                await holds[operation[1] % len(holds)].release(operation[2])
            elif kind == "wait":
                clock.now += operation[1]
        except GatewayError as error:
            outcome = (error.code, error.detail, round(error.retry_after_seconds, 6))
        outcomes.append(outcome)
    await limits.aclose()
    return outcomes


def test_per_worker_and_redis_limits_answer_every_sequence_of_requests_alike(redis_url):
    overrides = dict(
        rate_limit_rps=2.0,
        rate_limit_burst=4,
        tokens_per_minute=1500,
        max_concurrent_streams=3,
        max_total_streams=5,
    )
    examples = iter(range(10**6))

    # No shrinking: each example is two replays over the network, and the first failing
    # sequence found is readable as it is.
    @hypothesis.settings(
        max_examples=200,
        deadline=None,
        database=None,
        phases=[hypothesis.Phase.generate],
    )
    @hypothesis.given(OPERATIONS)
    def agree(operations):
        memory_clock, redis_clock = Clock(), Clock()
        memory = shared_limits.MemoryAdmission(settings(**overrides), memory_clock)
        # Slots never released here are held forever in memory; in Redis their lease would end
        # after max_stream_seconds and a margin, the longest a real stream lives. The test's
        # clock runs for minutes, so the lease is made longer than it can reach.
        shared = shared_limits.RedisAdmission.from_url(
            settings(**overrides),
            redis_url,
            clock=redis_clock,
            prefix=f"p{next(examples)}:",
            slot_lease_seconds=10**6,
        )
        expected = asyncio.run(replay(memory, memory_clock, operations))
        assert asyncio.run(replay(shared, redis_clock, operations)) == expected

    agree()
