"""Load: 200 SSE streams and 200 chats at once against one real server process, with nothing
lost and exactly one terminal event each. A fast fake model and short answers keep it quick."""

from __future__ import annotations

import asyncio
import json

import httpx
import httpx_sse
import pytest
from server_process import API_KEY, ServerProcess
from support import QUESTION

from reference_impl.contract import validate as contract

STREAMS = 200
CHATS = 200
MAX_TOKENS = 12


async def one_stream(http: httpx.AsyncClient, url: str) -> list[dict]:
    body = {**QUESTION, "max_tokens": MAX_TOKENS}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    events = []
    async with httpx_sse.aconnect_sse(
        http, "POST", f"{url}/v1/ask/stream", json=body, headers=headers
    ) as source:
        assert source.response.status_code == 200, await source.response.aread()
        async for event in source.aiter_sse():
            events.append({"event": event.event, "data": event.data, "id": event.id})
    return events


async def one_chat(ws_url: str) -> list[dict]:
    from websockets.asyncio.client import connect

    headers = {"Authorization": f"Bearer {API_KEY}"}
    messages = []
    async with connect(ws_url, additional_headers=headers, compression=None) as ws:
        await ws.send(json.dumps({"type": "ask", "id": "q1", **QUESTION, "max_tokens": MAX_TOKENS}))
        while not messages or messages[-1]["type"] not in ("end", "error"):
            messages.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
    return messages


@pytest.mark.timeout(120)
def test_200_streams_and_200_chats_at_once_each_end_exactly_once():
    server = ServerProcess(
        fake_tokens_per_second=2000,
        fake_first_token_seconds=0.01,
        max_concurrent_streams=500,
        max_total_streams=512,
        max_connections=1000,
        ws_max_connections_per_key=300,
        rate_limit_rps=10_000,
        rate_limit_burst=10_000,
        ws_messages_per_second=1000,
        tokens_per_minute=10**9,
    )

    async def scenario():
        limits = httpx.Limits(max_connections=STREAMS, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            ws_url = server.url.replace("http://", "ws://") + "/v1/chat"
            streams = [one_stream(http, server.url) for _ in range(STREAMS)]
            chats = [one_chat(ws_url) for _ in range(CHATS)]
            results = await asyncio.gather(*streams, *chats)
        return results[:STREAMS], results[STREAMS:]

    try:
        stream_results, chat_results = asyncio.run(scenario())
        server.wait_for_metric("gateway_streams_active", 0)
        server.wait_for_metric("gateway_ws_connections_active", 0)
        assert server.metric("gateway_model_requests_total", model="fake-docqa") == STREAMS + CHATS
    finally:
        log = server.stop()
    for events in stream_results:
        contract.validate_stream(events)
        names = [e["event"] for e in events]
        assert names[0] == "start" and names[-1] == "end" and names.count("end") == 1
        assert names.count("delta") == MAX_TOKENS  # nothing lost
    for messages in chat_results:
        kinds = [m["type"] for m in messages]
        assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("end") == 1
        assert kinds.count("delta") == MAX_TOKENS
    assert "Traceback" not in log, log
