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
    An error of `work` propagates as it is.

    `work` runs in the caller's task (the route's, as before); one watcher task waits for the
    disconnect and cancels it. The watcher starts on the event loop's next turn, so work that
    finishes without waiting (a first token already there; the first events of a stream,
    written before the stream waits for more) never pays for a task: creating and cancelling
    one took 10-20 us a request (2026-11-29).
    """
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    gone = done = False
    watcher: asyncio.Task | None = None

    def client_left(watcher: asyncio.Task) -> None:
        nonlocal gone
        # `done`: the work ended first, and this callback was already scheduled.
        if not done and not watcher.cancelled() and watcher.exception() is None:
            gone = True
            task.cancel()

    def watch() -> None:
        nonlocal watcher
        watcher = loop.create_task(disconnected(receive))
        watcher.add_done_callback(client_left)

    starting = loop.call_soon(watch)
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise  # the server is stopping: not ours to handle
        task.uncancel()
        raise ClientGone from None
    finally:
        done = True
        starting.cancel()
        if watcher is not None:
            watcher.cancel()
