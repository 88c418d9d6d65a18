"""Single-use connection tickets: how a browser authenticates a WebSocket without its API key.

A browser's `WebSocket` cannot set an `Authorization` header, and an API key put in the URL
ends up in access logs, browser history and proxies. So the browser's backend (or the page,
with a key it already holds) asks `POST /v1/chat/tickets` with the key in the header, and gets a
random ticket that opens one connection (`/v1/chat?ticket=...`) within a few seconds. A logged
ticket is useless: it has been spent or has expired.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass(frozen=True)
class IssuedTicket:
    ticket: str
    key: str
    expires_at: float  # on the book's clock


class TicketBook:
    """The tickets issued and not yet spent; each one opens one connection, once, in time."""

    def __init__(self, lifetime_seconds: float, clock: Clock = time.monotonic) -> None:
        self.lifetime = lifetime_seconds
        self.clock = clock
        self.unspent: dict[str, IssuedTicket] = {}

    def issue(self, key: str) -> IssuedTicket:
        self.forget_expired()
        issued = IssuedTicket("tkt_" + secrets.token_urlsafe(24), key, self.clock() + self.lifetime)
        self.unspent[issued.ticket] = issued
        return issued

    def redeem(self, ticket: str) -> str | None:
        """The API key the ticket was issued to, or None when it is unknown, spent or expired.

        Redeeming spends the ticket whatever the outcome, so a ticket never works twice.
        """
        issued = self.unspent.pop(ticket, None)
        if issued is None or self.clock() >= issued.expires_at:
            return None
        return issued.key

    def forget_expired(self) -> None:
        # Bounded memory: tickets nobody redeemed are dropped once they expire.
        now = self.clock()
        for ticket in [t for t, issued in self.unspent.items() if now >= issued.expires_at]:
            del self.unspent[ticket]
