"""Shared fixtures. The grading switch (--impl, lab markers, scoreboard) is `course.grading`."""

from __future__ import annotations

from typing import Any

import pytest
from support import TEST_SETTINGS, RunningGateway

pytest_plugins = ["course.grading", "browser", "redis_server"]


@pytest.fixture
def start_gateway(impl):
    """Start the implementation under test's gateway: start_gateway(model=None, **settings)."""
    running: list[RunningGateway] = []

    def start(model: Any = None, **overrides: Any) -> RunningGateway:
        settings = impl.settings.Settings(**{**TEST_SETTINGS, **overrides})
        app = impl.app.create_app(settings, model=model)
        server = impl.background.BackgroundServer(app, name=f"test-gateway-{len(running)}")
        gateway = RunningGateway(server.start(), app, settings)
        running.append(gateway)
        return gateway

    yield start
    for gateway in running:
        for client in gateway.clients:
            client.close()
        gateway.server.stop()
