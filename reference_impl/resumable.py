"""An SSE answer that outlives its connection: made once, read by whoever comes back for it.

`POST /v1/ask/stream` hands its admitted `StreamSession` to a `ResumableAnswer`: a task of its
own pulls the guarded model stream, encodes each event (`wire_sse.sse_body`) and writes it to
the replay buffer (replay.py). The POST's response is only the answer's first reader;
`GET /v1/ask/stream/{request_id}` is any later one. A client that loses its connection loses
no answer, and the model is called once however often the client reconnects. While a reader
on this worker waits for the next event, the task writes it to that reader's connection
itself (replay.MemoryReplay, wire_sse.DirectWrite): one task's step per token, not two.

The grace period (`resume_grace_seconds`). The model no longer stops the moment its reader
leaves: a dropped connection and a person who left look the same to the server. Once no
client has read the answer for the grace period, the task is cancelled, which stops the model
(the guard's `finally`) and settles the stream as `client_disconnect`, or as `send_timeout`
when its last reader was dropped for not reading. The trade is cost against resilience: a
longer grace saves more answers from a flaky network, and pays the tokens of every answer
nobody comes back for (at most the grace period's worth of tokens each). After that, a resume
is told `410 stream_expired`; a finished answer stays replayable for `stream_retention_seconds`.

The bill is final before the terminal event is written, as it was when the response itself
closed the session: a client that has the `end` event can read the meters at once.
"""

from __future__ import annotations

import asyncio
import logging

import anyio

from . import sse, wire_sse
from .errors import GatewayError, problem_from
from .replay import ReplayBuffer
from .session import StreamSession
from .shared_limits import REDIS_DOWN
from .wire_sse import sse_body

log = logging.getLogger("gateway.resume")
# The answer's maker lets the event loop run after this many events, however fast the model.
YIELD_EVERY = 16


def buffer_unavailable() -> GatewayError:
    # The same answer as when the shared limits cannot be reached: the store the workers
    # share is down, and waiting a moment may help.
    return GatewayError(
        "limits_unavailable",
        "The store this gateway keeps streamed answers in cannot be reached right now; "
        "try again shortly.",
        retry_after_seconds=1.0,
    )


class ResumableAnswer:
    """One answer being made in the background, into the replay buffer."""

    def __init__(self, session: StreamSession, buffer: ReplayBuffer, grace: float) -> None:
        self.session = session
        self.buffer = buffer
        self.grace = grace
        self.request_id = session.request_id
        # Why the model was stopped, if no reader came back: what the last reader's
        # connection ended with.
        self.stopped_because = "client_disconnect"
        self.task: asyncio.Task | None = None
        self.watch: asyncio.Task | None = None
        self.finished = False  # the terminal event is written: nothing left to stop
        self.event_id = 0  # the id of the last event written
        self.body = None  # the encoded events (wire_sse.sse_body), from `start`
        self.ending_error: GatewayError | None = None  # set by `end_with` (a shutdown)

    async def start(self, first) -> None:
        """Write the first events (`start`, then the first token or the end) at once, so the
        response finds them as it starts, then make the rest in a task of its own."""
        session = self.session
        self.body = sse_body(first, session.items, session.start_data(), self.request_id)
        for _ in range(2):  # neither waits for the model: `first` is already here
            await self.write(await anext(self.body))
        self.task = asyncio.create_task(self.produce(), name=f"answer {self.request_id}")

    def first_reader_left(self) -> None:
        """The POST's own response ended: from now on, the grace period counts. (Not from
        the start: the response begins reading only after the route has returned.)"""
        if self.watch is None and not self.finished:
            self.watch = asyncio.create_task(self.watch_readers(), name=f"grace {self.request_id}")

    async def write(self, event: bytes) -> None:
        """Add the next event to the buffer; the terminal one only once the bill is final."""
        self.event_id += 1
        progress = self.session.progress
        if self.event_id > 1 and (progress.finished is not None or progress.error is not None):
            # The terminal event: settle first, then let the readers see it.
            self.finished = True
            await self.close_session()
            await self.buffer.append(self.request_id, self.event_id, event)
            await self.buffer.finish(self.request_id)
            return
        await self.buffer.append(self.request_id, self.event_id, event)

    async def produce(self) -> None:
        try:
            async for event in self.body:
                await self.write(event)
                if self.event_id % YIELD_EVERY == 0:
                    # A model that never waits (a cache, a fast local model) would otherwise
                    # hold the event loop until its last token: no reader could send meanwhile.
                    await asyncio.sleep(0)
        except REDIS_DOWN as error:
            # Nobody can read the answer any more: stop the model, as for a client gone.
            log.warning(
                "answer %s stopped: its replay buffer is unreachable (%s)", self.request_id, error
            )
            self.session.fail(buffer_unavailable())
        finally:
            if self.watch is not None:
                self.watch.cancel()
            with anyio.move_on_after(wire_sse.CLOSE_TIMEOUT_SECONDS, shield=True):
                await self.body.aclose()
            await self.close_session()
            if not self.finished:
                with anyio.move_on_after(wire_sse.CLOSE_TIMEOUT_SECONDS, shield=True):
                    try:
                        if self.ending_error is not None:
                            await self.write_ending()
                        else:
                            await self.buffer.abandon(self.request_id)
                    except REDIS_DOWN:
                        pass  # its key expires on its own

    async def end_with(self, error: GatewayError) -> None:
        """End the answer now with `error` as its terminal event (the server stops): the
        model is stopped and the stream settled with it, then the event is written, with the
        next id, for the readers to deliver."""
        if self.finished or self.task is None or self.task.done():
            return
        self.ending_error = self.session.fail(error)
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def write_ending(self) -> None:
        self.event_id += 1
        self.finished = True
        problem = problem_from(self.ending_error, self.request_id)
        await self.buffer.append(
            self.request_id, self.event_id, sse.encode_json_event("error", problem, self.event_id)
        )
        await self.buffer.finish(self.request_id)

    async def close_session(self) -> None:
        # Shielded and bounded, as the response's own clean-up was: a cancelled answer (no
        # reader came back, the server stops) still stops its model and settles, and a model
        # that will not close cannot hold the bill or the terminal event back.
        with anyio.move_on_after(wire_sse.CLOSE_TIMEOUT_SECONDS, shield=True):
            await self.session.close(self.stopped_because)

    async def watch_readers(self) -> None:
        """Stop the answer once no client has read it for the grace period."""
        try:
            await self.buffer.unread_for_grace(self.request_id)
        except Exception:  # the buffer's store failed: nobody can resume, so stop the model
            log.warning("could not tell whether answer %s has a reader", self.request_id)
        if self.task is not None and not self.finished:
            self.task.cancel()


