"""Each notebook's time box, modelled from what the notebook holds and how long its cells ran.

A box is the sum of four parts, each from something counted or measured, at a stated rate:

- execution: the seconds its code cells took when the notebook was last run top to bottom
  (recorded in `timebox_execution.json` with the date and the machine; `--measure` re-runs);
- reading: the words of its Markdown cells at `READING_WORDS_PER_MINUTE`;
- lab: `MINUTES_PER_LAB_TASK` for each `## Lab Task N:` heading;
- quiz: the questions its `quiz(...)` and `review(...)` cells show as written, at
  `MINUTES_PER_QUESTION` each; an `exam(...)` for its own clock (`minutes`); the cards its
  `flashcards(...)` cells show, at `MINUTES_PER_FLASHCARD` each.

This models a run-through; it is not a person timed doing the course. Any notebook in
`notebooks/` whose name starts with two digits is estimated; one whose cells were never
measured gets the median of the measured ones, and says so.

    python -m course.timebox             # the table, from the recorded execution times
    python -m course.timebox --measure   # run every notebook (or the ones named), record, table
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import os
import platform
import re
import statistics
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from course.catalog import TASK_HEADING

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
EXECUTION = Path(__file__).with_name("timebox_execution.json")

# Technical prose with code names in it is read more slowly than the ~238 words a minute adults
# average on non-fiction (Brysbaert 2019, a meta-analysis of 190 studies); the course uses 150.
READING_WORDS_PER_MINUTE = 150
# One lab task: read the steps, write ten to thirty lines, run the check, fix once.
MINUTES_PER_LAB_TASK = 10
# One quiz question: read a scenario, choose, read the feedback.
MINUTES_PER_QUESTION = 1.0
# One flashcard: read the front, recall, flip, read the hook.
MINUTES_PER_FLASHCARD = 0.25
BOX_STEP = 5  # boxes are stated in 5-minute steps
TOLERANCE_MINUTES = 5  # how far a stated box may be from the estimate before it is stale

QUIZ_CALLS = ("quiz", "exam", "review", "flashcards")
WORD = re.compile(r"\S*[A-Za-z0-9]\S*")  # a run of non-space with a letter or digit in it


@dataclass(frozen=True)
class Estimate:
    """One notebook's modelled time box and what it is made of."""

    notebook: str  # file name
    words: int  # in Markdown cells
    lab_tasks: int
    questions: int  # shown by its quiz and review cells, as they are called
    exam_min: float  # the clock of its timed exam, if it has one
    cards: int  # flashcards shown
    execution_s: float  # its cells' measured execution time
    execution_measured: bool  # False: the median of the others stands in

    @property
    def reading_min(self) -> float:
        return self.words / READING_WORDS_PER_MINUTE

    @property
    def lab_min(self) -> float:
        return self.lab_tasks * MINUTES_PER_LAB_TASK

    @property
    def quiz_min(self) -> float:
        return (
            self.questions * MINUTES_PER_QUESTION
            + self.exam_min
            + self.cards * MINUTES_PER_FLASHCARD
        )

    @property
    def execution_min(self) -> float:
        return self.execution_s / 60

    @property
    def total_min(self) -> float:
        return self.execution_min + self.reading_min + self.lab_min + self.quiz_min

    @property
    def box(self) -> int:
        return rounded(self.total_min)


def rounded(minutes: float, step: int = BOX_STEP) -> int:
    """To the nearest `step` minutes, halves up, and never below one step."""
    return max(step, step * math.floor(minutes / step + 0.5))


def notebook_paths(folder: Path = NOTEBOOKS) -> list[Path]:
    """Every course notebook, in course order: the names starting with two digits (06b too)."""
    return sorted(folder.glob("[0-9][0-9]*.ipynb"))


def _cells(path: Path, kind: str) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == kind]


def markdown_words(path: Path) -> int:
    return sum(len(WORD.findall(text)) for text in _cells(path, "markdown"))


def lab_tasks(path: Path) -> int:
    return sum(len(TASK_HEADING.findall(text)) for text in _cells(path, "markdown"))


@cache
def _defaults(name: str) -> dict[str, object]:
    from quizzes import widgets

    parameters = inspect.signature(getattr(widgets, name)).parameters.values()
    return {parameter.name: parameter.default for parameter in parameters}


@cache
def _bank():
    from quizzes import engine

    return engine.load_bank()


def _argument(call: ast.Call, name: str):
    """A keyword argument's literal value, or the function's default for it."""
    for keyword in call.keywords:
        if keyword.arg == name:
            return ast.literal_eval(keyword.value)
    return _defaults(call.func.id)[name]


def _calls(path: Path):
    for source in _cells(path, "code"):
        try:
            tree = ast.parse(source)
        except SyntaxError:  # a cell with IPython magics: it holds no quiz call of ours
            continue
        for call in ast.walk(tree):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name):
                if call.func.id in QUIZ_CALLS:
                    yield call


