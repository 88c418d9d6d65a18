"""Who may even try a key: wrong-key throttling per client address, and no keys in URLs.

An API key is a password that a script can guess at thousands of tries a second. So every
wrong key (or spent ticket) from one client address takes a token from that address's
bucket (`auth_failures_per_minute`, refilled over a minute); once it is empty, every request
from the address answers 429 `rate_limited` with Retry-After before its key is even looked
at, so a right key found by guessing is not recognised either. Another address is unaffected.

A key in the query string is refused (`unauthorized`) whatever else the request carries: a URL
ends up in access logs, browser history and proxies. The access log is also redacted
(`access_log.py`), so a key sent that way is not written down.

The counter lives in this worker's memory, also when the admission limits are in Redis: with N
workers a guesser gets N times the tries. Sharing it would cost a Redis call on every refused
key, which is the traffic a flood of guesses makes; per worker it bounds guessing well enough.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from starlette.requests import HTTPConnection

from .errors import GatewayError
from .limits import Clock, TokenBucket

# Query parameters that name a credential, in the spellings APIs use.
KEY_PARAMETERS = frozenset({"api_key", "apikey", "api-key", "key", "access_token", "token"})
# Addresses remembered at most; beyond it, addresses with a full bucket (no recent failure)
# are forgotten, so a flood from many addresses cannot grow the table without bound.
MAX_ADDRESSES = 10_000


class AuthThrottle:
    """Wrong-key tries per client address: a token bucket each, `per_minute` a minute."""

    def __init__(self, per_minute: int, clock: Clock = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.buckets: dict[str, TokenBucket] = {}

    def check(self, address: str) -> None:
        """Refuse an address whose tries are used up, before its key is looked at."""
        bucket = self.buckets.get(address)
        if bucket is None:
            return
        now = self.clock()
        tokens = min(bucket.burst, bucket.tokens + (now - bucket.updated) * bucket.rate)
        if tokens < 1:
            raise GatewayError(
                "rate_limited",
                f"More than {self.per_minute} failed authentications a minute from this client; "
                "wait before trying again.",
                retry_after_seconds=(1 - tokens) / bucket.rate,
            )

    def failed(self, address: str) -> None:
        """Count one wrong key (or ticket) from `address`."""
        bucket = self.buckets.get(address)
        if bucket is None:
            if len(self.buckets) >= MAX_ADDRESSES:
                self.forget_recovered()
            bucket = TokenBucket(self.per_minute / 60.0, self.per_minute, self.clock)
            self.buckets[address] = bucket
        bucket.try_take()

    async def authenticate(
        self,
        connection: HTTPConnection,
        api_keys: tuple[str, ...],
        authenticate: Callable[[], Awaitable[str]],
    ) -> str:
        """The key `authenticate()` finds, unless this address is throttled or the URL holds
        a key; a refusal as `unauthorized` counts as a failed try."""
        address = address_of(connection)
        self.check(address)
        try:
            refuse_key_in_query(connection, api_keys)
            return await authenticate()
        except GatewayError as error:
            if error.code == "unauthorized":
                self.failed(address)
            raise

    def forget_recovered(self) -> None:
        now = self.clock()
        for address, bucket in list(self.buckets.items()):
            if bucket.tokens + (now - bucket.updated) * bucket.rate >= bucket.burst:
                del self.buckets[address]


def address_of(connection: HTTPConnection) -> str:
    # uvicorn's peer address (or the forwarded one, when it trusts the proxy that sent it).
    return connection.client.host if connection.client else "unknown"


def refuse_key_in_query(connection: HTTPConnection, api_keys: tuple[str, ...]) -> None:
    """A key in the URL is refused, and never repeated in the answer."""
    for name, value in parse_qsl(connection.scope.get("query_string", b"").decode("latin-1")):
        is_key = any(hmac.compare_digest(value.encode(), known.encode()) for known in api_keys)
        if name.lower() in KEY_PARAMETERS or is_key:
            raise GatewayError(
                "unauthorized",
                "API keys are not accepted in the URL (it ends up in logs); send the key in "
                "the Authorization header: Authorization: Bearer <key>.",
            )
