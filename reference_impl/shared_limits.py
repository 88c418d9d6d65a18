"""Admission that holds across every worker: the limits of limits.py and tickets.py, in Redis.

One worker keeps its limits in its own memory (limits.py), so a gateway run as N workers lets N
times the traffic through. With `GATEWAY_REDIS_URL` set, every worker keeps the same limits in
one Redis instead, and they enforce one limit together:

- the request rate per API key (a token bucket), the tokens per minute per key (reserved at
  admission, settled to what was used at the end, over a sliding 60-second window), the stream
  slots per key and in total, and the single-use WebSocket tickets;
- each check-and-take is one Lua script, which Redis runs atomically: two workers can never
  both take the last token or the last slot;
- key expiry does the clean-up: an idle bucket expires when it would be full again, a budget a
  window after its last reservation, a ticket at the end of its life, and a stream slot is a
  lease as long as the longest stream may live, so the slots of a worker that crashed come back
  on their own.

The gateway talks to either through `AdmissionControl`, which is async because Redis is across
the network: `build_admission(settings)` picks the one the settings ask for, and the error
codes, messages and waits are the same in both (each refusal is worded once, in limits.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Protocol

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .errors import GatewayError
from .limits import (
    Admission,
    over_budget_ever,
    over_budget_now,
    overloaded,
    rate_limited,
    too_many_streams,
)
from .settings import Settings
from .tickets import IssuedTicket, TicketBook

log = logging.getLogger("gateway.limits")
Clock = Callable[[], float]
# What a worker sees when Redis is down or too slow.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
# The token budget's window, as in limits.TokenBudget.
WINDOW_SECONDS = 60.0
# A stream slot outlives the longest stream by this much before Redis frees it on its own.
LEASE_MARGIN_SECONDS = 30.0


class Hold(Protocol):
    """What one admitted request holds: a stream slot and a token reservation."""

    async def release(self, tokens_used: int) -> None:
        """Free the slot and settle the reservation to `tokens_used`; only the first call counts,
        and it never raises, because it runs in the `finally` of a stream."""


class AdmissionControl(Protocol):
    """What the gateway needs from admission, in the order a request meets it."""

    # "per_worker" (limits.py in this process) or "shared" (Redis): what a worker count means.
    scope: str

    async def check_rate(self, key: str) -> None:
        """One request from `key`; raises rate_limited when its bucket is empty."""

    async def admit(self, key: str, prompt_tokens: int, max_tokens: int) -> Hold:
        """Take a stream slot and reserve prompt + max_tokens, or raise rate_limited (slots of
        the key), overloaded (slots of the gateway) or quota_exceeded (tokens per minute)."""

    async def issue_ticket(self, key: str) -> IssuedTicket:
        """A single-use WebSocket ticket for `key`."""

    async def redeem_ticket(self, ticket: str) -> str | None:
        """The key the ticket was issued to, or None when unknown, spent or expired; a ticket
        is spent by its first redemption, whatever the outcome."""

    async def aclose(self) -> None:
        """Close connections (the limits themselves are kept)."""


# --- what only a shared store can refuse ---------------------------------------------------


def limits_unavailable() -> GatewayError:
    return GatewayError(
        "limits_unavailable",
        "The limits this gateway shares with its other workers cannot be checked right now; "
        "try again shortly.",
        retry_after_seconds=1.0,
    )


# --- this worker's memory: limits.py and tickets.py behind the async interface ---------------


class MemoryHold:
    def __init__(self, hold) -> None:
        self.hold = hold

    async def release(self, tokens_used: int) -> None:
        self.hold.release(tokens_used)


class MemoryAdmission:
    """The embedded default: limits.Admission and tickets.TicketBook, in this process."""

    scope = "per_worker"

    def __init__(self, settings: Settings, clock: Clock = time.monotonic) -> None:
        self.admission = Admission(settings, clock)
        self.tickets = TicketBook(settings.ws_ticket_seconds, clock)

    async def check_rate(self, key: str) -> None:
        self.admission.check_rate(key)

    async def admit(self, key: str, prompt_tokens: int, max_tokens: int) -> Hold:
        return MemoryHold(self.admission.admit(key, prompt_tokens, max_tokens))

    async def issue_ticket(self, key: str) -> IssuedTicket:
        return self.tickets.issue(key)

    async def redeem_ticket(self, ticket: str) -> str | None:
        return self.tickets.redeem(ticket)

    async def aclose(self) -> None:
        return None


# --- Redis: one Lua script per check-and-take ----------------------------------------------
# Each script reads "now" from its last argument, or from Redis's own clock when that is empty,
# so every worker measures time on one clock (tests pass a fake one). Scripts return floats as
# strings: Redis would truncate a Lua number to an integer.

NOW = """
local function now_from(arg)
  local given = tonumber(arg)
  if given then return given end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""

