"""One stream's life, written once: admitted, opened, pulled, closed exactly once.

`POST /v1/ask/stream` (SSE), `POST /v1/ask` (one JSON body), the WebSocket chat and the Lambda
handler of the WebSocket API only encode what a `StreamSession` yields:

    session = await StreamSession.admit(gateway, key, model_request, request_id)  # or refused
    first = await session.first()     # before any HTTP status is committed; GatewayError here
    async for item in session.items:  # Delta ... then one Finished; GatewayError ends it
        ...
    await session.close()             # however it ended: stop the model, free, bill, count

The guard (guard.py) enforces the limits and records in `session.progress` what happened; the
session turns that into the bill and the metrics, in `settle`, the only place a stream is
counted. When the model reports its own usage (Bedrock's `metadata.usage`), that is what the
`end` event says and what is billed; our tokenizer's estimate is used for the admission
reservation and for models that report nothing.

Deliberate choices on the per-token path. A token's whole server cost is about 10 µs, and
`make bench` holds it to 1.3x a bare sse-starlette endpoint, so each of these is kept where the
plain way would cost a large share of that (figures measured on the course VM):
- the send watchdog (wire_sse.SendWatchdog): one timer looks now and then at whether a send is
  stuck, instead of a timer armed and cancelled per event: 26 -> 19 µs per token (2026-11-24);
- no per-send cancel scope (the response's own send loop, wire_sse.WatchedEventSourceResponse,
  which also spares a stream sse-starlette's four tasks), the hand-written delta encoder
  (sse.encode_delta_event) and the clean-up after the response, together: 18.7 -> 10.4 µs
  per token (2026-11-24). The encoder alone writes a delta in 0.6 µs where the general JSON
  event takes 5.9 µs (2026-11-29);
- the guard's deadlines on one lazily re-armed timer (guard.Deadlines): a token only records
  when it arrived, where re-arming a timer per token costs 5.1 µs (call_at + cancel,
  2026-11-29);
- metrics counted once per stream, in `settle`, never per token: one labelled counter update
  costs 2.3-5.4 µs (prometheus_client takes a lock; 2026-11-29), so a stream's tokens are
  added in one call when it ends;
- the chat's hand-written delta message (wire_ws.encode_delta), as SSE's: 13.1 -> 1.1 µs a
  delta, and the chat's own work per token (a send that costs nothing) 23 -> 10-12 µs
  (2026-11-29, a busy machine: min of repeats, before and after side by side).
Before the first token, a request counted its prompt three times and added up its key's last
minute of reservations; now it does neither (2026-11-29, a busy machine, before and after side
by side):
- the prompt is counted once per request (`ModelRequest.prompt_tokens` is cached; the edge, the
  admission and the guard all read it) and by its tokens' cores (tokenizer.count_tokens): three
  counts of 228 µs of the 176-token document became one of 71 µs, and a built-in document is
  counted once for every ask about it (documents.document_tokens);
- a key's token budget keeps the sum of its 60-second window (limits.ReservationLog) instead of
  adding it up on every request; with both, the server's Python calls per one-token SSE request
  fell from 3,550 to 1,670 (cProfile, 300 requests after 50);
- the stream routes are Starlette routes (app.stream_route: FastAPI's request handling took
  70-97 µs a request), the response sends from the request's own task (sse-starlette's loop
  took 150-240 µs to a first delta in process, a bare StreamingResponse 30-60), the disconnect
  watcher starts only once the work waits (disconnect.unless_disconnected), the body deadline
  is asyncio's (6 µs against anyio's 17), and the `start` event's limits are written by hand;
  together the time to first token the gateway adds fell from 0.66-0.91 ms to 0.14-0.21 ms
  (2026-11-29, loopback, against bare sse-starlette: `make bench` runs, and min of three
  rounds of 300 side by side).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from .errors import GatewayError
from .gateway import Gateway
from .guard import Delta, Finished, Progress, finished, guard_stream
from .model import ModelRequest
from .shared_limits import Hold

# How a stream ended, when it did not end with its answer: the values of
# gateway_stream_cancellations_total{reason}. A guard's error is named by its code; a stream
# stopped from outside by why it was stopped.
EARLY_ENDINGS = frozenset(
    {
        "cancelled",  # the WebSocket client sent `cancel`
        "client_disconnect",  # the client left
        "send_timeout",  # the client stopped reading
        "stream_timeout",
        "idle_timeout",
        "model_error",
    }
)


class StreamSession:
    """One admitted stream: its guarded items, its progress, and its single close."""

    def __init__(
        self,
        gateway: Gateway,
        request: ModelRequest,
        hold: Hold,
        request_id: str,
        started: float | None = None,
        admitting_at: float | None = None,
    ) -> None:
        self.gateway = gateway
        self.request = request
        self.hold = hold
        self.request_id = request_id
        self.admitted_at = time.perf_counter()
        self.started = self.admitted_at if started is None else started
        # When admission began: the edge checks ran from `started` to here (for the spans).
        self.admitting_at = self.admitted_at if admitting_at is None else admitting_at
        self.limits = gateway.settings.stream_limits(request.max_tokens)
        self.progress = Progress()
        self.items: AsyncIterator[Delta | Finished] = guard_stream(
            gateway.model, request, self.limits, self.progress, started_at=self.started
        )
        self.closed = False

    @classmethod
    async def admit(
        cls,
        gateway: Gateway,
        key: str,
        request: ModelRequest,
        request_id: str,
        started: float | None = None,
    ) -> StreamSession:
        """Take a stream slot and reserve the key's tokens, or raise the refusal. The key's
        request rate is checked before, when the request arrives (see app.api_key)."""
        admitting_at = time.perf_counter()
        hold = await gateway.admission.admit(key, request.prompt_tokens, request.max_tokens)
        gateway.metrics.model_requests.labels(model=gateway.model.name).inc()
        gateway.metrics.streams_active.inc()
        return cls(gateway, request, hold, request_id, started, admitting_at)

    def start_data(self) -> dict[str, Any]:
        """What the `start` event of an SSE stream says."""
        return {
            "request_id": self.request_id,
            "model": self.gateway.model.name,
            "limits": self.limits.as_contract(),
        }

    async def first(self) -> Delta | Finished:
        """The first token (or an empty answer's end), pulled before anything is sent.

        The HTTP status is committed only after this returns, so an error before the first
        token (model throttled, first-token timeout) is a plain HTTP error with its real
        status. On an error the session is closed before it propagates.
        """
        try:
            async for item in self.items:
                return item
            self.progress.error = GatewayError("model_error", "The model ended without answering.")
            raise self.progress.error
        except BaseException:
            await self.close()
            raise

    def cancel(self) -> Finished:
        """End the answer here, at the client's request (the WebSocket `cancel`): the end of
        an answer cut short, with what was delivered so far. Close the session next."""
        return finished(self.progress, "cancelled", self.started)

    def fail(self, error: GatewayError) -> GatewayError:
        """End the stream with an error from outside the guard (the WebSocket connection
        closing under it): counted and billed as the guard's own errors are. Close next."""
        self.progress.error = error
        return error

    def ending(self, stopped_because: str) -> str:
        """How the stream ended: its stop reason, its error's code, or why it was stopped."""
        progress = self.progress
        if progress.finished is not None:
            return progress.finished.stop_reason
        if progress.error is not None:
            return progress.error.code
        return stopped_because

    async def close(self, stopped_because: str = "client_disconnect") -> None:
        """Stop the model, then settle; only the first call does anything.

        `stopped_because` names the ending when the guard did not reach one: the client left
        ("client_disconnect") or stopped reading ("send_timeout"). The bill and the slot are
        settled even when stopping the model fails or is cut short.
        """
        if self.closed:
            return
        self.closed = True
        closing_at = time.perf_counter()
        try:
            await self.items.aclose()
        finally:
            ending = self.ending(stopped_because)
            progress = self.progress
            try:
                # Runs even in a task being cancelled (the client left): the release is
                # shielded by the hold itself. A Redis hold finishes its script in a shielded
                # task; this worker's memory frees the slot without ever suspending, so the
                # default mode pays no extra task or lock per stream.
                await self.hold.release(
                    progress.billed_input_tokens + progress.billed_output_tokens
                )
            finally:
                self.settle(ending)
                if self.gateway.telemetry is not None:  # off by default: this check is all
                    self.gateway.telemetry.record(self, ending, closing_at)

    def settle(self, ending: str) -> None:
        """Bill what the model generated and count the stream (its slot is already free):
        every metric of a stream is counted here, once, with the same `ending`."""
        gateway, progress = self.gateway, self.progress
        metrics, settings = gateway.metrics, gateway.settings
        input_tokens, output_tokens = progress.billed_input_tokens, progress.billed_output_tokens
        metrics.tokens_generated.labels(model=gateway.model.name).inc(output_tokens)
        metrics.tokens_delivered.inc(progress.delivered)
        metrics.cost_dollars.inc(
            input_tokens / 1000 * settings.price_per_1k_input_tokens
            + output_tokens / 1000 * settings.price_per_1k_output_tokens
        )
        if progress.error is not None:
            gateway.reject(progress.error.code)
        if ending in EARLY_ENDINGS:
            metrics.cancellations.labels(reason=ending).inc()
        if progress.first_token_at is not None:
            metrics.ttft.observe(progress.first_token_at - self.started)
        metrics.streams_active.dec()
        # Last: course.measure waits for this count to know a stream is settled.
        metrics.stream_duration.observe(time.perf_counter() - self.started)
