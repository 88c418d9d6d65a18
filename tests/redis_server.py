"""A real Redis for the tests of state shared between gateway workers: Debian's `redis-server`.

One server per test session on a free loopback port, with no persistence (no RDB snapshot, no
append-only file: nothing is written to disk), emptied before every test that uses it, stopped
at the end. On a machine without it the Redis tests are skipped with a one-line reason, except
under CI, where they fail, so a missing server cannot turn a red run green.

Use `redis_url` (the server's URL, emptied for this test) or `redis_server` (the handle, which
can also stop and start the server, to test what the gateway does when Redis goes away).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server")
START_TIMEOUT = 10.0
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

MISSING = "redis-server is not installed (Debian: apt-get install redis-server); CI installs it"


def free_port() -> int:
    # redis-server refuses --port 0, so ask the OS for a free port and hand it over; another
    # process may take it in between, which start() notices and retries.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ping(port: int, timeout: float = 0.5) -> bool:
    """Whether a Redis answers PING on the port (spoken in RESP by hand: no client needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def die_with_parent() -> None:
    # Linux: the server gets SIGTERM when the test process dies, even killed, so no server is
    # left behind by a run that never reached its teardown.
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class RedisServer:
    """One redis-server process on 127.0.0.1, restartable on the same port."""

    def __init__(self, executable: str, workdir: Path) -> None:
        self.executable = executable
        self.workdir = workdir
        self.port: int | None = None
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, attempts: int = 5) -> RedisServer:
        for _ in range(attempts):
            port = self.port or free_port()
            if self.launch(port):
                return self
            self.port = None  # the port was taken meanwhile: pick another
        raise RuntimeError(f"redis-server did not start in {attempts} attempts")

    def launch(self, port: int) -> bool:
        log = self.workdir / f"redis-{port}.log"
        self.process = subprocess.Popen(
            [
                self.executable,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(log),
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # exited: most likely the port was in use
            if ping(port):
                self.port = port
                return True
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server on port {port} did not answer PING; see {log}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            reply = sock.recv(16)
        assert reply.startswith(b"+OK"), reply


@pytest.fixture(scope="session")
def redis_server_session():
    if REDIS_SERVER is None and not os.environ.get("CI"):
        pytest.skip(MISSING)
    assert REDIS_SERVER, "CI must have redis-server: .ci/run installs it"
    with tempfile.TemporaryDirectory(prefix="redis-test-") as workdir:
        server = RedisServer(REDIS_SERVER, Path(workdir)).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def redis_server(redis_server_session):
    """The session's Redis, running and empty; restarted if a test stopped it."""
    server = redis_server_session
    if server.process is None:
        server.start()
    server.flush()
    yield server
    if server.process is None:
        server.start()


@pytest.fixture
def redis_url(redis_server) -> str:
    return redis_server.url
