"""Servers for the benchmark, run in their own process: `python bench/servers.py bare|gateway`.

- bare: a plain sse-starlette endpoint that yields pre-encoded events as fast as it can,
  the floor the gateway is measured against;
- gateway: the reference gateway with every limit on, streaming from a model that costs
  nothing, cut at max_tokens by the edge.
Both print their port, then serve on 127.0.0.1 until killed.
"""

from __future__ import annotations

import os
import socket
import sys

import uvicorn
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route


def bare_app() -> Starlette:
    async def stream(request: Request):
        count = int(request.query_params.get("n", "1000"))

        async def events():
            yield b'id: 1\nevent: start\ndata: {"request_id":"req_0"}\n\n'
            for index in range(count):
                yield b'id: %d\nevent: delta\ndata: {"index":%d,"text":" token"}\n\n' % (
                    index + 2,
                    index,
                )
            yield b'id: %d\nevent: end\ndata: {"stop_reason":"max_tokens"}\n\n' % (count + 2)

        return EventSourceResponse(events(), ping=0)

    return Starlette(routes=[Route("/stream", stream, methods=["GET", "POST"])])


class InstantModel:
    """Emits a token the moment it is asked and never stops: what remains is the gateway's own
    cost (edge checks, admission, guard, wire), which is what the targets are about."""

    name = "instant"

    async def stream(self, request):
        from reference_impl.model import TextDelta

        token = TextDelta(" token")
        while True:
            yield token


def gateway_app():
    from reference_impl.app import create_app
    from reference_impl.settings import Settings

    settings = Settings(
        api_keys=("bench-key",),
        max_tokens_cap=1_000_000,
        tokens_per_minute=10**12,
        rate_limit_rps=1e6,
        rate_limit_burst=10**6,
    )
    return create_app(settings, model=InstantModel())


def main() -> None:
    kind = sys.argv[1]
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {0})  # the server on CPU 0, the client on CPU 1
    app = bare_app() if kind == "bare" else gateway_app()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
