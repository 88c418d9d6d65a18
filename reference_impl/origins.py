"""Which browser pages may call the gateway: the `Origin` check, on HTTP (CORS) and WebSockets.

A browser sends `Origin` with a cross-origin request and with every WebSocket handshake, and
it attaches nothing a server could tell apart from a page of its own. A WebSocket is not
covered by CORS at all: any page anywhere can open one to us. So the server decides:
- no `Origin`: not a browser (curl, an SDK, a backend); nothing to check;
- the same origin (the Origin's host:port is the request's Host, as for the demo page) or one
  in `allowed_origins`: let through; a listed cross origin gets the CORS headers it needs;
- anything else, including the opaque origin `null`: refused before the app runs, with 403
  `origin_not_allowed`. A WebSocket is refused before it is accepted, through the ASGI
  `websocket.http.response` extension (uvicorn has it), else with a plain 403.
Only what needs a key is checked (the API and the presenter switch); the contract, the docs,
the health check and the demo page itself are public and serve any page.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import PROBLEM_MEDIA_TYPE, problem, problem_response
from .request_id import new_request_id

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# What a listed cross origin may send and read (CORS).
ALLOW_METHODS = "GET, POST"
ALLOW_HEADERS = "Authorization, Content-Type, Last-Event-ID"
EXPOSE_HEADERS = "X-Request-Id, Retry-After"
PREFLIGHT_MAX_AGE = "600"
# The paths that need an API key, so the ones a foreign page must not reach.
CHECKED_PATHS = ("/v1/", "/demo/fake-model")


def host_port(netloc: str, scheme: str) -> str:
    """`host:port`, with the scheme's default port filled in, lower-case."""
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port or DEFAULT_PORTS.get(scheme, 0)
        return f"{parts.hostname or ''}:{port}"
    except ValueError:  # a malformed port
        return ""


class OriginPolicy:
    def __init__(self, allowed_origins: tuple[str, ...]) -> None:
        self.allowed = frozenset(origin.lower().rstrip("/") for origin in allowed_origins)

    def listed(self, origin: str) -> bool:
        return origin.lower().rstrip("/") in self.allowed

    @staticmethod
    def same_origin(origin: str, host: str | None) -> bool:
        """Whether `origin` (scheme://host[:port]) names the host the request was sent to."""
        if not host:
            return False
        parts = urlsplit(origin.strip().lower())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False
        mine = host_port(parts.netloc, parts.scheme)
        return bool(mine) and mine == host_port(host.strip().lower(), parts.scheme)

    def allows(self, origin: str, host: str | None) -> bool:
        return self.same_origin(origin, host) or self.listed(origin)


class OriginMiddleware:
    """Refuses a foreign `Origin` before the app runs; answers CORS for listed origins."""

    def __init__(
        self, app: ASGIApp, allowed_origins: tuple[str, ...], on_reject: Callable[[str], None]
    ) -> None:
        self.app = app
        self.policy = OriginPolicy(allowed_origins)
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not scope["path"].startswith(
            CHECKED_PATHS
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        origin_bytes = headers.get(b"origin")
        if origin_bytes is None:  # not a browser: nothing to check
            await self.app(scope, receive, send)
            return
        origin = origin_bytes.decode("latin-1")
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.policy.allows(origin, host):
            await self.refuse(scope, receive, send)
            return
        if scope["type"] == "websocket" or self.policy.same_origin(origin, host):
            await self.app(scope, receive, send)
            return
        await self.cross_origin(scope, receive, send, origin_bytes, headers)

    async def cross_origin(
        self, scope: Scope, receive: Receive, send: Send, origin: bytes, headers: dict
    ) -> None:
        """A listed origin: answer its preflight, and let it read the answers."""
        cors = [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            cors += [
                (b"access-control-allow-methods", ALLOW_METHODS.encode()),
                (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
                (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode()),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": cors})
            await send({"type": "http.response.body", "body": b""})
            return
        cors.append((b"access-control-expose-headers", EXPOSE_HEADERS.encode()))

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *cors]}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.on_reject("origin_not_allowed")
        request_id = scope.get("state", {}).get("request_id") or new_request_id()
        body = problem(
            "origin_not_allowed",
            "Pages from this origin may not call the gateway; its operator lists the allowed "
            "ones in GATEWAY_ALLOWED_ORIGINS.",
            request_id,
        )
        if scope["type"] == "http":
            await problem_response(body)(scope, receive, send)
            return
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1008})  # the server answers 403
            return
        content = json.dumps(body, separators=(",", ":")).encode()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(content)).encode()),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": content})
