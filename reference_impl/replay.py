"""Where a streamed answer's events wait for a client that reconnects: the replay buffer.

Every SSE event of an answer is written here, already encoded, under its id (1, 2, 3, ...).
A client that lost its connection asks `GET /v1/ask/stream/{request_id}` with the last id it
saw and reads the events after it from here: first those already written, then, while the
answer is still streaming, each new one as it comes, up to the one terminal event.

Two implementations behind one `ReplayBuffer` protocol, picked by `build_replay(settings)`:
- `MemoryReplay`, the embedded default: this worker's memory. A resume must reach the worker
  that streams the answer;
- `RedisReplay`, with `GATEWAY_REDIS_URL`: one Redis Stream per answer (XADD to write, XRANGE
  and XREAD BLOCK to read), so a resume that lands on any worker replays and continues.

What bounds it. An answer has at most max_tokens + 2 events (start, one per token, one
terminal), so one answer's events are bounded by the gateway's max_tokens cap; a finished
answer is kept for `stream_retention_seconds` (Redis: the key's expiry), then only the fact
that it existed is kept a while longer, so a late resume is told `410 stream_expired` rather
than `404`. An answer is readable only with the API key that started it: the owner is kept
as a hash of the key, never the key itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .settings import Settings
from .shared_limits import REDIS_DOWN
from .wire_sse import DirectWrite

log = logging.getLogger("gateway.resume")
Clock = Callable[[], float]
# What a lookup finds: the answer is streaming, finished (and replayable), or was replayable
# once and no longer is. None: no such answer for this key (unknown, or another key's).
State = Literal["live", "done", "expired"]
# How long the fact that an answer existed outlives its events, so a late resume hears 410
# (too late) rather than 404 (never was). Only its owner's hash is kept that long.
REMEMBER_EXPIRED_SECONDS = 24 * 3600.0
# The most expired answers one worker's memory remembers (oldest forgotten first).
REMEMBER_EXPIRED_MAX = 100_000
# A Redis reader blocks at most this long per XREAD, then says it is still reading.
READ_BLOCK_SECONDS = 1.0
# The most events a reader sends in one piece (events that came while it was sending).
MAX_EVENTS_PER_PIECE = 256
# How far the answer's maker may run ahead of its furthest reader (this worker's memory).
AHEAD_MAX = 256
# How many events may wait to be written to Redis before the answer waits for Redis.
WRITE_BEHIND_MAX = 256


def owner_of(api_key: str) -> str:
    # Stored and compared as a hash: whoever can list the buffer's keys learns no API key.
    return hashlib.sha256(api_key.encode()).hexdigest()[:24]


class ReplayBuffer(Protocol):
    """One answer's events, written once by the stream that makes them, read by any client
    of the key that started it."""

    async def open(self, request_id: str, api_key: str) -> None:
        """Start an answer's buffer, owned by `api_key`; nothing is in it yet."""

    async def append(self, request_id: str, event_id: int, event: bytes) -> None:
        """Add the encoded event `event_id` (1, 2, 3, ... with no gap)."""

    async def finish(self, request_id: str) -> None:
        """The terminal event is in: readers stop after it; the retention window starts."""

    async def abandon(self, request_id: str) -> None:
        """The answer was stopped before its end (no reader came back in time): drop its
        events; a resume is now told it expired."""

    async def state(self, request_id: str, api_key: str) -> State | None:
        """Whether `api_key` may resume the answer, and how it stands."""

    async def last_event_id(self, request_id: str) -> int:
        """The id of the last event written so far (of a finished answer: its terminal
        event's); 0 when there is none."""

    def read(
        self, request_id: str, after: int, direct: DirectWrite | None = None
    ) -> AsyncIterator[bytes]:
        """The encoded events after id `after`, those written and those to come, until the
        terminal one (or until the answer is abandoned or expires). Several events may come in
        one piece. With `direct`, the writer may hand an event to the reader's connection
        itself instead, while the reader waits for it (wire_sse.DirectWrite): those events
        are not yielded."""

    async def unread_for_grace(self, request_id: str) -> None:
        """Return once no client (on any worker sharing the buffer) has read the answer for
        the grace period; at once when the answer is gone."""

    async def aclose(self) -> None:
        """Close connections."""


