"""Lab 04: limits at the edge, request size and max tokens (reference_impl/edge.py).

The size limit is checked around a tiny echo app, so these checks need no later lab.
"""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

lab04 = pytest.mark.lab("04")
# The Lab Tasks of notebook 04, as its "Lab Task N" headings number them.
lab04_task = {n: pytest.mark.lab("04", task=n) for n in (1, 2)}


@pytest.fixture
def echo(impl):
    """An app that reads the whole body, behind the gateway's request id and body size
    middleware (limit 1000)."""
    calls = []

    async def endpoint(request: Request):
        body = await request.body()
        calls.append(len(body))
        return JSONResponse({"received": len(body)})

    settings = impl.settings.Settings(max_request_bytes=1000)
    app = impl.request_id.RequestIdMiddleware(
        impl.edge.BodySizeLimitMiddleware(
            Starlette(routes=[Route("/echo", endpoint, methods=["POST"])]), settings
        )
    )
    with impl.background.BackgroundServer(app, name="lab04-echo") as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            yield client, calls


def assert_too_large(response):
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "request_too_large"
    assert response.json()["request_id"] == response.headers["x-request-id"]


@lab04_task[1]
def test_a_body_within_the_limit_reaches_the_app(echo):
    client, calls = echo
    response = client.post("/echo", content=b"x" * 1000)
    assert response.status_code == 200 and response.json() == {"received": 1000}
    assert response.headers["x-request-id"].startswith("req_")
    assert calls == [1000]


@lab04_task[1]
def test_a_declared_oversized_body_is_refused_before_the_app_runs(echo):
    client, calls = echo
    assert_too_large(client.post("/echo", content=b"x" * 1001))
    assert calls == [], "the app must never see an oversized request"


@lab04_task[1]
def test_a_chunked_body_is_counted_and_cut_at_the_limit(echo):
    client, calls = echo

    def chunks():
        for _ in range(30):
            yield b"y" * 100

    response = client.post("/echo", content=chunks())
    assert "content-length" not in response.request.headers
    assert_too_large(response)
    assert calls == []


@lab04_task[2]
def test_max_tokens_defaults_passes_up_to_the_cap_and_is_refused_above(impl):
    settings = impl.settings.Settings(max_tokens_cap=100, default_max_tokens=40)
    check = impl.edge.check_max_tokens
    assert check(None, settings) == 40
    assert check(100, settings) == 100
    with pytest.raises(impl.errors.GatewayError) as refused:
        check(101, settings)
    assert refused.value.code == "max_tokens_exceeded" and refused.value.status == 400
    assert "100" in refused.value.detail
