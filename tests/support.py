"""Test support: a contract-checking client and a handle on a running gateway.

`start_gateway(**settings)` (a fixture in conftest.py) runs the implementation under test on a
real uvicorn server on 127.0.0.1 with an OS-chosen port. Its `client()` is a real httpx client
that checks every response, header and SSE event against `reference_impl/contract/openapi.yaml`:
the contract, not the code, is the yardstick.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx_sse

from reference_impl.contract import validate as contract

API_KEY = "test-key"
# Fast and generous, so tests only hit the limit they are about.
TEST_SETTINGS = {
    "api_keys": (API_KEY, "other-key"),
    "fake_tokens_per_second": 400.0,
    "fake_first_token_seconds": 0.005,
    "rate_limit_rps": 1000.0,
    "rate_limit_burst": 1000,
    "tokens_per_minute": 1_000_000,
    "max_concurrent_streams": 50,
    # A client that leaves stops the model this soon (resumable.py): tests of other things
    # need not wait out the default grace period; tests/test_resume.py sets its own.
    "resume_grace_seconds": 0.2,
}
QUESTION = {
    "question": "How long can a connection stay idle?",
    "document_id": "api-gateway-websocket-limits",
}


class ModelThatNeverWaits:
    """Yields every token at once, never awaiting anything (a cache, a fast local model)."""

    name = "never-waits"

    async def stream(self, request):
        from reference_impl.model import TextDelta

        while True:
            yield TextDelta(" token")


@dataclass
class StreamResult:
    response: httpx.Response
    events: list[dict[str, str]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [event["event"] for event in self.events]

    def data(self, index: int) -> dict[str, Any]:
        return json.loads(self.events[index]["data"])

    @property
    def text(self) -> str:
        return "".join(json.loads(e["data"])["text"] for e in self.events if e["event"] == "delta")


class ContractClient:
    """httpx with the API key set, checking every answer against the contract."""

    def __init__(self, base_url: str, api_key: str | None = API_KEY) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=30)

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        contract.validate_response(
            method, path, response.status_code, response.headers, response.content
        )
        return response

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def stream(self, body: dict[str, Any], path: str = "/v1/ask/stream", **kwargs) -> StreamResult:
        """POST a streaming request and read it to the end. The raw bytes are checked against
        the contract, then parsed by a real SSE client (httpx-sse). Errors before the stream
        come back as the response with no events."""
        with self.http.stream("POST", path, json=body, **kwargs) as response:
            raw = response.read()
        contract.validate_response("POST", path, response.status_code, response.headers, raw)
        result = StreamResult(response)
        if response.status_code != 200:
            return result
        replay = httpx.Response(200, headers=response.headers, content=raw)
        for event in httpx_sse.EventSource(replay).iter_sse():
            contract.validate_sse_event(event.event, event.data, event.id)
            result.events.append({"event": event.event, "data": event.data, "id": event.id})
        contract.validate_stream(result.events)
        return result

    def close(self) -> None:
        self.http.close()


@dataclass
class RunningGateway:
    server: Any
    app: Any
    settings: Any
    clients: list[ContractClient] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, api_key: str | None = API_KEY) -> ContractClient:
        client = ContractClient(self.url, api_key)
        self.clients.append(client)
        return client

    def metric(self, name: str, **labels: str) -> float:
        return self.app.state.gateway.metrics.value(name, labels)

    def wait_for_metric(self, name: str, value: float, timeout: float = 5.0, **labels) -> None:
        """Wait until a metric reaches `value` (a condition with a deadline, not a sleep)."""
        deadline = time.monotonic() + timeout
        while self.metric(name, **labels) != value:
            assert time.monotonic() < deadline, (
                f"{name}{labels} stayed {self.metric(name, **labels)}"
            )
            time.sleep(0.002)
