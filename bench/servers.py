"""Every server the benchmark talks to, one per process: `python -m bench.servers KIND`.

It prints its port, then serves on 127.0.0.1 (pinned to CPU 0, the clients get CPU 1) until
killed. The gateway is only ever built with its public factory, `create_app(settings, model)`.

Baselines, the floor each gateway figure is compared with:
- sse-bare: sse-starlette as it ships, yielding pre-encoded events as fast as it can;
- sse-floor: a hand-written SSE `StreamingResponse`, the least any SSE server can do;
- ws-bare: a bare WebSocket endpoint that answers one message with pre-encoded tokens.
The gateway:
- gateway-instant: every limit on, a model that costs nothing (what is left is the gateway);
- gateway-instant-redis: the same, its limits shared in the Redis at BENCH_REDIS_URL;
- gateway-stream: the fake model at 100 tokens/s that never stops by itself (the edge cuts it);
- gateway-emit / gateway-stall: the fake model at 100 tokens/s, or silent after three tokens,
  wrapped to record when each of its streams was closed (GET /bench/model-stops);
- gateway-cut-stream: the runaway model with a stream limit of 1 s, to see when it really cuts;
- gateway-cut-idle: the stalling model with an idle timeout of 0.5 s, likewise.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

API_KEY = "bench-key"
TOKENS_PER_SECOND = 100.0
LIMIT_STREAM_SECONDS = 1.0
LIMIT_IDLE_SECONDS = 0.5


def sse_events(count: int):
    """The events a baseline sends: the gateway's own shapes, encoded once."""
    yield b'id: 1\nevent: start\ndata: {"request_id":"req_0"}\n\n'
    for index in range(count):
        yield b'id: %d\nevent: delta\ndata: {"index":%d,"text":" token"}\n\n' % (index + 2, index)
    yield b'id: %d\nevent: end\ndata: {"stop_reason":"max_tokens"}\n\n' % (count + 2)


def sse_bare_app() -> Starlette:
    from sse_starlette.sse import EventSourceResponse

    async def stream(request: Request):
        async def events():
            for event in sse_events(int(request.query_params.get("n", "1000"))):
                yield event

        return EventSourceResponse(events(), ping=0)

    return Starlette(routes=[Route("/stream", stream, methods=["GET"])])


def sse_floor_app() -> Starlette:
    async def stream(request: Request):
        async def events():
            for event in sse_events(int(request.query_params.get("n", "1000"))):
                yield event

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    return Starlette(routes=[Route("/stream", stream, methods=["GET"])])


def ws_bare_app() -> Starlette:
    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        with contextlib.suppress(WebSocketDisconnect):  # the client leaves between answers
            await answer(websocket)

    async def answer(websocket: WebSocket) -> None:
        while True:
            count = int(await websocket.receive_text())
            for index in range(count):
                await websocket.send_text(
                    f'{{"type":"delta","id":"a","index":{index},"text":" token"}}'
                )
            await websocket.send_text('{"type":"end","id":"a","stop_reason":"max_tokens"}')

    return Starlette(routes=[WebSocketRoute("/chat", chat)])


class InstantModel:
    """Emits a token the moment it is asked and never stops: what remains is the gateway's own
    cost (edge checks, admission, guard, wire), which is what the cost targets are about."""

    name = "instant"

    async def stream(self, request):
        from reference_impl.model import TextDelta

        token = TextDelta(" token")
        while True:
            yield token


class TimedModel:
    """A model wrapper that records the moment each of its streams was closed, however it ended.

    time.perf_counter() is CLOCK_MONOTONIC on Linux, so the client process can compare it with
    the moment it left. The guard closes every model stream it opens (`aclose`), whatever
    ended it, so that is where the moment is taken; the events themselves go straight to the
    inner stream, so the wrapper adds no step per token to the figures it helps measure.
    """

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.stopped: list[float] = []

    def stream(self, request):
        return TimedStream(self.inner.stream(request), self.stopped)


class TimedStream:
    def __init__(self, inner, stopped: list[float]) -> None:
        self.inner = inner
        self.stopped = stopped

    def __aiter__(self):
        return self

    def __anext__(self):
        return self.inner.__anext__()

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            self.stopped.append(time.perf_counter())


def gateway_settings(kind: str):
    """Every limit that is not being measured is raised so it never interferes."""
    from reference_impl.settings import Settings

    behaviour = "stall" if kind in ("gateway-stall", "gateway-cut-idle") else "runaway"
    options = {}
    if kind == "gateway-cut-stream":
        options = {"max_stream_seconds": LIMIT_STREAM_SECONDS}
    if kind == "gateway-cut-idle":
        options = {"idle_timeout_seconds": LIMIT_IDLE_SECONDS}
    if kind == "gateway-instant-redis":
        options = {"redis_url": os.environ["BENCH_REDIS_URL"]}
    return Settings(
        api_keys=(API_KEY,),
        max_tokens_cap=1_000_000,
        max_prompt_tokens=1_000_000,
        tokens_per_minute=10**12,
        rate_limit_rps=1e6,
        rate_limit_burst=10**6,
        max_concurrent_streams=100_000,
        max_total_streams=100_000,
        ws_messages_per_second=1e6,
        ws_message_burst=10**6,
        ws_max_connections_per_key=100_000,
        max_connections=100_000,
        fake_tokens_per_second=TOKENS_PER_SECOND,
        fake_first_token_seconds=0.2 if kind == "gateway-stream" else 0.0,
        fake_behavior=behaviour,
        # A client that leaves stops the model after the grace period a resume may come in
        # (resumable.py); the cancel figure times the stop itself, so the grace is ~0.
        resume_grace_seconds=0.001,
        **options,
    )


def gateway_app(kind: str):
    from reference_impl.app import create_app
    from reference_impl.model import FakeModel

    settings = gateway_settings(kind)
    if kind in ("gateway-instant", "gateway-instant-redis"):
        return create_app(settings, model=InstantModel())
    model = TimedModel(FakeModel(settings))
    app = create_app(settings, model=model)

    @app.get("/bench/model-stops")
    async def model_stops() -> dict[str, list[float]]:
        return {"stopped": model.stopped}

    return app


KINDS = {
    "sse-bare": sse_bare_app,
    "sse-floor": sse_floor_app,
    "ws-bare": ws_bare_app,
    **{
        kind: (lambda kind=kind: gateway_app(kind))
        for kind in (
            "gateway-instant",
            "gateway-instant-redis",
            "gateway-stream",
            "gateway-emit",
            "gateway-stall",
            "gateway-cut-stream",
            "gateway-cut-idle",
        )
    },
}


def main() -> None:
    kind = sys.argv[1]
    if kind not in KINDS:
        raise SystemExit(f"usage: python -m bench.servers {'|'.join(KINDS)}")
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})  # the server on CPU 0, the clients on CPU 1
    app = KINDS[kind]()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    # The app's own uvicorn options (permessage-deflate off), as its command line applies them.
    app_options = getattr(getattr(app, "state", None), "uvicorn_options", None) or {}
    options = {"log_level": "warning", "access_log": False, **app_options}
    uvicorn.Server(uvicorn.Config(app, **options)).run(sockets=[sock])


if __name__ == "__main__":
    main()
