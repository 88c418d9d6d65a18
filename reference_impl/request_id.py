"""Request ids: every HTTP request gets one, and every answer says it in `X-Request-Id`.

The id is put in the request's scope state (`request.state.request_id`) before anything else
runs, so a problem object, a log line and a stream's `start` event all quote the same one. The
time the request arrived is kept beside it: a stream's time to first token counts from there.
A pure ASGI middleware: it touches only a response's first message.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"


def new_request_id() -> str:
    return "req_" + secrets.token_hex(8)


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"], state["received_at"] = request_id, time.perf_counter()
        header = (HEADER, request_id.encode())

        # A plain function handing back the inner send's awaitable: every streamed event goes
        # through it, and an `async def` would add a coroutine of its own to each.
        def send_with_id(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == HEADER for name, _ in headers):
                    headers.append(header)
                message = {**message, "headers": headers}
            return send(message)

        await self.app(scope, receive, send_with_id)