# KEYS: bucket. ARGV: rate, burst, now. Returns the wait, "0" when a token was taken.
TAKE_TOKEN = (
    NOW
    + """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_from(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
-- Once the bucket would be full again, forgetting it is the same as keeping it.
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return tostring(wait)
"""
)

# A reservation is the member "<hold id>:<tokens>" of the budget's sorted set, scored by the
# time it was made; a stream slot is the member "<hold id>" of a slot set, scored by the time
# its lease ends.
RESERVATION = """
local function tokens_of(member) return tonumber(string.match(member, ':(%d+)$')) end
"""

# KEYS: key's slots, all slots, key's budget.
# ARGV: hold id, max per key, max total, per minute, window, tokens, lease, now.
# Returns {"ok"}, {"key_full", active}, {"all_full"}, {"too_big"} or {"quota", wait, used}.
ADMIT = (
    NOW
    + RESERVATION
    + """
local hold, max_key, max_all = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local per_minute, window, tokens = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local lease = tonumber(ARGV[7])
local now = now_from(ARGV[8])
-- Leases that ended are slots whose worker died without freeing them.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local active = redis.call('ZCARD', KEYS[1])
if active >= max_key then return {'key_full', active} end
if redis.call('ZCARD', KEYS[2]) >= max_all then return {'all_full'} end
if tokens > per_minute then return {'too_big'} end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
local entries = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
local used = 0
for i = 1, #entries, 2 do used = used + tokens_of(entries[i]) end
if used + tokens > per_minute then
  -- Wait until enough of the oldest reservations leave the window.
  local needed, freed, wait = used + tokens - per_minute, 0, window
  for i = 1, #entries, 2 do
    freed = freed + tokens_of(entries[i])
    if freed >= needed then
      wait = tonumber(entries[i + 1]) + window - now
      break
    end
  end
  return {'quota', tostring(wait), used}
end
redis.call('ZADD', KEYS[1], now + lease, hold)
redis.call('ZADD', KEYS[2], now + lease, hold)
redis.call('ZADD', KEYS[3], now, hold .. ':' .. tokens)
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000))
redis.call('PEXPIRE', KEYS[2], math.ceil(lease * 1000))
redis.call('PEXPIRE', KEYS[3], math.ceil(window * 1000) + 1000)
return {'ok'}
"""
)

# KEYS: key's slots, all slots, key's budget. ARGV: hold id, tokens reserved, tokens used.
# Returns 1 when this call freed the slot, 0 when it was already free (released or expired).
RELEASE = (
    RESERVATION
    + """
local hold, reserved, used = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local freed = redis.call('ZREM', KEYS[1], hold)
redis.call('ZREM', KEYS[2], hold)
-- Settle once: the reservation's member changes name when it is settled. Add the new member
-- before removing the old, so the set is never empty: an emptied set is deleted with its TTL.
local member, settled = hold .. ':' .. reserved, hold .. ':' .. math.min(used, reserved)
local at = redis.call('ZSCORE', KEYS[3], member)
if at and settled ~= member then
  redis.call('ZADD', KEYS[3], at, settled)
  redis.call('ZREM', KEYS[3], member)
end
return freed
"""
)


