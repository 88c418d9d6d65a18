"""A real browser for the tests of anything a person looks at: Playwright driving Debian's Chromium.

Playwright's own browser download cannot work here (no network beyond the package registries),
so the browser is the system's `chromium`, found on PATH. CI installs it (.ci/run); on a machine
without it the browser tests are skipped with a one-line reason, except under CI, where they
fail, so a missing browser cannot turn a red run green.

Use the `page` fixture (a fresh page in a fresh context per test) and `screenshot(page, name)`,
which saves `test-artifacts/<test file>/<name>.png` for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The flags a headless Chromium needs as root in a container with no network but loopback:
# without the background-networking ones it keeps trying to reach Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Chromium is not installed (Debian: apt-get install chromium); CI installs it",
)


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module. Not per session: Playwright's sync API keeps an
    event loop running in this thread while it is open, so a later test's `asyncio.run` would
    fail with "cannot be called from a running event loop"."""
    assert CHROMIUM, "CI must have Chromium: .ci/run installs it"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, request):
    """A fresh page; its console errors are collected in `page.console_errors`."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.console_errors = []
    page.on(
        "console", lambda message: message.type == "error" and page.console_errors.append(message)
    )
    page.on("pageerror", lambda error: page.console_errors.append(error))
    try:
        yield page
    finally:
        context.close()


def screenshot(page, name: str, full_page: bool = True) -> Path:
    """Save a screenshot under test-artifacts/<test module>/<name>.png and return its path."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "browser").split("::")[0]
    folder = ARTIFACTS / Path(test).stem
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + ".png")
    page.screenshot(path=str(path), full_page=full_page)
    return path