# --- this worker's memory ----------------------------------------------------------------------


class Signal:
    """Wakes whoever waits for it now; unlike an asyncio.Event it keeps no state and holds
    nothing until someone waits. Three of them per answer as asyncio.Events cost 2.2 KiB of
    every idle stream's memory (tracemalloc, 2026-11-29); these cost a future per wait."""

    __slots__ = ("waiters",)

    def __init__(self) -> None:
        self.waiters: list[asyncio.Future] | None = None

    async def wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        if self.waiters is None:
            self.waiters = []
        self.waiters.append(waiter)
        try:
            await waiter
        finally:
            if self.waiters is not None and waiter in self.waiters:
                self.waiters.remove(waiter)

    def set(self) -> None:
        waiters, self.waiters = self.waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)


@dataclass
class MemoryAnswer:
    owner: str
    events: list[bytes] = field(default_factory=list)  # events[i] has id i + 1
    done: bool = False
    abandoned: bool = False
    expires_at: float = float("inf")
    readers: int = 0
    last_read_at: float = 0.0  # when the last reader left (or the answer opened)
    # Set while nobody reads: what the grace period's watcher waits on meanwhile.
    unread: Signal = field(default_factory=Signal)
    # Set when something changed (an event, the end); readers that found nothing new wait on
    # it. Only set when someone waits: the writer's per-event cost stays one list append.
    changed: Signal = field(default_factory=Signal)
    waiting: int = 0
    # Back-pressure, as a stream pulled by its reader has: the writer waits while even the
    # furthest reader is AHEAD_MAX events behind. Until the first reader has come and gone it
    # counts as reading (the POST's response starts after the answer does).
    read_up_to: int = 0
    first_reader_due: bool = True
    drained: Signal = field(default_factory=Signal)
    # A reader that has everything written so far and waits for more, whose connection the
    # writer may write the next event to itself (`DirectWrite`): one per answer at a time.
    listener: Listener | None = None


class Listener:
    """A reader waiting at `position` whose next events the writer writes itself."""

    __slots__ = ("write", "position")

    def __init__(self, write: Callable[[bytes], bool], position: int) -> None:
        self.write = write
        self.position = position