def key_id(api_key: str) -> str:
    # Key names show up in monitoring (SCAN, the slow log, exporters): name a client by a hash
    # of its API key, never by the key itself.
    return hashlib.sha256(api_key.encode()).hexdigest()[:24]


class RedisHold:
    def __init__(self, limits: RedisAdmission, key: str, hold_id: str, tokens: int) -> None:
        self.limits, self.key, self.hold_id, self.tokens = limits, key, hold_id, tokens
        self.released = False

    async def release(self, tokens_used: int) -> None:
        if self.released:
            return
        self.released = True
        # Shielded: a stream's `finally` often runs in a task being cancelled (the client left),
        # and a cancelled release would keep the slot for the whole lease.
        release = asyncio.ensure_future(self.limits.release(self, tokens_used))
        try:
            await asyncio.shield(release)
        except REDIS_DOWN as error:
            # The slot's lease frees it later, and the reservation stays at its full size until
            # it leaves the window: both err on the side of the limit.
            log.warning("could not free a stream slot in Redis (%s); its lease will", error)


class RedisAdmission:
    """The limits of limits.py kept in one Redis, shared by every worker that uses it."""

    scope = "shared"

    def __init__(
        self,
        settings: Settings,
        client: aioredis.Redis,
        *,
        clock: Clock | None = None,
        prefix: str = "gateway:",
        window: float = WINDOW_SECONDS,
        slot_lease_seconds: float | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.clock = clock
        self.prefix = prefix
        self.window = window
        self.lease = slot_lease_seconds or settings.max_stream_seconds + LEASE_MARGIN_SECONDS
        self.take_token = client.register_script(TAKE_TOKEN)
        self.admit_script = client.register_script(ADMIT)
        self.release_script = client.register_script(RELEASE)

    @classmethod
    def from_url(cls, settings: Settings, url: str | None = None, **options) -> RedisAdmission:
        timeout = settings.redis_timeout_seconds
        client = aioredis.Redis.from_url(
            url or settings.redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # No silent retries: one failed call is reported at once, and the outage policy
            # (settings.redis_unavailable) decides what happens.
            retry=Retry(NoBackoff(), 0),
        )
        return cls(settings, client, **options)

    def now(self) -> str:
        return "" if self.clock is None else repr(self.clock())

    def slot_keys(self, key: str) -> list[str]:
        client = key_id(key)
        return [
            f"{self.prefix}slots:{client}",
            f"{self.prefix}slots",
            f"{self.prefix}budget:{client}",
        ]

    async def check_rate(self, key: str) -> None:
        s = self.settings
        wait = float(
            await self.take_token(
                keys=[f"{self.prefix}bucket:{key_id(key)}"],
                args=[repr(s.rate_limit_rps), s.rate_limit_burst, self.now()],
            )
        )
        if wait > 0:
            raise rate_limited(s, wait)

    async def admit(self, key: str, prompt_tokens: int, max_tokens: int) -> Hold:
        s, tokens, hold_id = self.settings, prompt_tokens + max_tokens, secrets.token_hex(12)
        outcome = await self.admit_script(
            keys=self.slot_keys(key),
            args=[
                hold_id,
                s.max_concurrent_streams,
                s.max_total_streams,
                s.tokens_per_minute,
                repr(self.window),
                tokens,
                repr(self.lease),
                self.now(),
            ],
        )
        verdict = outcome[0].decode()
        if verdict == "ok":
            return RedisHold(self, key, hold_id, tokens)
        if verdict == "key_full":
            raise too_many_streams(int(outcome[1]))
        if verdict == "all_full":
            raise overloaded()
        if verdict == "too_big":
            raise over_budget_ever(tokens, s.tokens_per_minute, self.window)
        raise over_budget_now(s.tokens_per_minute, int(outcome[2]), float(outcome[1]))

    async def release(self, hold: RedisHold, tokens_used: int) -> bool:
        """Free the hold's slot and settle its reservation; True when this call freed it."""
        freed = await self.release_script(
            keys=self.slot_keys(hold.key), args=[hold.hold_id, hold.tokens, tokens_used]
        )
        return freed == 1

    async def issue_ticket(self, key: str) -> IssuedTicket:
        lifetime = self.settings.ws_ticket_seconds
        ticket = "tkt_" + secrets.token_urlsafe(24)
        await self.client.set(self.ticket_key(ticket), key, px=max(1, round(lifetime * 1000)))
        return IssuedTicket(ticket, key, (self.clock or time.monotonic)() + lifetime)

    async def redeem_ticket(self, ticket: str) -> str | None:
        # GETDEL reads and spends in one step: two workers cannot both redeem one ticket.
        key = await self.client.getdel(self.ticket_key(ticket))
        return None if key is None else key.decode()

    def ticket_key(self, ticket: str) -> str:
        # Stored by hash, so the store's key names are no use to someone who can list them.
        return f"{self.prefix}ticket:{hashlib.sha256(ticket.encode()).hexdigest()}"

    async def aclose(self) -> None:
        await self.client.aclose()


# --- when Redis is down ----------------------------------------------------------------------


class OutagePolicy:
    """Redis admission with what settings.redis_unavailable says to do when Redis is down:
    refuse with 503 limits_unavailable (no fallback), or use this worker's own limits."""

    def __init__(
        self,
        shared: AdmissionControl,
        fallback: AdmissionControl | None,
        on_unavailable: Callable[[str], None] = lambda action: None,
    ) -> None:
        self.shared = shared
        self.fallback = fallback
        self.on_unavailable = on_unavailable
        self.scope = shared.scope

    def unavailable(self, error: Exception) -> AdmissionControl:
        if self.fallback is None:
            log.error("Redis unreachable (%s): refusing requests with limits_unavailable", error)
            self.on_unavailable("refused")
            raise limits_unavailable() from error
        log.warning("Redis unreachable (%s): falling back to this worker's own limits", error)
        self.on_unavailable("per_worker")
        return self.fallback

    async def check_rate(self, key: str) -> None:
        try:
            await self.shared.check_rate(key)
        except REDIS_DOWN as error:
            await self.unavailable(error).check_rate(key)

    async def admit(self, key: str, prompt_tokens: int, max_tokens: int) -> Hold:
        try:
            return await self.shared.admit(key, prompt_tokens, max_tokens)
        except REDIS_DOWN as error:
            return await self.unavailable(error).admit(key, prompt_tokens, max_tokens)

    async def issue_ticket(self, key: str) -> IssuedTicket:
        try:
            return await self.shared.issue_ticket(key)
        except REDIS_DOWN as error:
            return await self.unavailable(error).issue_ticket(key)

    async def redeem_ticket(self, ticket: str) -> str | None:
        try:
            return await self.shared.redeem_ticket(ticket)
        except REDIS_DOWN as error:
            # A ticket issued while Redis was down lives in this worker's memory.
            return await self.unavailable(error).redeem_ticket(ticket)

    async def aclose(self) -> None:
        await self.shared.aclose()


def build_admission(settings: Settings, metrics=None) -> AdmissionControl:
    """The admission the settings ask for: this worker's memory, or Redis when
    GATEWAY_REDIS_URL is set. `metrics` (metrics.Metrics) counts Redis outages."""
    if settings.redis_url is None:
        return MemoryAdmission(settings)
    fallback = MemoryAdmission(settings) if settings.redis_unavailable == "per_worker" else None

    def count(action: str) -> None:
        if metrics is not None:
            metrics.limits_unavailable.labels(action=action).inc()

    return OutagePolicy(RedisAdmission.from_url(settings), fallback, count)
