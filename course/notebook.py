"""Small helpers the notebooks import, so notebook cells stay short and the logic is tested."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from course import impl as impl_switch

ROOT = Path(__file__).resolve().parent.parent


def check_lab(number: str, timeout: float = 600) -> None:
    """Grade the learner's code for one lab (as `make check LAB=NN` does) and print the report:
    one row per Lab Task, then the first failure of each task not done.

    Always grades `labs/`, whatever LAB_IMPL says: this is the learner's own check. It runs in a
    new process, so it grades the files as they are now, edited or not.
    """
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.txt"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--impl=labs",
            f"--lab={number}",
            f"--lab-report={report}",
            "-q",
            "--no-header",
            str(ROOT / "tests"),
        ]
        result = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
        if report.exists():
            print(report.read_text(encoding="utf-8").rstrip())
        else:  # pytest stopped before grading (a syntax error in labs/, say): show why
            lines = (result.stdout + result.stderr).strip().splitlines()
            print("The check could not run. The end of pytest's output:")
            print("\n".join(lines[-20:]))


def using() -> str:
    """Say which implementation the live cells use (set LAB_IMPL=labs to run your own code)."""
    name = impl_switch.current()
    package = impl_switch.load()
    return f"Live cells use {name!r}: {Path(package.__file__).parent}"
