"""Run an ASGI app on a real uvicorn server in a background thread (notebooks and tests).

A notebook cell that starts a server is often run twice. Binding a fixed port would then fail
with "address in use", so the server binds port 0 (the OS picks a free port) on a socket we
create ourselves, and starting a server under a name that is already running stops the old one
first. Tests use the same helper, so they talk to a real server over real sockets.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any, ClassVar

import uvicorn

try:  # sse-starlette keeps a process-wide "server is exiting" flag; see stop().
    from sse_starlette.sse import AppStatus
except ImportError:  # pragma: no cover - sse-starlette is a dependency
    AppStatus = None


class GatewayServer(uvicorn.Server):
    """uvicorn, but open chat answers get an `error` before their sockets close with 1012
    (`python -m course.serve` runs the gateway on it).

    uvicorn closes every WebSocket as it shuts down, before the app's lifespan shutdown, so
    the gateway is told first, on the server's own loop.
    """

    async def shutdown(self, sockets=None) -> None:
        shutdown_streams = getattr(self.config.app.state, "shutdown_streams", None)
        if shutdown_streams is not None:
            await shutdown_streams()
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
        # An app may name server options of its own (the gateway: permessage-deflate off);
        # options given to BackgroundServer win.
        app_options = getattr(getattr(self.app, "state", None), "uvicorn_options", None) or {}
        config = uvicorn.Config(self.app, **{**app_options, **self.uvicorn_options})
        self.server = uvicorn.Server(config)
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
        """Stop serving and free the port; open streams are closed by uvicorn's shutdown."""
        # An app may want to end its open WebSockets its own way first (the gateway sends each
        # open answer an `error`); uvicorn would close them with 1012 straight away.
        before_stop = getattr(getattr(self.app, "state", None), "before_server_stop", None)
        if before_stop is not None and self.server is not None and self.server.started:
            before_stop()
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
