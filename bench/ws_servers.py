"""The gateway for the WebSocket benchmark, in its own process: `python bench/ws_servers.py KIND`.

- stream: the fake model at 100 tokens/s, "runaway" (it never stops by itself: the edge cuts
  every answer at its max_tokens), for the concurrency and idle-memory targets;
- stall: the fake model sends three tokens, then goes silent forever, for the cancel target.
  Its model is wrapped to record when each model stream stopped (time.perf_counter(), which is
  CLOCK_MONOTONIC, so comparable with the client's clock); GET /bench/model-stops returns them.

Every limit that is not measured here (request and message rates, tokens per minute, streams
and connections per key) is raised so it never interferes; permessage-deflate stays off, as in
the gateway's own settings. Prints the port, then serves on 127.0.0.1 (CPU 0) until killed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time

import uvicorn

API_KEY = "bench-key"
TOKENS_PER_SECOND = 100.0


def settings_for(kind: str):
    from reference_impl.settings import Settings

    return Settings(
        api_keys=(API_KEY,),
        max_tokens_cap=100_000,
        max_prompt_tokens=1_000_000,
        tokens_per_minute=10**12,
        rate_limit_rps=1e6,
        rate_limit_burst=10**6,
        max_concurrent_streams=100_000,
        max_total_streams=100_000,
        ws_messages_per_second=1e6,
        ws_message_burst=10**6,
        ws_max_connections_per_key=100_000,
        fake_tokens_per_second=TOKENS_PER_SECOND,
        fake_first_token_seconds=0.2 if kind == "stream" else 0.0,
        fake_behavior="runaway" if kind == "stream" else "stall",
    )


class TimedModel:
    """The fake model, recording the moment each of its streams stopped, however it stopped."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.stopped: list[float] = []

    async def stream(self, request):
        try:
            async with contextlib.aclosing(self.inner.stream(request)) as events:
                async for event in events:
                    yield event
        finally:
            self.stopped.append(time.perf_counter())


def app_for(kind: str):
    from reference_impl.app import create_app
    from reference_impl.model import FakeModel

    settings = settings_for(kind)
    if kind == "stream":
        return create_app(settings)
    model = TimedModel(FakeModel(settings))
    app = create_app(settings, model=model)

    @app.get("/bench/model-stops")
    async def model_stops() -> dict[str, list[float]]:
        return {"stopped": model.stopped}

    return app


def main() -> None:
    kind = sys.argv[1]
    if kind not in ("stream", "stall"):
        raise SystemExit(f"usage: {sys.argv[0]} stream|stall")
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})  # the server on CPU 0, the client on CPU 1
    app = app_for(kind)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    options = {"log_level": "warning", "access_log": False, **app.state.uvicorn_options}
    uvicorn.Server(uvicorn.Config(app, **options)).run(sockets=[sock])


if __name__ == "__main__":
    main()
