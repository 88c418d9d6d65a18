"""The gateway with its limits in Redis (GATEWAY_REDIS_URL), against a real `redis-server`.

The same routes, the same answers and the same refusals as with this process's memory; what
changes is where a key's rate, budget and stream slots are kept, and that a Redis that cannot
be reached is a `503 limits_unavailable`, never a gateway that silently stops limiting.
"""

from __future__ import annotations

import redis
from support import QUESTION


def test_a_stream_on_redis_takes_its_slot_there_and_frees_it_at_the_end(start_gateway, redis_url):
    gateway = start_gateway(redis_url=redis_url, max_concurrent_streams=1)
    client = gateway.client()
    first = client.stream({**QUESTION, "max_tokens": 5})
    assert first.response.status_code == 200 and first.names[-1] == "end"
    # One slot: the second stream is admitted only because the first one's close freed it.
    second = client.stream({**QUESTION, "max_tokens": 5})
    assert second.response.status_code == 200 and second.names[-1] == "end"
    assert gateway.metric("gateway_model_requests_total", model="fake-docqa") == 2
    with redis.Redis.from_url(redis_url) as direct:
        assert direct.dbsize() > 0, "the limits were kept in Redis"


def test_a_rate_limited_burst_gets_the_same_problem_object_on_redis_as_in_memory(
    start_gateway, redis_url
):
    refusals = []
    for shared in (None, redis_url):
        gateway = start_gateway(redis_url=shared, rate_limit_rps=0.5, rate_limit_burst=2)
        client = gateway.client()
        codes = [client.get("/v1/documents").status_code for _ in range(3)]
        assert codes == [200, 200, 429], shared
        refused = client.get("/v1/documents")
        body = refused.json()
        assert body.pop("request_id")
        # The wait is measured, so it differs by the milliseconds between the two runs.
        assert 1.5 < body.pop("retry_after_seconds") <= 2.0
        refusals.append((refused.status_code, refused.headers["retry-after"], body))
        assert gateway.metric("gateway_rejections_total", code="rate_limited") == 2
    in_memory, on_redis = refusals
    assert on_redis == in_memory


def test_redis_stopped_mid_run_is_a_503_limits_unavailable_problem(start_gateway, redis_server):
    gateway = start_gateway(redis_url=redis_server.url, redis_timeout_seconds=0.2)
    client = gateway.client()  # every answer is checked against the contract
    assert client.post("/v1/ask", json={**QUESTION, "max_tokens": 3}).status_code == 200
    redis_server.stop()
    refused = client.post("/v1/ask", json={**QUESTION, "max_tokens": 3})
    assert refused.status_code == 503
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "limits_unavailable"
    assert "retry-after" in refused.headers
    assert gateway.metric("gateway_limits_unavailable_total", action="refused") >= 1
    assert gateway.metric("gateway_model_requests_total", model="fake-docqa") == 1
