"""The SSE wire layer: guard items in, the contract's event stream out.

Every stream is `start`, then `delta`s (with `: ping` comments while the model is quiet), then
exactly one terminal event, `end` or `error`, and then it closes. Every event has an id, counting
up from 1, so a client can tell it missed one. An error after the first token cannot change the
HTTP status any more (200 was sent), so the `error` event's problem object carries the status
the error would have had.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from . import sse
from .errors import GatewayError, problem_from
from .guard import Delta, Finished, Ping


@dataclass
class StreamOutcome:
    """How a stream ended, for billing and metrics; `reason` stays "client_disconnect" unless
    the stream reached a terminal event."""

    reason: str = "client_disconnect"
    finished: Finished | None = None
    error: GatewayError | None = None


async def sse_body(
    first: Delta | Ping | Finished,
    rest: AsyncIterator[Delta | Ping | Finished],
    start_data: dict[str, Any],
    request_id: str,
    outcome: StreamOutcome,
) -> AsyncIterator[bytes]:
    """Encode one stream: `start`, the guard's items from `first` on, then one terminal event.

    `rest` raises GatewayError when the stream fails; that becomes the terminal `error` event.
    Fill in `outcome` so the caller can bill and count however the stream ended.
    """
    # BEGIN SOLUTION lab03: send start, deltas, pings and exactly one terminal event, ids from 1
    event_id = 1
    yield sse.encode_json_event("start", start_data, id=event_id)
    item = first
    try:
        while True:
            if isinstance(item, Ping):
                yield sse.encode_comment("ping")  # a comment is not an event and takes no id
            elif isinstance(item, Delta):
                event_id += 1
                data = {"index": item.index, "text": item.text}
                yield sse.encode_json_event("delta", data, id=event_id)
            elif isinstance(item, Finished):
                outcome.reason, outcome.finished = item.stop_reason, item
                yield sse.encode_json_event("end", end_data(item), id=event_id + 1)
                return
            item = await anext(rest)
    except GatewayError as error:
        outcome.reason, outcome.error = error.code, error
        yield sse.encode_json_event("error", problem_from(error, request_id), id=event_id + 1)
    # END SOLUTION


def end_data(finished: Finished) -> dict[str, Any]:
    return {
        "stop_reason": finished.stop_reason,
        "usage": {"input_tokens": finished.input_tokens, "output_tokens": finished.output_tokens},
        "ttft_ms": finished.ttft_ms,
        "duration_ms": finished.duration_ms,
    }


async def first_item(items: AsyncIterator[Delta | Ping | Finished]) -> Delta | Finished:
    """The first token (or an empty answer's end), skipping pings; errors propagate.

    The HTTP status is committed only after this returns, so an error before the first token
    (model throttled, first-token timeout) is a plain HTTP error with its real status.
    """
    async for item in items:
        if not isinstance(item, Ping):
            return item
    raise GatewayError("model_error", "The model ended without answering.")
