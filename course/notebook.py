"""Small helpers the notebooks import, so notebook cells stay short and the logic is tested."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from course import impl as impl_switch

ROOT = Path(__file__).resolve().parent.parent


def check_lab(number: str, timeout: float = 600) -> bool:
    """Grade the learner's code for one lab (as `make check LAB=NN` does) and print the result.

    Always grades `labs/`, whatever LAB_IMPL says: this is the learner's own check.
    """
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--impl=labs",
        f"--lab={number}",
        "-q",
        "--tb=line",
        "--no-header",
        str(ROOT / "tests"),
    ]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    print(result.stdout[-6000:] + result.stderr[-2000:])
    return result.returncode == 0


def using() -> str:
    """Say which implementation the live cells use (set LAB_IMPL=labs to run your own code)."""
    name = impl_switch.current()
    package = impl_switch.load()
    return f"Live cells use {name!r}: {Path(package.__file__).parent}"
