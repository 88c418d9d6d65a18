"""Admission limits per API key: request rate, tokens per minute, concurrent streams.

All three are checked before the model is called, and each refusal is a structured, retryable
error with the time to wait. What a request holds (its token reservation and its stream slot)
is released exactly once, in the `finally` of whoever admitted it, however the stream ends.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import GatewayError
from .settings import Settings

Clock = Callable[[], float]


# --- the refusals, worded once: this worker's limits and shared_limits.py (Redis) raise these --


def rate_limited(settings: Settings, wait: float) -> GatewayError:
    return GatewayError(
        "rate_limited",
        f"More than {settings.rate_limit_rps:g} requests per second "
        f"(burst {settings.rate_limit_burst}) for this API key.",
        retry_after_seconds=wait,
    )


def too_many_streams(active: int) -> GatewayError:
    return GatewayError(
        "rate_limited",
        f"This API key already has {active} streams open, the most it may have.",
        retry_after_seconds=1.0,
    )


def overloaded() -> GatewayError:
    return GatewayError(
        "overloaded",
        "The gateway is serving as many streams as it can; try again shortly.",
        retry_after_seconds=1.0,
    )


def over_budget_ever(tokens: int, per_minute: int, window: float) -> GatewayError:
    return GatewayError(
        "quota_exceeded",
        f"This request needs up to {tokens} tokens, more than the budget of "
        f"{per_minute} tokens per minute; lower max_tokens or shorten the prompt.",
        retry_after_seconds=window,
    )


def over_budget_now(per_minute: int, used: int, wait: float) -> GatewayError:
    return GatewayError(
        "quota_exceeded",
        f"Token budget of {per_minute} per minute is in use ({used} reserved).",
        retry_after_seconds=max(wait, 0.001),
    )


class TokenBucket:
    """The token bucket API Gateway throttles with: `rate` tokens a second, at most `burst`."""

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()

    def try_take(self) -> float:
        """Take one token; return 0 on success, else the seconds until one is available."""
        # BEGIN SOLUTION lab06: refill the bucket for the time passed, then take one token
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate
        # END SOLUTION


@dataclass
class Reservation:
    """Tokens held in a key's per-minute budget, settled to what was really used."""

    tokens: int
    at: float
    settled: bool = False
    in_window: bool = False  # counted in its budget's window (ReservationLog.tokens)


class ReservationLog(deque):
    """A budget's reservations in its window, oldest first, with their sum in `tokens`, kept
    as they come and go: the budget is read on every request, and summing the window each time
    would cost as much as the window is long (a busy key's last 60 s of requests)."""

    def __init__(self, reservations=()) -> None:
        super().__init__()
        self.tokens = 0
        for reservation in reservations:
            self.append(reservation)

    def append(self, reservation: Reservation) -> None:
        super().append(reservation)
        self.tokens += reservation.tokens
        reservation.in_window = True

    def popleft(self) -> Reservation:
        reservation = super().popleft()
        self.tokens -= reservation.tokens
        reservation.in_window = False
        return reservation


@dataclass
class TokenBudget:
    """Tokens per minute for one key, over a sliding 60-second window.

    A request reserves its prompt plus its full `max_tokens` when it is admitted, and settles to
    what it really used when it ends. Charging only after the stream would let many streams
    start at once and overshoot the budget together; reserving first cannot.
    """

    per_minute: int
    clock: Clock = time.monotonic
    entries: ReservationLog = field(default_factory=ReservationLog)
    window: float = 60.0

    def in_use(self) -> int:
        horizon = self.clock() - self.window
        while self.entries and self.entries[0].at <= horizon:
            self.entries.popleft()
        return self.entries.tokens

    def reserve(self, tokens: int) -> Reservation:
        # BEGIN SOLUTION lab06: reserve prompt + max_tokens, or refuse with the time to wait
        if tokens > self.per_minute:
            raise over_budget_ever(tokens, self.per_minute, self.window)
        used = self.in_use()
        if used + tokens > self.per_minute:
            # Wait until enough of the oldest reservations leave the window.
            needed, freed, wait = used + tokens - self.per_minute, 0, self.window
            for entry in self.entries:
                freed += entry.tokens
                if freed >= needed:
                    wait = entry.at + self.window - self.clock()
                    break
            raise over_budget_now(self.per_minute, used, wait)
        reservation = Reservation(tokens, self.clock())
        self.entries.append(reservation)
        return reservation
        # END SOLUTION

    def settle(self, reservation: Reservation, used: int) -> None:
        """Replace the reservation by what was really used (never more than reserved)."""
        if not reservation.settled:
            settled = min(used, reservation.tokens)
            if reservation.in_window:
                self.entries.tokens -= reservation.tokens - settled
            reservation.tokens = settled
            reservation.settled = True


@dataclass
class Hold:
    """What one admitted stream holds (a stream slot and a token reservation); `release` gives
    it all back exactly once."""

    key: str
    reservation: Reservation
    admission: Admission
    released: bool = False

    def release(self, tokens_used: int) -> None:
        if self.released:
            return
        self.released = True
        self.admission.budgets[self.key].settle(self.reservation, tokens_used)
        self.admission.active[self.key] -= 1
        self.admission.total_active -= 1


class Admission:
    """Every per-key limit, checked in order: rate, concurrency, then tokens per minute."""

    def __init__(self, settings: Settings, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.buckets: dict[str, TokenBucket] = {}
        self.budgets: dict[str, TokenBudget] = {}
        self.active: dict[str, int] = {}
        self.total_active = 0

    def check_rate(self, key: str) -> None:
        """One request from `key`: refused with rate_limited when its bucket is empty."""
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(
                self.settings.rate_limit_rps, self.settings.rate_limit_burst, self.clock
            )
            self.buckets[key] = bucket
        wait = bucket.try_take()
        if wait > 0:
            raise rate_limited(self.settings, wait)

    def admit(self, key: str, prompt_tokens: int, max_tokens: int) -> Hold:
        """Take a stream slot and reserve prompt + max_tokens; release the hold when done."""
        active = self.active.get(key, 0)
        if active >= self.settings.max_concurrent_streams:
            raise too_many_streams(active)
        if self.total_active >= self.settings.max_total_streams:
            raise overloaded()
        budget = self.budgets.get(key)
        if budget is None:
            budget = TokenBudget(self.settings.tokens_per_minute, self.clock)
            self.budgets[key] = budget
        reservation = budget.reserve(prompt_tokens + max_tokens)
        self.active[key] = active + 1
        self.total_active += 1
        return Hold(key, reservation, self)
