"""The contract's documentation page, rendered by a real browser (headless Chromium)."""

from __future__ import annotations

import subprocess

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, needs_chromium

from reference_impl.contract import validate as contract

# CI installs Chromium (.ci/run); on a learner's machine without it the test is skipped.
pytestmark = needs_chromium


def render(url: str, tmp_path) -> str:
    assert CHROMIUM, "CI must have Chromium: .ci/run installs it"
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            *CHROMIUM_ARGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.timeout(120)
def test_the_docs_page_renders_every_operation_offline(start_gateway, tmp_path):
    gateway = start_gateway()
    dom = render(f"{gateway.url}/docs", tmp_path)
    assert "<title>" in dom and "Realtime GenAI API Labs gateway" in dom
    for method, path in contract.contract_routes():
        assert path in dom, f"{method} {path} missing from the rendered page"
    for schema in ("Problem", "AskRequest", "StreamEvent"):
        assert schema in dom
    # Offline: nothing on the page loads from another host.
    assert 'src="http' not in dom and 'href="http' not in dom.replace(gateway.url, "")
