"""A real Redis for the tests of state shared between gateway workers: Debian's `redis-server`.

One server per test session on a free loopback port, with no persistence (nothing is written to
disk), emptied before every test that uses it, stopped at the end: the course's own
`course.processes.RedisServer`, started with no name, so a notebook helper's `stop_all` never
stops it. On a machine without it the Redis tests are skipped with a one-line reason, except
under CI, where they fail, so a missing server cannot turn a red run green.

Use `redis_url` (the server's URL, emptied for this test) or `redis_server` (the handle, which
can also stop and start the server on the same port, to test what the gateway does when Redis
goes away).
"""

from __future__ import annotations

import os

import pytest

from course import processes

REDIS_SERVER = processes.redis_server_path()
MISSING = "redis-server is not installed (Debian: apt-get install redis-server); CI installs it"


@pytest.fixture(scope="session")
def redis_server_session():
    if REDIS_SERVER is None and not os.environ.get("CI"):
        pytest.skip(MISSING)
    assert REDIS_SERVER, "CI must have redis-server: .ci/run installs it"
    server = processes.RedisServer(name=None, executable=REDIS_SERVER).start()
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
