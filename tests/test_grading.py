"""The grading switch, the scoreboard, and the two commands, driven as a learner would."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from course import impl as impl_switch

ROOT = Path(__file__).resolve().parent.parent
LAB01_TESTS = "tests/test_lab01_sse_encoder.py"


def pytest_run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args, LAB01_TESTS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **(env or {})},
    )


def test_the_switch_defaults_to_reference_and_rejects_unknown_names(monkeypatch):
    monkeypatch.delenv("LAB_IMPL", raising=False)
    assert impl_switch.current() == "reference"
    assert impl_switch.load("sse").__name__ == "reference_impl.sse"
    monkeypatch.setenv("LAB_IMPL", "labs")
    assert impl_switch.load("sse").__name__ == "labs.sse"
    monkeypatch.setenv("LAB_IMPL", "solutions")
    with pytest.raises(impl_switch.ImplementationError, match="LAB_IMPL='solutions'"):
        impl_switch.current()


def test_lab_check_on_the_skeleton_prints_a_failing_scoreboard(impl):
    result = pytest_run("--impl=labs", "--lab=01", "--tb=no")
    assert result.returncode == 1, result.stdout
    match = re.search(r"Lab 01 The SSE wire format: 0/(\d+) checks passed \(to do\)", result.stdout)
    assert match and int(match.group(1)) > 0, result.stdout
    assert "implementation: labs" in result.stdout


def test_the_same_checks_pass_on_the_reference(impl):
    result = pytest_run("--impl=reference", "--lab=1", "--tb=short")
    assert result.returncode == 0, result.stdout
    match = re.search(
        r"Lab 01 The SSE wire format: (\d+)/(\d+) checks passed \(done\)", result.stdout
    )
    assert match and match.group(1) == match.group(2), result.stdout


def test_lab_impl_environment_variable_is_the_same_switch_as_the_option():
    result = pytest_run("--lab=01", "--tb=no", env={"LAB_IMPL": "labs"})
    assert result.returncode == 1 and "implementation: labs" in result.stdout


def test_an_unknown_lab_is_a_usage_error():
    result = pytest_run("--lab=42")
    assert result.returncode == 4
    assert "there is no lab 42" in result.stderr


def test_make_check_exits_non_zero_with_the_scoreboard_when_a_lab_is_unfinished():
    result = subprocess.run(
        ["make", "--no-print-directory", "check", "LAB=01"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode != 0
    assert "Lab scoreboard" in result.stdout and "Total: 0/" in result.stdout


@pytest.mark.timeout(120)
def test_make_lab_serves_the_repository_with_the_labs_in_reach_and_no_news_pop_up():
    """As root too: make adds --allow-root itself and says why; ARGS reaches JupyterLab."""
    token = "course-test-token"
    args = f"--no-browser --ip=127.0.0.1 --port=0 --IdentityProvider.token={token}"
    process = subprocess.Popen(
        ["make", "--no-print-directory", "lab", f"ARGS={args}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        url, lines = None, []
        deadline = time.monotonic() + 90
        for line in process.stdout:
            lines.append(line)
            found = re.search(r"(http://127\.0\.0\.1:\d+)/lab", line)
            if found:
                url = found.group(1)
                break
            assert time.monotonic() < deadline, "JupyterLab did not print its URL in time"
        assert url, "JupyterLab exited without serving:\n" + "".join(lines)
        said_root = [line for line in lines if "--allow-root" in line and "make lab" in line]
        assert len(said_root) == (1 if os.geteuid() == 0 else 0), lines
        params = {"token": token}
        root = httpx.get(f"{url}/api/contents", params=params, timeout=30).json()
        assert {"labs", "notebooks"} <= {entry["name"] for entry in root["content"]}
        lab_file = httpx.get(f"{url}/api/contents/labs/sse.py", params=params, timeout=30)
        assert lab_file.status_code == 200 and "BEGIN LAB 01" in lab_file.json()["content"]
        page = httpx.get(f"{url}/lab", params=params, timeout=30)
        assert page.status_code == 200
        assert '"@jupyterlab/apputils-extension:announcements"' in page.text  # disabled
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
