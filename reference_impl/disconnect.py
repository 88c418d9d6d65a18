"""Work that stops when the HTTP client leaves: the wait before a response is committed.

Until a route sends its first byte, nobody notices a client that hung up: the answer of
`POST /v1/ask` is gathered whole, and a stream pulls its first token before its status is
sent. That work holds a stream slot and runs the model. So it is raced against the client's
`http.disconnect` (read from `receive` once the body is in); whichever comes first wins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Receive

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before the work was done; the work was cancelled."""


async def disconnected(receive: Receive) -> None:
    """Return once the client has gone (call only after the request body has been read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(work: Awaitable[T], receive: Receive) -> T:
    """The result of `work`, or ClientGone once `work` was cancelled because the client left.
    An error of `work` propagates as it is."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(disconnected(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait((task,))  # its own clean-up (the model's close) has run
        watcher.cancel()
    if task.cancelled():
        raise ClientGone
    return task.result()