def quiz_items(path: Path) -> tuple[int, float, int]:
    """What the notebook's quiz cells show as written: (questions in `quiz` and `review`, the
    minutes of its `exam`, flashcards). A `quiz` shows its `n` (or the default), and no more
    than the bank has for that notebook; `n=None` shows them all."""
    questions, exam_minutes, cards = 0, 0.0, 0
    for call in _calls(path):
        name = call.func.id
        if name == "exam":
            exam_minutes += float(_argument(call, "minutes"))
        elif name == "flashcards":
            rules = _bank().rulebook.rules.values()
            rule, kind = _argument(call, "rule"), _argument(call, "kind")
            cards += sum(
                (rule is None or r.id == rule) and (kind is None or r.kind == kind) for r in rules
            )
        else:
            n = _argument(call, "n")
            if name == "quiz":
                matching = len(_bank().filter(notebook=_argument(call, "notebook")))
                n = matching if n is None else min(n, matching)
            questions += n
    return questions, exam_minutes, cards


def recorded() -> dict:
    """The last measurement: {"measured", "machine", "command", "seconds": {name: s}}."""
    if not EXECUTION.exists():
        return {"seconds": {}}
    return json.loads(EXECUTION.read_text(encoding="utf-8"))


def estimate(path: Path, seconds: dict[str, float] | None = None) -> Estimate:
    seconds = recorded()["seconds"] if seconds is None else seconds
    measured = path.name in seconds
    execution = seconds[path.name] if measured else statistics.median(seconds.values() or [0])
    questions, exam_minutes, cards = quiz_items(path)
    return Estimate(
        notebook=path.name,
        words=markdown_words(path),
        lab_tasks=lab_tasks(path),
        questions=questions,
        exam_min=exam_minutes,
        cards=cards,
        execution_s=execution,
        execution_measured=measured,
    )


def estimates(folder: Path = NOTEBOOKS) -> list[Estimate]:
    seconds = recorded()["seconds"]
    return [estimate(path, seconds) for path in notebook_paths(folder)]


# --- measuring: run a notebook as the tests do, add up its cells' execution times ----------------


def execution_seconds(path: Path) -> float:
    """Run the notebook top to bottom in a fresh kernel (reference implementation, a throwaway
    quiz progress file) and return the sum of its code cells' execution times, as the kernel
    reported them."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as scratch:
        env = {"LAB_IMPL": "reference", "QUIZ_PROGRESS_FILE": str(Path(scratch) / "p.json")}
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        try:
            NotebookClient(
                notebook,
                timeout=600,
                kernel_name="python3",
                record_timing=True,
                resources={"metadata": {"path": str(path.parent)}},
            ).execute()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    total = 0.0
    for cell in notebook.cells:
        timing = cell.metadata.get("execution", {})
        if cell.cell_type == "code" and "shell.execute_reply" in timing:
            started = datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
            ended = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
            total += (ended - started).total_seconds()
    return total


def measure(paths: list[Path]) -> dict:
    """Run `paths`, and record their times alongside the ones already recorded."""
    data = recorded()
    for path in paths:
        print(f"running {path.name} ...", file=sys.stderr, flush=True)
        data["seconds"][path.name] = round(execution_seconds(path), 1)
    data["seconds"] = dict(sorted(data["seconds"].items()))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    data["measured"] = datetime.now(UTC).strftime("%Y-%m-%d")
    data["machine"] = (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, load average {load:.1f} when it ended"
    )
    data["command"] = "python -m course.timebox --measure"
    EXECUTION.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data


def table(rows: list[Estimate]) -> str:
    lines = [
        f"{'notebook':34} {'run':>5} {'read':>5} {'lab':>4} {'quiz':>4} {'total':>6} {'box':>4}",
    ]
    for e in rows:
        run = f"{e.execution_min:4.1f}" + ("" if e.execution_measured else "*")
        lines.append(
            f"{e.notebook:34} {run:>5} {e.reading_min:5.1f} {e.lab_min:4.0f} {e.quiz_min:4.0f} "
            f"{e.total_min:6.1f} {e.box:4}"
        )
    lines.append(f"{'sum of boxes':34} {sum(e.box for e in rows):>31} min")
    if any(not e.execution_measured for e in rows):
        lines.append("* not measured: the median of the measured notebooks stands in")
    data = recorded()
    lines.append(
        f"minutes; reading {READING_WORDS_PER_MINUTE} words/min, {MINUTES_PER_LAB_TASK} min per "
        f"lab task, {MINUTES_PER_QUESTION:g} min per quiz question, the exam's own clock, "
        f"{MINUTES_PER_FLASHCARD:g} min per flashcard; execution measured "
        f"{data.get('measured', 'never')} on {data.get('machine', '-')}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--measure"]:
        named = argv[1:]
        paths = [p for p in notebook_paths() if not named or any(n in p.name for n in named)]
        measure(paths)
    print(table(estimates()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