class MemoryReplay:
    """The embedded default: every answer's events in this worker's memory."""

    scope = "per_worker"

    def __init__(self, settings: Settings, clock: Clock = time.monotonic) -> None:
        self.retention = settings.stream_retention_seconds
        self.grace = settings.resume_grace_seconds
        self.clock = clock
        self.answers: dict[str, MemoryAnswer] = {}
        # Finished answers in the order they expire (one retention for all: the order they
        # finished), so the sweep looks only at those due.
        self.expiring: deque[tuple[float, str]] = deque()
        # request id -> owner of answers whose events are gone, oldest first.
        self.expired: OrderedDict[str, str] = OrderedDict()

    def forget_expired(self) -> None:
        now = self.clock()
        while self.expiring and self.expiring[0][0] <= now:
            _, request_id = self.expiring.popleft()
            if request_id in self.answers:
                self.drop(request_id)

    def drop(self, request_id: str) -> None:
        answer = self.answers.pop(request_id)
        answer.abandoned = answer.abandoned or not answer.done
        answer.done = True
        answer.events.clear()
        answer.changed.set()  # a reader still waiting learns it is over
        answer.drained.set()
        self.expired[request_id] = answer.owner
        while len(self.expired) > REMEMBER_EXPIRED_MAX:
            self.expired.popitem(last=False)

    async def open(self, request_id: str, api_key: str) -> None:
        self.forget_expired()  # each new answer sweeps the old ones: no timer per answer
        self.answers[request_id] = MemoryAnswer(owner_of(api_key), last_read_at=self.clock())

    async def append(self, request_id: str, event_id: int, event: bytes) -> None:
        answer = self.answers.get(request_id)
        if answer is None:
            return
        events = answer.events
        events.append(event)
        listener = answer.listener
        if listener is not None and listener.position == len(events) - 1 and listener.write(event):
            # Sent by this task to the waiting reader's connection: the reader sleeps on.
            listener.position += 1
            answer.read_up_to = max(answer.read_up_to, listener.position)
            if answer.waiting > 1:
                answer.changed.set()  # other readers of the answer (the listener looks too)
        elif answer.waiting:
            answer.listener = None  # it could not go: the reader sends it itself
            answer.changed.set()
        while (
            (answer.readers or answer.first_reader_due)
            and len(answer.events) - answer.read_up_to >= AHEAD_MAX
            and not answer.done
        ):
            await answer.drained.wait()

    async def finish(self, request_id: str) -> None:
        answer = self.answers.get(request_id)
        if answer is not None:
            answer.done = True
            answer.expires_at = self.clock() + self.retention
            self.expiring.append((answer.expires_at, request_id))
            answer.changed.set()

    async def abandon(self, request_id: str) -> None:
        if request_id in self.answers:
            self.drop(request_id)

    async def state(self, request_id: str, api_key: str) -> State | None:
        self.forget_expired()
        owner = owner_of(api_key)
        answer = self.answers.get(request_id)
        if answer is not None:
            if answer.owner != owner:
                return None
            return "done" if answer.done else "live"
        return "expired" if self.expired.get(request_id) == owner else None

    async def last_event_id(self, request_id: str) -> int:
        answer = self.answers.get(request_id)
        return 0 if answer is None else len(answer.events)

    async def read(
        self, request_id: str, after: int, direct: DirectWrite | None = None
    ) -> AsyncIterator[bytes]:
        answer = self.answers.get(request_id)
        if answer is None:
            return
        answer.readers += 1
        position = after
        try:
            while True:
                events = answer.events
                if position < len(events):
                    # What came meanwhile goes out in one piece, a bounded one.
                    end = min(len(events), position + MAX_EVENTS_PER_PIECE)
                    chunk = b"".join(events[position:end])
                    position = end
                    yield chunk  # back here once it is sent: the writer may run ahead again
                    if position > answer.read_up_to:
                        answer.read_up_to = position
                        answer.drained.set()
                    continue
                if answer.done:
                    return
                listener = None
                if direct is not None and direct.write is not None and answer.listener is None:
                    listener = answer.listener = Listener(direct.write, position)
                answer.waiting += 1
                try:
                    await answer.changed.wait()
                finally:
                    answer.waiting -= 1
                    if listener is not None:
                        position = listener.position  # past what the writer sent itself
                        if answer.listener is listener:
                            answer.listener = None
        finally:
            answer.readers -= 1
            answer.first_reader_due = False
            answer.last_read_at = self.clock()
            if answer.readers == 0:
                answer.unread.set()
                answer.drained.set()  # nobody to wait for: the grace period decides now

    async def unread_for_grace(self, request_id: str) -> None:
        # No polling while someone reads: the watcher sleeps until the last reader leaves,
        # then for what is left of the grace period, and looks again.
        while (answer := self.answers.get(request_id)) is not None and not answer.done:
            if answer.readers > 0:
                await answer.unread.wait()
                continue
            left = answer.last_read_at + self.grace - self.clock()
            if left <= 0:
                return
            await asyncio.sleep(left)

    async def aclose(self) -> None:
        return None


