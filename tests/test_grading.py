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
        notebooks = httpx.get(f"{url}/api/contents/notebooks", params=params, timeout=30).json()
        assert "00_start_here.ipynb" in {entry["name"] for entry in notebooks["content"]}
        lab_file = httpx.get(f"{url}/api/contents/labs/sse.py", params=params, timeout=30)
        assert lab_file.status_code == 200 and "BEGIN LAB 01" in lab_file.json()["content"]
        page = httpx.get(f"{url}/lab", params=params, timeout=30)
        assert page.status_code == 200
        assert '"@jupyterlab/apputils-extension:announcements"' in page.text  # disabled
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.mark.timeout(120)
def test_the_check_cell_shows_one_row_per_lab_task_then_each_first_failure_in_plain_lines(capsys):
    from course.notebook import check_lab

    assert check_lab("01") is None  # no bare True/False under the report
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Lab scoreboard"
    rows = [line for line in lines if re.match(r"  (done |to do)  ", line)]
    assert [row.split(":")[0].split("  ")[-1] for row in rows] == ["Task 1", "Task 2", "Task 3"]
    assert all(row.startswith("  to do  ") for row in rows)
    failures = lines[lines.index("First failure of each task to do:") + 1 :]
    headings = [line for line in failures if line.startswith("Lab 01 Task ")]
    assert len(headings) == 3
    assert len(failures) <= 3 * 6
    assert all(line.startswith(("Lab 01 Task ", "    ")) for line in failures)
    assert not [line for line in lines if "Traceback" in line or line.startswith("E ")]


@pytest.mark.timeout(120)
def test_the_skeleton_check_says_one_line_not_a_letter_per_test(tmp_path):
    subprocess.run(
        [sys.executable, "tools/make_labs.py", "--out", str(tmp_path / "labs")],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )
    result = pytest_run(
        "--impl=labs", "--skeleton-must-fail", "--tb=no", env={"PYTHONPATH": str(tmp_path)}
    )
    assert result.returncode == 0, result.stdout
    assert re.search(r"all \d+ lab tests fail on the skeleton, as they must", result.stdout)
    assert "F" not in result.stdout.split("skeleton check")[0], result.stdout
