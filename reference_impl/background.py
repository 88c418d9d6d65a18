"""Run an ASGI app on a real uvicorn server in a background thread (notebooks and tests).

A notebook cell that starts a server is often run twice. Binding a fixed port would then fail
with "address in use", so the server binds port 0 (the OS picks a free port) on a socket we
create ourselves, and starting a server under a name that is already running stops the old one
first. Tests use the same helper, so they talk to a real server over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import threading
import time
from typing import Any, ClassVar

import anyio
import uvicorn

from .server_bounds import uvicorn_config

try:  # sse-starlette keeps a process-wide "server is exiting" flag; see stop().
    from sse_starlette.sse import AppStatus
except ImportError:  # pragma: no cover - sse-starlette is a dependency
    AppStatus = None


class GatewayServer(uvicorn.Server):
    """uvicorn, but on SIGTERM (or `BackgroundServer.stop`) every open stream says why it ends
    before the server closes it, and the whole shutdown ends within the graceful-shutdown
    timeout (the gateway's `shutdown_grace_seconds`), whatever its clients do.

    uvicorn closes every WebSocket with 1012 as it shuts down, and sse-starlette cuts every SSE
    stream, before the app's lifespan shutdown runs; so the app's `shutdown_streams` runs first,
    on the server's own loop: each SSE stream gets an `error` event and each chat answer an
    `error` message `shutting_down`. A client that does not read them holds nothing up for
    longer than the grace period: what is left of it is uvicorn's, and uvicorn cancels what is
    still running when the period is over.
    """

    async def shutdown(self, sockets=None) -> None:
        state = getattr(self.config.app, "state", None)
        shutdown_streams = getattr(state, "shutdown_streams", None)
        grace = self.config.timeout_graceful_shutdown
        loop = asyncio.get_running_loop()
        began = loop.time()
        if shutdown_streams is not None:
            with anyio.move_on_after(math.inf if grace is None else grace):
                await shutdown_streams()
        if grace is not None:  # uvicorn's own wait gets what is left of the one grace period
            self.config.timeout_graceful_shutdown = max(grace - (loop.time() - began), 0.1)
        await super().shutdown(sockets)


class BackgroundServer:
    """A uvicorn server in a thread, on 127.0.0.1 and a port the OS picks.

    >>> server = BackgroundServer(app).start()
    >>> server.url
    'http://127.0.0.1:54321'
    >>> server.stop()
    """

    running: ClassVar[dict[str, BackgroundServer]] = {}

    def __init__(
        self,
        app: Any,
        *,
        name: str = "gateway",
        host: str = "127.0.0.1",
        port: int = 0,
        **uvicorn_options: Any,
    ) -> None:
        self.app = app
        self.name = name
        self.host = host
        self.requested_port = port
        self.uvicorn_options = {"log_level": "warning", "access_log": False, **uvicorn_options}
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None
        self.socket: socket.socket | None = None
        self.error: BaseException | None = None

    @property
    def port(self) -> int:
        if self.socket is None:
            raise RuntimeError("the server is not started")
        return self.socket.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        """Start serving; stops a previous server of the same name first (re-run cells)."""
        previous = self.running.get(self.name)
        if previous is not None and previous is not self:
            previous.stop()
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((self.host, self.requested_port))
        # An app may name server options of its own (the gateway: its bounds); options given
        # to BackgroundServer win.
        config = uvicorn_config(self.app, **self.uvicorn_options)
        # GatewayServer: open streams are told why they end before the server closes them.
        self.server = GatewayServer(config)
        self.thread = threading.Thread(target=self._serve, name=f"uvicorn-{self.name}", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        # uvicorn offers no start-up callback: wait for its `started` flag, or for the thread to
        # die (then report why), with a deadline so a broken app cannot hang a notebook.
        while not self.server.started:
            if not self.thread.is_alive():
                self._close_socket()
                raise RuntimeError(f"server {self.name!r} failed to start") from self.error
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"server {self.name!r} did not start within {timeout} s")
            self.thread.join(0.01)
        self.running[self.name] = self
        return self

    def _serve(self) -> None:
        try:
            self.server.run(sockets=[self.socket])
        except BaseException as error:  # reported by start()
            self.error = error

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and free the port; open streams end as on SIGTERM (GatewayServer)."""
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout)
            if self.thread.is_alive() and self.server is not None:
                self.server.force_exit = True
                self.thread.join(timeout)
        self._close_socket()
        if self.running.get(self.name) is self:
            del self.running[self.name]
        if AppStatus is not None:
            # Once set, this flag makes every later EventSourceResponse in the process end at
            # once, which would break the next server a notebook or test starts.
            AppStatus.should_exit = False

    def _close_socket(self) -> None:
        if self.socket is not None:
            with contextlib.suppress(OSError):
                self.socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @classmethod
    def stop_all(cls) -> None:
        """Stop every server started in this process (a notebook's clean-up cell)."""
        for server in list(cls.running.values()):
            server.stop()
