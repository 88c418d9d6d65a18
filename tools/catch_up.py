"""Catch a learner up: solve labs 01..NN in their `labs/`, keeping all their other work.

For a workshop seat that fell behind: `make catch-up UPTO=04` puts the reference solution of
labs 01 to 04 inside those labs' `# BEGIN LAB` / `# END LAB` blocks, and leaves every other
line alone, so the learner's work on lab 05 and later stays where it is. The markers stay too,
so `make reset-lab LAB=03` can still turn a solved lab back into an exercise.

Nothing is lost: every file about to change is first copied to `.lab-backups/<time>/`, as
`make reset-lab` does. A file whose markers of a lab being solved were deleted or duplicated
cannot be matched block by block; it is rebuilt from a fresh skeleton and then solved, and the
learner's version of it is in the backup.

    python tools/catch_up.py 04                # labs/
    python tools/catch_up.py 04 --out DIR/labs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_labs import (  # noqa: E402
    BEGIN_SOLUTION,
    END_SOLUTION,
    SOURCE,
    TARGET,
    GeneratorError,
    backup,
    blocks,
    generate,
    now_stamp,
)

from course.catalog import labs as course_labs  # noqa: E402
from course.catalog import normalise  # noqa: E402


def solution_bodies(source_lines: list[str], lab: str) -> list[list[str]]:
    """The code inside each `# BEGIN SOLUTION labNN` region of one reference file, in order."""
    bodies: list[list[str]] = []
    current: list[str] | None = None
    for line in source_lines:
        begin = BEGIN_SOLUTION.match(line)
        if begin:
            current = [] if begin["lab"] == lab else None
            continue
        if END_SOLUTION.match(line):
            if current is not None:
                bodies.append(current)
            current = None
            continue
        if current is not None:
            current.append(line)
    return bodies


def catch_up(target: Path, upto: str, source: Path = SOURCE) -> list[str]:
    """Solve labs 01..`upto` in `target`; returns the files changed (relative paths)."""
    upto = normalise(upto)
    solve = {number for number in course_labs() if number <= upto}
    files, labs_in_file = generate(source)
    relpaths = sorted(p for p, labs in labs_in_file.items() if solve.intersection(labs))
    saved = backup(target, relpaths, now_stamp())
    for relpath in relpaths:
        path = target / relpath
        reference = (source / relpath).read_text(encoding="utf-8").splitlines(keepends=True)
        labs_here = sorted(solve.intersection(labs_in_file[relpath]))
        bodies = {lab: solution_bodies(reference, lab) for lab in labs_here}
        mine = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.exists() else []
        if any(len(blocks(mine, lab)) != len(bodies[lab]) for lab in labs_here):
            if path.exists():
                print(
                    f"catch-up: labs/{relpath} had changed LAB markers: rebuilt from the skeleton"
                )
            mine = files[relpath].decode("utf-8").splitlines(keepends=True)
        for lab in labs_here:
            # From the last block up, so earlier line indexes stay valid.
            for (begin, end), body in reversed(
                list(zip(blocks(mine, lab), bodies[lab], strict=True))
            ):
                mine[begin + 1 : end] = body
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(mine), encoding="utf-8")
        print(f"catch-up: labs/{relpath}: lab {', '.join(labs_here)} solved")
    if saved:
        print(f"catch-up: your previous files were backed up to {saved}")
    return relpaths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("upto", metavar="NN", help="solve labs 01 up to this one")
    parser.add_argument("--src", type=Path, default=SOURCE, help="default reference_impl/")
    parser.add_argument("--out", type=Path, default=TARGET, help="the labs folder (default labs/)")
    args = parser.parse_args(argv)
    try:
        catch_up(args.out.resolve(), args.upto, args.src.resolve())
    except (GeneratorError, ValueError) as error:
        print(f"catch-up: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
