"""Check that labs can be done in order: after labs 01..NN are solved, lab NN's checks pass.

A lab test that also needs a later lab's code would fail for a learner who has done every
lab up to it. For each lab with tasks, this builds the course as that learner has it
(`make_labs.py --solved-upto NN`, later labs still cut out) and runs lab NN's tests on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    manifest = json.loads((ROOT / "labs" / ".manifest.json").read_text(encoding="utf-8"))
    labs = sorted({lab for labs in manifest["labs"].values() for lab in labs})
    failed = []
    for lab in labs:
        with tempfile.TemporaryDirectory() as tmp:
            generate = [
                sys.executable,
                str(ROOT / "tools" / "make_labs.py"),
                "--out",
                str(Path(tmp) / "labs"),
                "--solved-upto",
                lab,
            ]
            subprocess.run(generate, check=True, capture_output=True, cwd=ROOT)
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-p",
                    "no:cacheprovider",
                    "--impl=labs",
                    f"--lab={lab}",
                    "-q",
                    "--tb=short",
                    "--no-header",
                    str(ROOT / "tests"),
                ],
                cwd=tmp,  # not the repository, so `labs` is imported from the temporary copy
                env={**os.environ, "PYTHONPATH": tmp},
                capture_output=True,
                text=True,
            )
        last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        print(f"lab {lab} with labs up to {lab} solved: {last}")
        if result.returncode != 0:
            failed.append(lab)
            print(result.stdout[-4000:], result.stderr[-2000:])
    if failed:
        print(f"labs {', '.join(failed)} need code from a later lab; see the failures above")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