class ResumableAnswers:
    """The answers this worker is making, and the buffer every worker reads them from."""

    def __init__(self, buffer: ReplayBuffer, grace: float) -> None:
        self.buffer = buffer
        self.grace = grace
        self.live: dict[str, ResumableAnswer] = {}

    async def start(self, session: StreamSession, first, api_key: str) -> ResumableAnswer:
        """Start making the answer; raises limits_unavailable when the buffer is down."""
        answer = ResumableAnswer(session, self.buffer, self.grace)
        try:
            await self.buffer.open(session.request_id, api_key)
            await answer.start(first)
        except REDIS_DOWN as error:
            log.warning(
                "answer %s refused: its replay buffer is unreachable (%s)",
                session.request_id,
                error,
            )
            raise buffer_unavailable() from None
        self.live[answer.request_id] = answer
        answer.task.add_done_callback(lambda _: self.live.pop(answer.request_id, None))
        return answer

    async def state(self, request_id: str, api_key: str):
        """How the answer stands for `api_key` (replay.State, or None: not theirs or unknown);
        raises limits_unavailable when the buffer is down."""
        try:
            return await self.buffer.state(request_id, api_key)
        except REDIS_DOWN:
            raise buffer_unavailable() from None

    async def has_everything(self, request_id: str, after: int) -> bool:
        """Whether a client that has the events up to `after` of this finished answer already
        has its terminal event; raises limits_unavailable when the buffer is down."""
        try:
            return after >= await self.buffer.last_event_id(request_id)
        except REDIS_DOWN:
            raise buffer_unavailable() from None

    def reader_left(self, request_id: str, stopped_because: str) -> None:
        """A reader's connection on this worker ended: the first one starts the grace
        period's watch; the last one names the answer's ending, should nobody come back."""
        answer = self.live.get(request_id)
        if answer is not None:
            answer.stopped_because = stopped_because
            answer.first_reader_left()

    async def shutdown(self, error: GatewayError) -> None:
        """End every answer still being made with `error` (the server is stopping)."""
        await asyncio.gather(*(answer.end_with(error) for answer in list(self.live.values())))

    async def aclose(self) -> None:
        """Stop every answer still being made (the server is stopping), then the buffer."""
        tasks = [answer.task for answer in self.live.values() if answer.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.buffer.aclose()
