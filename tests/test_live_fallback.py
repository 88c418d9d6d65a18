"""Live cells run the learner's finished labs and the solution for the rest, saying so in one line.

Each test runs a fresh Python on a freshly generated skeleton (as a learner has it before any lab)
with the live fallback installed, as a notebook kernel does; grading never installs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from course import live

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def skeleton(tmp_path_factory) -> Path:
    """A folder holding an untouched `labs/`, first on PYTHONPATH in `run_live`."""
    folder = tmp_path_factory.mktemp("skeleton")
    subprocess.run(
        [sys.executable, "tools/make_labs.py", "--out", str(folder / "labs")],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return folder


def run_live(skeleton: Path, code: str, install: bool = True) -> subprocess.CompletedProcess:
    prelude = "from course import live\nlive.install()\n" if install else ""
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=skeleton,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(skeleton), "LAB_IMPL": "labs"},
    )


def test_an_unfinished_task_runs_the_solution_and_says_so_in_one_line(skeleton):
    result = run_live(
        skeleton,
        """
        from labs import sse
        print(repr(sse.encode_event("a\\n\\nb", event="delta", id=1)))
        print(repr(sse.encode_event("c\\nd")))
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "lab 01 not done yet: the reference `single_line_field` runs",
        "lab 01 not done yet: the reference `data_lines` runs",
        repr(b"id: 1\nevent: delta\ndata: a\ndata: \ndata: b\n\n"),
        repr(b"data: c\ndata: d\n\n"),
    ]
    assert result.stderr == ""


def test_the_errors_a_task_raises_on_purpose_go_through(skeleton):
    result = run_live(
        skeleton,
        """
        from labs import sse
        try:
            sse.encode_event("hi", event="delta\\nevent: admin")
        except sse.SSEFieldError as error:
            print("refused:", error)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("refused: SSE field 'event'")


def test_the_learners_gateway_serves_a_stream_before_any_lab_is_done(skeleton):
    result = run_live(
        skeleton,
        """
        import httpx
        from labs import app, background, settings
        server = background.BackgroundServer(app.create_app(settings.Settings()), name="live")
        server.start()
        body = {"question": "What is SSE?", "document_id": "server-sent-events"}
        headers = {"Authorization": "Bearer course-key"}
        with httpx.Client(timeout=30) as client:
            response = client.post(f"{server.url}/v1/ask/stream", json=body, headers=headers)
        server.stop()
        print(response.status_code, "event: end" in response.text, "event: error" in response.text)
        """,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "200 True False", result.stdout + result.stderr
    notes = lines[:-1]
    assert notes and all(" not done yet: the reference `" in line for line in notes), notes
    assert "Traceback" not in result.stderr


def test_a_bug_in_a_finished_task_is_one_line_naming_the_task(skeleton, tmp_path):
    learner = tmp_path / "learner"
    subprocess.run(["cp", "-r", str(skeleton / "labs"), str(learner)], check=True, timeout=30)
    labs = learner.rename(tmp_path / "labs")
    sse_file = labs / "sse.py"
    source = sse_file.read_text(encoding="utf-8")
    todo = "    # TODO Lab 01: split multi-line data into one data line per line\n"
    assert todo in source
    sse_file.write_text(source.replace(todo, "    return data.splitlinez()\n"), encoding="utf-8")
    result = run_live(tmp_path, "from labs import sse\nprint(repr(sse.encode_event('x')))\n")
    assert result.returncode == 0, result.stderr
    first, value = result.stdout.splitlines()[-2:]
    assert first.startswith(
        "lab 01 (split multi-line data into one data line per line): your `data_lines` raised "
        "AttributeError"
    ), first
    assert "labs/sse.py:" in first
    assert value == repr(b"data: x\n\n")


def test_grading_and_scripts_stay_strict(skeleton):
    """Outside a notebook kernel course.impl never installs the fallback."""
    result = run_live(
        skeleton,
        """
        from course import impl
        sse = impl.load("sse")
        try:
            sse.encode_event("x")
        except NotImplementedError as error:
            print("strict:", error)
        """,
        install=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("strict: Lab 01:"), result.stdout


def test_an_edited_lab_takes_effect_without_a_restart(skeleton, tmp_path):
    subprocess.run(["cp", "-r", str(skeleton / "labs"), str(tmp_path)], check=True, timeout=30)
    result = run_live(
        tmp_path,
        """
        import os
        from pathlib import Path
        from course import live
        from labs import sse, wire_sse
        print(repr(sse.data_lines("a")))
        path = Path(sse.__file__)
        todo = "    # TODO Lab 01: split multi-line data into one data line per line\\n"
        mine = "    return ['data: mine ' + data]\\n"
        path.write_text(path.read_text().replace(todo, mine))
        os.utime(path, (1, 1))  # a different modification time, however fast the edit
        print(live.refresh())
        print(repr(sse.data_lines("a")), wire_sse.sse is sse)
        """,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "lab 01 not done yet: the reference `data_lines` runs"
    assert lines[1] == repr(["data: a"])
    assert "labs.sse" in lines[2]
    assert lines[3] == repr(["data: mine a"]) + " True"


def test_the_fallback_follows_whatever_regions_exist():
    """A region in a method, in the middle of a generator: paired by its markers alone."""
    reference = textwrap.dedent(
        """
        class Counter:
            def counts(self, n):
                yield "start"
                for i in range(n):
                    # BEGIN SOLUTION lab05: count up
                    yield i
                    # END SOLUTION
                yield "end"
        """
    )
    learner = textwrap.dedent(
        """
        class Counter:
            def counts(self, n):
                yield "start"
                for i in range(n):
                    # BEGIN LAB 05: count up
                    raise NotImplementedError("Lab 05: count up")
                    yield
                    # END LAB 05
                yield "end"
        """
    )
    namespace = {live.HANDLE: live}
    exec(
        compile(live.hybrid(learner, reference, "labs/counter.py"), "labs/counter.py", "exec"),
        namespace,
    )
    assert list(namespace["Counter"]().counts(2)) == ["start", 0, 1, "end"]
