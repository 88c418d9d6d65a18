"""The one error catalogue: every error code, its HTTP status, title and whether to retry.

Every error the gateway returns, as an HTTP body, an SSE `error` event or a WebSocket `error`
message, is the same RFC 9457 problem object [rfc9457], built here. A client reads `code` to
decide what to do, and `retryable` to know whether trying again can help, so retries are
decided by the API, not guessed by the UI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://errors.realtime-genai-labs.dev/"


@dataclass(frozen=True)
class ErrorKind:
    status: int
    title: str
    retryable: bool


CATALOGUE: dict[str, ErrorKind] = {
    # The client must change the request: retrying as it is cannot help.
    "invalid_request": ErrorKind(400, "Invalid request", False),
    "max_tokens_exceeded": ErrorKind(400, "max_tokens above the gateway's cap", False),
    "prompt_too_long": ErrorKind(400, "Prompt too long", False),
    "unauthorized": ErrorKind(401, "Missing or unknown API key", False),
    # A browser page from an origin the gateway does not allow (origins.py).
    "origin_not_allowed": ErrorKind(403, "Origin not allowed", False),
    "not_found": ErrorKind(404, "Not found", False),
    "method_not_allowed": ErrorKind(405, "Method not allowed", False),
    # A resume came after the answer's events were dropped: ask again (a new model call).
    "stream_expired": ErrorKind(410, "Stream no longer resumable", False),
    "request_too_large": ErrorKind(413, "Request body too large", False),
    "headers_too_large": ErrorKind(431, "Request headers too large", False),
    "unsupported_media_type": ErrorKind(415, "Unsupported media type", False),
    # The client may retry after waiting: Retry-After says how long.
    "rate_limited": ErrorKind(429, "Too many requests", True),
    "quota_exceeded": ErrorKind(429, "Token quota exceeded", True),
    "busy": ErrorKind(409, "An answer is already streaming", True),
    "overloaded": ErrorKind(503, "Gateway overloaded", True),
    # The shared store of the limits (Redis) is unreachable, and the gateway will not let
    # requests through unchecked.
    "limits_unavailable": ErrorKind(503, "Limits unavailable", True),
    # The gateway is stopping (a deploy, a scale-in): reconnect, possibly to another instance.
    "shutting_down": ErrorKind(503, "Gateway restarting", True),
    # A WebSocket connection reached a limit of its own and is closed (1001): open a new one.
    # There is no HTTP answer with these; 408 is the nearest status ("too long").
    "connection_idle": ErrorKind(408, "Connection idle too long", True),
    "connection_expired": ErrorKind(408, "Connection open too long", True),
    # The request's headers or body did not arrive within request_read_timeout_seconds.
    "request_timeout": ErrorKind(408, "Request not received in time", True),
    # The model or the stream failed; a retry may succeed.
    "model_timeout": ErrorKind(504, "Model did not start answering in time", True),
    "stream_timeout": ErrorKind(504, "Stream exceeded its maximum duration", False),
    "idle_timeout": ErrorKind(504, "Model went idle", True),
    "model_error": ErrorKind(502, "Model failed", True),
    "internal_error": ErrorKind(500, "Internal error", True),
}


class GatewayError(Exception):
    """An error the gateway answers with a problem object. `detail` is shown to the client,
    so it must never hold internals (stack traces, paths, upstream messages)."""

    def __init__(self, code: str, detail: str, *, retry_after_seconds: float | None = None):
        if code not in CATALOGUE:
            raise ValueError(f"unknown error code {code!r}; add it to the catalogue first")
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.retry_after_seconds = retry_after_seconds

    @property
    def status(self) -> int:
        return CATALOGUE[self.code].status


def problem(
    code: str, detail: str, request_id: str, retry_after_seconds: float | None = None
) -> dict[str, Any]:
    """The RFC 9457 problem object for `code`."""
    kind = CATALOGUE[code]
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
        "retryable": kind.retryable,
    }
    if retry_after_seconds is not None:
        body["retry_after_seconds"] = round(retry_after_seconds, 3)
    return body


def problem_from(error: GatewayError, request_id: str) -> dict[str, Any]:
    return problem(error.code, error.detail, request_id, error.retry_after_seconds)


def retry_after_header(seconds: float) -> str:
    # Retry-After takes whole seconds [rfc9110-retry-after]; round up so a client that
    # honours it is never early.
    return str(max(1, int(-(-seconds // 1))))


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """An HTTP response carrying a problem object with its real status."""
    extra = dict(headers or {})
    extra["X-Request-Id"] = body["request_id"]
    if body.get("retry_after_seconds") is not None:
        extra["Retry-After"] = retry_after_header(body["retry_after_seconds"])
    if body["code"] == "unauthorized":
        extra["WWW-Authenticate"] = 'Bearer realm="gateway"'
    if body["code"] == "request_timeout":
        # What is left of the body may still be on its way: the connection cannot be reused.
        extra["Connection"] = "close"
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=body["status"],
        media_type=PROBLEM_MEDIA_TYPE,
        headers=extra,
    )
