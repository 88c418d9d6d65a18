"""The stream guard: whatever the model does, every stream ends, on time, with one outcome.

The guard pulls the model's tokens one at a time and enforces, at the edge:
- a first-token deadline (no token yet: 504 model_timeout),
- an idle deadline between tokens (a stalled model: 504 idle_timeout),
- a total stream deadline (an endless model: 504 stream_timeout),
- max_tokens (a model that ignores its cap is cut: stop_reason max_tokens).

Because the model is pulled, not pushed, a guard that stops pulling stops the model. When the
client disconnects, the wire layer cancels the guard, and its `finally` closes the model stream
at once, even when the model is stalled between tokens.

The deadlines share one timer that is re-armed only when it fires: a token just records the
time it arrived. Arming a timer per token would cost more than the rest of the guard together.

The guard knows nothing about SSE or WebSockets: it yields `Delta` and `Finished`, and raises
`GatewayError`. The wire layers turn those into bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from .errors import GatewayError
from .model import Model, ModelRequest, ModelStop, TextDelta
from .settings import StreamLimits

log = logging.getLogger("gateway.guard")


class Delta(NamedTuple):
    # A NamedTuple: one is made per token, and it is cheaper to make than a frozen dataclass.
    index: int
    text: str


@dataclass(frozen=True)
class Finished:
    stop_reason: str
    input_tokens: int
    output_tokens: int
    ttft_ms: float
    duration_ms: float


def end_data(finished: Finished) -> dict[str, Any]:
    """The fields of the contract's `end` (SSE event, WebSocket message, JSON answer)."""
    return {
        "stop_reason": finished.stop_reason,
        "usage": {"input_tokens": finished.input_tokens, "output_tokens": finished.output_tokens},
        "ttft_ms": finished.ttft_ms,
        "duration_ms": finished.duration_ms,
    }


@dataclass
class Progress:
    """What the guard has seen so far; read by the stream session for billing after any ending.

    `finished` or `error` is set when the guard reached its end; neither, when it was stopped
    from outside (the client left, a cancel, a shutdown).
    """

    generated: int = 0  # tokens the model produced, by our count (the cost meter)
    delivered: int = 0  # tokens handed on to the client
    input_tokens: int = 0  # the prompt, by our tokenizer (the admission estimate)
    first_token_at: float | None = None  # on time.perf_counter()
    first_chunk_at: float = 0.0  # the first and the latest token, on the event loop's clock
    last_chunk_at: float = 0.0
    # The model's own usage, when its stop reported one (Bedrock's metadata.usage): billed
    # instead of our estimates.
    reported_input_tokens: int | None = None
    reported_output_tokens: int | None = None
    finished: Finished | None = None
    error: GatewayError | None = None

    @property
    def billed_input_tokens(self) -> int:
        reported = self.reported_input_tokens
        return self.input_tokens if reported is None else reported

    @property
    def billed_output_tokens(self) -> int:
        reported = self.reported_output_tokens
        return self.generated if reported is None else reported


