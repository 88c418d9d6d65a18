"""`make catch-up UPTO=NN`: labs 01..NN solved in the learner's labs/, nothing else touched."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import make_labs  # noqa: E402

pytestmark = pytest.mark.timeout(120)
SOLVED = frozenset({"01", "02", "03", "04"})
MARKER = re.compile(r"^[ \t]*# (BEGIN|END) LAB (\d{2})")


def tool(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=90
    )


def write_in_block(path: Path, lab: str, text: str) -> None:
    """Do what a learner does: replace a lab's TODO line with their own code."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    todo = next(i for i, line in enumerate(lines) if line.strip().startswith(f"# TODO Lab {lab}"))
    lines[todo] = lines[todo].replace(f"# TODO Lab {lab}", text)
    path.write_text("".join(lines), encoding="utf-8")


@pytest.fixture
def learner_labs(tmp_path):
    labs = tmp_path / "labs"
    assert tool("tools/make_labs.py", "--out", labs).returncode == 0
    return labs


def test_catch_up_solves_labs_up_to_nn_and_keeps_later_work_and_a_backup(learner_labs):
    manifest = json.loads((learner_labs / ".manifest.json").read_text())
    later = next(p for p, labs in manifest["labs"].items() if "05" in labs)
    earlier = next(p for p, labs in manifest["labs"].items() if "02" in labs)
    write_in_block(learner_labs / later, "05", "# my own lab 05 work")
    write_in_block(learner_labs / earlier, "02", "# my half-done lab 02 attempt")

    result = tool("tools/catch_up.py", "04", "--out", learner_labs)
    assert result.returncode == 0, result.stderr

    solved, _ = make_labs.generate(make_labs.SOURCE, keep=SOLVED)
    for relpath in manifest["labs"]:
        text = (learner_labs / relpath).read_text(encoding="utf-8")
        for lab in SOLVED:
            assert f"NotImplementedError('Lab {lab}" not in text, f"{relpath}: lab {lab} unsolved"
        # Without the markers of the solved labs, each file is the course as it is after lab 04
        # (the generator's --solved-upto), except for the learner's own later work.
        unmarked = "".join(
            line
            for line in text.splitlines(keepends=True)
            if not ((m := MARKER.match(line)) and m[2] in SOLVED)
        )
        expected = solved[relpath].decode("utf-8")
        if relpath == later:
            expected = expected.replace("# TODO Lab 05", "# my own lab 05 work", 1)
        assert unmarked == expected, f"{relpath} is not the course solved up to lab 04"
    assert "# my own lab 05 work" in (learner_labs / later).read_text()
    assert "BEGIN LAB 02" in (learner_labs / earlier).read_text(), "markers stay for reset-lab"

    backups = list((learner_labs.parent / ".lab-backups").glob(f"*/{earlier}"))
    assert len(backups) == 1 and "# my half-done lab 02 attempt" in backups[0].read_text()


def test_catch_up_refuses_a_lab_that_is_not_in_the_course(learner_labs):
    result = tool("tools/catch_up.py", "42", "--out", learner_labs)
    assert result.returncode == 2 and "there is no lab 42" in result.stderr


def test_make_catch_up_is_documented_and_needs_upto():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(
        r"^catch-up: setup\n(\t.*\n)*\t.*tools/catch_up\.py \$\(UPTO\)", makefile, re.M
    )
    assert "make catch-up UPTO=" in (ROOT / "docs" / "workshop.md").read_text()
