"""Processes a notebook starts beside its kernel: a redis-server, and the gateway as N workers.

Each is started under a name; starting another under a name in use stops the first, so a cell
run twice replaces what it started instead of leaving it running, and `stop_all()` (the
Clean-up cell) stops every one. Ports are chosen by the OS, never fixed, and on Linux each
process is stopped by the kernel if the notebook's kernel dies first.

The gateway runs as `python -m course.serve --workers N` (the implementation LAB_IMPL selects),
exactly as `make gateway ARGS="--workers N"` does, with its settings in GATEWAY_* variables.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import ClassVar

ROOT = Path(__file__).resolve().parent.parent
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
STOP_SECONDS = 15.0

REDIS_MISSING = (
    "redis-server is not on PATH: install it (Debian/Ubuntu: sudo apt-get install redis-server; "
    "macOS: brew install redis) and run this cell again"
)


def die_with_parent() -> None:
    # Linux: the process gets SIGTERM when the kernel that started it dies, even killed, so a
    # crashed notebook leaves no server behind.
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Started:
    """A process started under a name; starting another under the same name stops it. One
    started with no name (the tests' own Redis) is not replaced nor stopped by `stop_all`."""

    running: ClassVar[dict[str, Started]] = {}

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.process: subprocess.Popen | None = None

    def register(self) -> None:
        if self.name is None:
            return
        previous = Started.running.get(self.name)
        if previous is not None and previous is not self:
            previous.stop()
        Started.running[self.name] = self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the process and everything it started (its whole process group)."""
        if Started.running.get(self.name) is self:
            del Started.running[self.name]
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_SECONDS)
        self.process = None

    @classmethod
    def stop_all(cls) -> list[str]:
        """Stop every process started under a name; return the names stopped."""
        names = list(Started.running)
        for started in list(Started.running.values()):
            started.stop()
        return names


def stop_all() -> list[str]:
    return Started.stop_all()


# --- redis-server -----------------------------------------------------------------------------


def free_port() -> int:
    # redis-server refuses --port 0, so ask the OS for a free port; if another process takes
    # it in between, the server exits and start() tries another.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ping(port: int, timeout: float = 0.5) -> bool:
    """Whether a Redis answers PING on the port (RESP by hand: no client needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_server_path() -> str | None:
    return shutil.which("redis-server")


class RedisServer(Started):
    """A redis-server on 127.0.0.1 with nothing written to disk, for limits shared by workers."""

    def __init__(self, name: str | None = "redis", executable: str | None = None) -> None:
        super().__init__(name)
        self.executable = executable or redis_server_path()
        if self.executable is None:
            raise FileNotFoundError(REDIS_MISSING)
        self.port: int | None = None
        self.folder: str | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, attempts: int = 5, timeout: float = 10.0) -> RedisServer:
        """Start on a free port, or on the port it had, if it was stopped (a restart)."""
        self.register()
        for _ in range(attempts):
            port = self.port or free_port()
            self.folder = tempfile.mkdtemp(prefix="course-redis-")
            self.process = subprocess.Popen(
                # No snapshot, no append-only file: nothing on disk, nothing to outlive the run.
                [self.executable, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
                + ["--appendonly", "no", "--dir", self.folder, "--protected-mode", "yes"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
            deadline = time.monotonic() + timeout
            while self.process.poll() is None and time.monotonic() < deadline:
                if ping(port):
                    self.port = port
                    return self
                time.sleep(0.02)
            self.stop()
            self.register()
            self.port = None  # most likely taken meanwhile: pick another
        self.stop()
        raise RuntimeError(f"redis-server did not start in {attempts} attempts")

    def flush(self) -> None:
        """Empty it (FLUSHALL, in RESP by hand: no client needed)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            reply = sock.recv(16)
        if not reply.startswith(b"+OK"):
            raise RuntimeError(f"redis-server answered FLUSHALL with {reply!r}")

    def stop(self) -> None:
        super().stop()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


# --- the gateway as N worker processes ----------------------------------------------------------


class WorkerGateway(Started):
    """`python -m course.serve --port 0 --workers N` with GATEWAY_* settings, its output kept."""

    def __init__(self, workers: int, settings: dict[str, str], name: str = "workers") -> None:
        super().__init__(name)
        self.workers = workers
        self.settings = settings
        self.lines: list[str] = []
        self.changed = threading.Condition()

    def start(self, timeout: float = 120.0) -> WorkerGateway:
        """Start, then wait until every worker has said its app is up and the port listens."""
        self.register()
        environment = {**os.environ, **self.settings}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "course.serve", "--port", "0", "--workers", str(self.workers)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=environment,
            cwd=ROOT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        threading.Thread(target=self.collect, args=(self.process,), daemon=True).start()
        deadline = time.monotonic() + timeout
        # Each worker logs this once its app is up, and starts listening on the shared socket
        # just after: connections are refused until the first one does.
        self.wait_for(
            lambda: (
                sum("Application startup complete" in line for line in self.lines) >= self.workers
            ),
            f"{self.workers} workers started",
            timeout,
        )
        self.wait_for(self.listening, "listening", max(deadline - time.monotonic(), 1.0))
        return self

    def listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def collect(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, condition, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    output = "\n".join(self.lines[-20:])
                    self.stop()
                    raise RuntimeError(f"the gateway never got to {what}:\n{output}")
                self.changed.wait(min(left, 0.5))

    @property
    def url(self) -> str:
        for line in self.lines:
            found = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
            if found:
                return found.group(1)
        raise RuntimeError("the gateway has not said where it listens")

    @property
    def limits_line(self) -> str:
        """What the command line said about the limits: per worker, or shared in Redis."""
        return next((line.strip() for line in self.lines if "limits:" in line), "")