class Deadlines:
    """The stream's deadlines on one lazily re-armed timer.

    When the timer fires while the guard waits for the model and a deadline has passed, it
    cancels the guard's task and records which deadline it was; the guard turns that into a
    structured error. While the guard is busy elsewhere (sending to the client), it checks the
    deadlines itself before it next waits.
    """

    def __init__(self, limits: StreamLimits, started_at: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.idle_timeout = limits.idle_timeout_seconds
        loop_started = self.loop.time() - (time.perf_counter() - started_at)
        self.stream_deadline = loop_started + limits.max_stream_seconds
        self.token_deadline = loop_started + limits.first_token_timeout_seconds
        # The task waiting on the model right now, else None. Not fixed at the start: the route
        # handler pulls the first token, the response's own task pulls the rest.
        self.waiting: asyncio.Task | None = None
        self.expired: str | None = None
        self.handle: asyncio.TimerHandle | None = None
        self.armed_for = float("inf")  # when the timer fires, while one is armed

    def arm(self) -> None:
        """Make sure the timer will fire at the next deadline (called before each wait)."""
        if self.handle is None:
            self.armed_for = min(self.stream_deadline, self.token_deadline)
            self.handle = self.loop.call_at(self.armed_for, self.fire)

    def token_arrived(self, now: float) -> None:
        self.token_deadline = now + self.idle_timeout
        if self.token_deadline < self.armed_for:
            # Only a deadline that moved earlier needs a new timer: the first token, when the
            # idle timeout is shorter than the first-token timeout. Later ones just wait.
            self.stop()

    def passed(self, now: float) -> str | None:
        """Which deadline has passed at `now`: "stream", "token", or None."""
        if now >= self.stream_deadline:
            return "stream"
        if now >= self.token_deadline:
            return "token"
        return None

    def fire(self) -> None:
        self.handle, self.armed_for = None, float("inf")
        expired = self.passed(self.loop.time())
        if expired is None:
            self.arm()  # a token came in time and moved the deadline: wait for the new one
        elif self.waiting is not None:
            self.expired = expired
            self.waiting.cancel()
        # else: the guard is busy sending; it checks the deadlines before it waits again.

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle, self.armed_for = None, float("inf")


def timeout_error(expired: str, first_token_seen: bool, limits: StreamLimits) -> GatewayError:
    """The structured error for a deadline that passed ("stream" or "token")."""
    if not first_token_seen:
        seconds = min(limits.first_token_timeout_seconds, limits.max_stream_seconds)
        return GatewayError("model_timeout", f"No first token within {seconds:g} s.")
    if expired == "stream":
        return GatewayError(
            "stream_timeout", f"The stream reached its limit of {limits.max_stream_seconds:g} s."
        )
    return GatewayError("idle_timeout", f"No token for {limits.idle_timeout_seconds:g} s.")


def model_failure(error: Exception) -> GatewayError:
    """The structured error for a model stream that failed in a way of its own (raised
    something other than a GatewayError, or ended without a stop reason)."""
    if isinstance(error, StopAsyncIteration):
        return GatewayError("model_error", "The model ended without a stop reason.")
    log.error("model stream failed", exc_info=error)  # tell the client nothing more
    return GatewayError("model_error", "The model failed while answering.")


async def guard_stream(
    model: Model,
    request: ModelRequest,
    limits: StreamLimits,
    progress: Progress,
    *,
    started_at: float,  # time.perf_counter() when the request arrived
) -> AsyncIterator[Delta | Finished]:
    """Stream the model's answer to `request` within `limits`; see the module docstring.

    Everything the caller needs after any ending is in `progress`: the counts, the model's own
    usage when it reported one, and the `Finished` or the `GatewayError` that ended it.

    The lab's task is the deadline racing the model. Open the model's stream of events with
    `stream = model.stream(request)` and its deadlines' one timer with `deadlines =
    Deadlines(limits, started_at)`; `take(event, progress, limits, deadlines, started_at)`
    (given) records one event in `progress` and returns what to yield. Then loop, per event:
    - before waiting, raises `timeout_error(expired, first_token_seen, limits)` if
      `deadlines.passed(now)` names a deadline (the timer interrupts only a wait), then calls
      `deadlines.arm()` and sets `deadlines.waiting` to the current task, for the wait only;
    - awaits `anext(stream)`. If that wait is cancelled and `deadlines.expired` is set, the
      cancel is our deadline's: uncancel the task and raise `timeout_error(deadlines.expired,
      ...)`; if it is not set, the client left or the server is stopping: re-raise the
      `CancelledError` untouched. A `GatewayError` from the model passes through; any other
      exception (and `StopAsyncIteration`) becomes `model_failure(error)`;
    - yields `take(...)`'s result; returns after yielding a `Finished`, and after a `Delta`
      counts it as delivered (`progress.delivered += 1`) when the consumer asks for more.
    A `GatewayError` that ends the stream is recorded in `progress.error`, then raised. However
    the loop ends (an answer, an error, a cancel, a client that stops iterating), it stops the
    timer (`deadlines.stop()`) and closes the model (`await stream.aclose()`) in `finally`.
    """
    progress.input_tokens = request.prompt_tokens
    # BEGIN SOLUTION lab05: race the model against its deadlines; close it however it ends
    stream = model.stream(request)
    deadlines = Deadlines(limits, started_at)
    loop = deadlines.loop
    try:
        while True:
            expired = deadlines.passed(loop.time())  # the timer only interrupts a wait
            if expired:
                raise timeout_error(expired, progress.first_token_at is not None, limits)
            deadlines.arm()
            deadlines.waiting = asyncio.current_task()
            try:
                event = await anext(stream)
            except asyncio.CancelledError:
                if deadlines.expired is None:
                    raise  # the client left or the server is stopping: not ours to handle
                asyncio.current_task().uncancel()
                raise timeout_error(
                    deadlines.expired, progress.first_token_at is not None, limits
                ) from None
            except GatewayError:
                raise
            except Exception as error:
                raise model_failure(error) from None
            finally:
                deadlines.waiting = None
            item = take(event, progress, limits, deadlines, started_at)
            yield item
            if type(item) is Finished:
                return
            progress.delivered += 1  # counted once the consumer took it and asked for more
    except GatewayError as error:
        progress.error = error  # no per-token cost: a try block is free until it raises
        raise
    finally:
        # Runs on every ending: normal, error, client gone (cancellation), server shutdown.
        deadlines.stop()
        await stream.aclose()
    # END SOLUTION


def take(
    event: TextDelta | ModelStop,
    progress: Progress,
    limits: StreamLimits,
    deadlines: Deadlines,
    started_at: float,
) -> Delta | Finished:
    """Record one model event in `progress`: a `Delta` to send (counted as delivered by the
    guard once it is taken), or the stream's `Finished`."""
    if isinstance(event, ModelStop):
        progress.reported_input_tokens = event.input_tokens
        progress.reported_output_tokens = event.output_tokens
        return finished(progress, event.stop_reason, started_at)
    progress.generated += 1
    # BEGIN SOLUTION lab05: cut a model that ignores max_tokens, at the edge
    if progress.delivered >= limits.max_tokens:
        # The model was asked for at most max_tokens and sent more: the edge stops it.
        return finished(progress, "max_tokens", started_at)
    # END SOLUTION
    now = deadlines.loop.time()
    if progress.first_token_at is None:
        progress.first_token_at = time.perf_counter()
        progress.first_chunk_at = now
    progress.last_chunk_at = now
    deadlines.token_arrived(now)
    return Delta(progress.delivered, event.text)


def finished(progress: Progress, stop_reason: str, started_at: float) -> Finished:
    """The stream's end, recorded in `progress`: the model's own usage when it reported one,
    else our counts (the prompt by our tokenizer, the tokens delivered)."""
    now = time.perf_counter()
    first = progress.first_token_at if progress.first_token_at is not None else now
    reported_output = progress.reported_output_tokens
    progress.finished = Finished(
        stop_reason=stop_reason,
        input_tokens=progress.billed_input_tokens,
        output_tokens=progress.delivered if reported_output is None else reported_output,
        ttft_ms=round((first - started_at) * 1000, 3),
        duration_ms=round((now - started_at) * 1000, 3),
    )
    return progress.finished


__all__ = ["Deadlines", "Delta", "Finished", "Progress", "TextDelta", "end_data", "guard_stream"]
