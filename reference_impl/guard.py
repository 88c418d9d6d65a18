"""The stream guard: whatever the model does, every stream ends, on time, with one outcome.

The model runs in its own task and hands tokens over through a queue of one. The guard waits
for the next token against three clocks at once (first-token or idle deadline, total stream
deadline, keep-alive) and ends the stream with a structured error when one runs out. Because the
model is pulled one token at a time, a guard that stops pulling stops the model: when the client
disconnects, the wire layer cancels the guard, and the `finally` below cancels the model task
within a scheduler tick, even when the model is stalled between tokens.

The guard knows nothing about SSE or WebSockets: it yields `Delta`, `Ping` and `Finished`, and
raises `GatewayError`. The wire layers turn those into bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from .errors import GatewayError
from .model import ModelRequest, ModelStop, TextDelta

log = logging.getLogger("gateway.guard")


@dataclass(frozen=True)
class Delta:
    index: int
    text: str


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class Finished:
    stop_reason: str
    input_tokens: int
    output_tokens: int
    ttft_ms: float
    duration_ms: float


@dataclass(frozen=True)
class Limits:
    max_tokens: int
    first_token_timeout: float
    idle_timeout: float
    max_stream_seconds: float
    ping_seconds: float


@dataclass
class Progress:
    """What the guard has seen so far; read by the caller for billing after any ending."""

    generated: int = 0  # tokens the model produced (the cost meter)
    delivered: int = 0  # tokens handed on to the client
    input_tokens: int = 0
    first_token_at: float | None = None


_DONE = object()


async def _pump(model_stream: AsyncIterator, queue: asyncio.Queue, on_generated) -> None:
    """Run the model, handing each event to the guard; errors travel through the queue too."""
    try:
        async for event in model_stream:
            if isinstance(event, TextDelta):
                on_generated()
            await queue.put(event)
        await queue.put(_DONE)
    except GatewayError as error:
        await queue.put(error)
    except asyncio.CancelledError:
        raise
    except Exception:  # an unexpected model failure: log it here, tell the client nothing more
        log.exception("model stream failed")
        await queue.put(GatewayError("model_error", "The model failed while answering."))


async def guard_stream(
    model,
    request: ModelRequest,
    limits: Limits,
    progress: Progress,
    *,
    started_at: float,  # time.perf_counter() when the request arrived
    on_generated: Callable[[], None] = lambda: None,
) -> AsyncIterator[Delta | Ping | Finished]:
    """Stream the model's answer to `request` within `limits`; see the module docstring."""
    loop = asyncio.get_running_loop()
    progress.input_tokens = request.prompt_tokens
    queue: asyncio.Queue = asyncio.Queue(maxsize=1)

    def generated() -> None:
        progress.generated += 1
        on_generated()

    pump = asyncio.create_task(_pump(model.stream(request), queue, generated))
    # Deadlines run on the event loop's clock; `started_at` and the times reported to the client
    # are time.perf_counter() (uvloop's clock only counts whole milliseconds).
    loop_started = loop.time() - (time.perf_counter() - started_at)
    stream_deadline = loop_started + limits.max_stream_seconds
    token_deadline = loop_started + limits.first_token_timeout
    next_ping = loop.time() + limits.ping_seconds
    try:
        while True:
            # BEGIN SOLUTION lab05: wait for the next token against the deadlines, ping when idle
            wake_at = min(token_deadline, stream_deadline, next_ping)
            try:
                async with asyncio.timeout_at(wake_at):
                    event = await queue.get()
            except TimeoutError:
                now = loop.time()
                if now >= stream_deadline:
                    if progress.first_token_at is None:
                        raise GatewayError(
                            "model_timeout", "The model did not start answering in time."
                        ) from None
                    raise GatewayError(
                        "stream_timeout",
                        f"The stream reached its limit of {limits.max_stream_seconds:g} s.",
                    ) from None
                if now >= token_deadline:
                    if progress.first_token_at is None:
                        raise GatewayError(
                            "model_timeout",
                            f"No first token within {limits.first_token_timeout:g} s.",
                        ) from None
                    raise GatewayError(
                        "idle_timeout", f"No token for {limits.idle_timeout:g} s."
                    ) from None
                next_ping = now + limits.ping_seconds
                yield Ping()
                continue
            # END SOLUTION
            if isinstance(event, GatewayError):
                raise event
            if event is _DONE:
                raise GatewayError("model_error", "The model ended without a stop reason.")
            now = time.perf_counter()
            if isinstance(event, ModelStop):
                yield _finished(progress, event.stop_reason, started_at, now)
                return
            # BEGIN SOLUTION lab05: cut a model that ignores max_tokens, at the edge
            if progress.delivered >= limits.max_tokens:
                # The model was asked for at most max_tokens and sent more: the edge stops it.
                yield _finished(progress, "max_tokens", started_at, now)
                return
            # END SOLUTION
            if progress.first_token_at is None:
                progress.first_token_at = now
            yield Delta(progress.delivered, event.text)
            progress.delivered += 1
            token_deadline = loop.time() + limits.idle_timeout
            next_ping = loop.time() + limits.ping_seconds
    finally:
        # Runs on every ending: normal, error, client gone (cancellation), server shutdown.
        pump.cancel()
        try:
            await pump
        except (asyncio.CancelledError, Exception):
            pass


def _finished(progress: Progress, stop_reason: str, started_at: float, now: float) -> Finished:
    first = progress.first_token_at if progress.first_token_at is not None else now
    return Finished(
        stop_reason=stop_reason,
        input_tokens=progress.input_tokens,
        output_tokens=progress.delivered,
        ttft_ms=round((first - started_at) * 1000, 3),
        duration_ms=round((now - started_at) * 1000, 3),
    )
