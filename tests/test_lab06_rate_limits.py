"""Lab 06: rate limits and token budgets (reference_impl/limits.py), on a fake clock."""

from __future__ import annotations

import pytest

lab06 = pytest.mark.lab("06")
# The Lab Tasks of notebook 06, as its "Lab Task N" headings number them.
lab06_task = {n: pytest.mark.lab("06", task=n) for n in (1, 2)}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@lab06_task[1]
def test_bucket_allows_the_burst_then_refuses_with_the_wait(impl):
    clock = Clock()
    bucket = impl.limits.TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.try_take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_take() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.try_take() == 0.0


@lab06
def test_a_long_idle_bucket_refills_only_up_to_its_burst(impl):
    clock = Clock()
    bucket = impl.limits.TokenBucket(rate=2.0, burst=3, clock=clock)
    clock.now += 100  # 200 tokens' worth of time: the bucket still holds only `burst`
    assert [bucket.try_take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_take() == pytest.approx(0.5), "the refill must stop at the burst"


@lab06_task[2]
def test_budget_reserves_max_tokens_up_front_and_refuses_an_overshoot(impl):
    clock = Clock()
    budget = impl.limits.TokenBudget(per_minute=1000, clock=clock)
    first = budget.reserve(600)
    clock.now += 10
    with pytest.raises(impl.errors.GatewayError) as refused:
        budget.reserve(500)
    assert refused.value.code == "quota_exceeded"
    assert refused.value.retry_after_seconds == pytest.approx(50)
    budget.settle(first, 100)  # the stream used far less than it reserved
    assert budget.reserve(500).tokens == 500


@lab06_task[2]
def test_budget_frees_reservations_after_a_minute_and_refuses_the_impossible(impl):
    clock = Clock()
    budget = impl.limits.TokenBudget(per_minute=1000, clock=clock)
    budget.reserve(1000)
    clock.now += 60.001
    assert budget.reserve(1000).tokens == 1000
    with pytest.raises(impl.errors.GatewayError) as refused:
        budget.reserve(1001)
    assert refused.value.code == "quota_exceeded" and "max_tokens" in refused.value.detail


@lab06_task[1]
def test_the_gateway_answers_429_with_retry_after_when_a_key_is_over_its_rate(start_gateway):
    gateway = start_gateway(rate_limit_rps=0.5, rate_limit_burst=1)
    client = gateway.client()
    assert client.get("/v1/documents").status_code == 200
    refused = client.get("/v1/documents")
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
    assert refused.headers["retry-after"] == "2"
    assert gateway.metric("gateway_rejections_total", code="rate_limited") == 1