# --- Redis: one stream per answer --------------------------------------------------------------
# Keys: <prefix>answer:<id> the Redis Stream of events, entry ids "<event id>-0", field "e";
# the terminal marker is the entry "<last id>-1" with field "end". <prefix>answer:<id>:owner
# the owner's hash, kept REMEMBER_EXPIRED_SECONDS. <prefix>answer:<id>:reader exists while a
# client reads (refreshed on every read, expiring after the grace period).


class RedisReplay:
    """Every answer's events in one Redis, readable from every worker that shares it."""

    scope = "shared"

    def __init__(
        self, settings: Settings, client: aioredis.Redis, *, prefix: str = "gateway:"
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.retention_ms = max(1, round(settings.stream_retention_seconds * 1000))
        # While streaming, the events are kept as long as the longest stream may last, plus
        # the retention: a worker that dies mid-answer leaves nothing behind for ever.
        self.live_ms = self.retention_ms + round(settings.max_stream_seconds * 1000)
        self.reader_ms = max(1, round(settings.resume_grace_seconds * 1000))
        self.block_ms = max(1, min(round(READ_BLOCK_SECONDS * 1000), self.reader_ms // 2))
        self.writers: dict[str, RedisWriter] = {}  # the answers this worker is writing

    @classmethod
    def from_url(cls, settings: Settings, url: str | None = None, **options) -> RedisReplay:
        timeout = settings.redis_timeout_seconds
        client = aioredis.Redis.from_url(
            url or settings.redis_url,
            # A read may block READ_BLOCK_SECONDS on purpose; the timeout comes on top of it.
            socket_timeout=READ_BLOCK_SECONDS + timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(settings, client, **options)

    def keys(self, request_id: str) -> tuple[str, str, str]:
        base = f"{self.prefix}answer:{request_id}"
        return base, base + ":owner", base + ":reader"

    async def open(self, request_id: str, api_key: str) -> None:
        _, owner, reader = self.keys(request_id)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.set(owner, owner_of(api_key), px=round(REMEMBER_EXPIRED_SECONDS * 1000))
            pipe.set(reader, b"1", px=self.reader_ms)  # the first client is about to read
            await pipe.execute()

    async def append(self, request_id: str, event_id: int, event: bytes) -> None:
        writer = self.writers.get(request_id)
        if writer is None:
            events, _, _ = self.keys(request_id)
            writer = self.writers[request_id] = RedisWriter(self.client, events, self.live_ms)
        await writer.append(event_id, event)

    async def finish(self, request_id: str) -> None:
        events, _, _ = self.keys(request_id)
        writer = self.writers.pop(request_id, None)
        last_id = 0
        if writer is not None:
            await writer.drain()  # every event is in before the marker that ends the answer
            last_id = writer.last_id
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.xadd(events, {"end": b"1"}, id=f"{last_id}-1")
            pipe.pexpire(events, self.retention_ms)
            await pipe.execute()

    async def abandon(self, request_id: str) -> None:
        events, _, _ = self.keys(request_id)
        writer = self.writers.pop(request_id, None)
        if writer is not None:
            await writer.stop()
        await self.client.delete(events)

    async def state(self, request_id: str, api_key: str) -> State | None:
        events, owner, _ = self.keys(request_id)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.get(owner)
            pipe.exists(events)
            pipe.xrevrange(events, count=1)
            stored_owner, exists, last = await pipe.execute()
        if stored_owner is None or stored_owner.decode() != owner_of(api_key):
            return None
        if not exists:
            return "expired"
        return "done" if last and b"end" in last[0][1] else "live"

    async def last_event_id(self, request_id: str) -> int:
        events, _, _ = self.keys(request_id)
        last = await self.client.xrevrange(events, count=1)
        return int(last[0][0].split(b"-")[0]) if last else 0  # the end marker has the last id

    async def read(
        self, request_id: str, after: int, direct: DirectWrite | None = None
    ) -> AsyncIterator[bytes]:
        # `direct` is not used: the writer may be another worker, and its events come by Redis.
        events, _, reader = self.keys(request_id)
        cursor = f"{after}-0"
        while True:
            try:
                # One round trip: say a client reads, then wait for what comes after the cursor.
                async with self.client.pipeline(transaction=False) as pipe:
                    pipe.set(reader, b"1", px=self.reader_ms)
                    pipe.xread({events: cursor}, block=self.block_ms, count=MAX_EVENTS_PER_PIECE)
                    _, found = await pipe.execute()
                if not found and not await self.client.exists(events):
                    return  # abandoned or expired while we waited
            except REDIS_DOWN as error:
                # The stream ends without its terminal event: the client resumes later.
                log.warning("answer %s: replay buffer unreachable (%s)", request_id, error)
                return
            if not found:
                continue
            pieces = []
            for entry_id, fields in found[0][1]:
                cursor = entry_id.decode()
                if b"end" in fields:
                    if pieces:
                        yield b"".join(pieces)
                    return
                pieces.append(fields[b"e"])
            yield b"".join(pieces)

    async def unread_for_grace(self, request_id: str) -> None:
        # A reader on any worker keeps the key alive; it expires a grace period after the last
        # read. Wait for that, looking again when its time to live would have run out.
        _, _, reader = self.keys(request_id)
        while (left_ms := await self.client.pttl(reader)) > 0:  # -2: no key, no reader
            await asyncio.sleep(left_ms / 1000)

    async def aclose(self) -> None:
        for writer in list(self.writers.values()):
            await writer.stop()
        self.writers.clear()
        await self.client.aclose()


class RedisWriter:
    """One answer's events on their way to its Redis Stream: written behind the answer, in
    batches, one round trip in flight at a time.

    Waiting for each XADD made a token cost a round trip (884 us a token against 11.7 in
    memory, `make bench`, 2026-11-29); now the answer goes on while the events it made
    meanwhile gather into the next batch. A batch of WRITE_BEHIND_MAX events waiting makes
    the answer wait for Redis (back-pressure); an error of Redis reaches the answer at its
    next event or its end (REDIS_DOWN), as when it waited for every write.
    """

    def __init__(self, client: aioredis.Redis, key: str, live_ms: int) -> None:
        self.client = client
        self.key = key
        self.live_ms = live_ms
        self.pending: list[tuple[int, bytes]] = []
        self.last_id = 0  # the last event id handed in
        self.flushing: asyncio.Task | None = None
        self.failed: BaseException | None = None
        self.expiry_set = False

    async def append(self, event_id: int, event: bytes) -> None:
        if self.failed is not None:
            raise self.failed
        self.pending.append((event_id, event))
        self.last_id = event_id
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.ensure_future(self.flush())
        elif len(self.pending) >= WRITE_BEHIND_MAX:
            await self.drain()

    async def flush(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                async with self.client.pipeline(transaction=False) as pipe:
                    for event_id, event in batch:
                        pipe.xadd(self.key, {"e": event}, id=f"{event_id}-0")
                    if not self.expiry_set:
                        pipe.pexpire(self.key, self.live_ms)
                    await pipe.execute()
                self.expiry_set = True
        except REDIS_DOWN as error:
            self.failed = error

    async def drain(self) -> None:
        """Return once every event handed in is in Redis; raise what writing them raised."""
        while self.flushing is not None and not self.flushing.done():
            await asyncio.shield(self.flushing)
        if self.pending and self.failed is None:
            await self.flush()
        if self.failed is not None:
            raise self.failed

    async def stop(self) -> None:
        if self.flushing is not None and not self.flushing.done():
            self.flushing.cancel()
            await asyncio.gather(self.flushing, return_exceptions=True)


def build_replay(settings: Settings) -> ReplayBuffer:
    """Redis when GATEWAY_REDIS_URL is set (shared by every worker), else this worker's memory."""
    if settings.redis_url:
        return RedisReplay.from_url(settings)
    return MemoryReplay(settings)
