"""course/timebox.py: the time boxes the course states are the ones its model gives.

The model's counts (Markdown words, lab tasks, quiz questions) are read from the notebooks, so
these tests are exact; the execution times come from the recorded run (`course/timebox_
execution.json`), re-measured with `python -m course.timebox --measure`, never here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from course import catalog, timebox
from quizzes import engine

pytestmark = pytest.mark.timeout(60)
ROOT = timebox.ROOT


def write_notebook(path, markdown, code):
    cells = [{"cell_type": "markdown", "metadata": {}, "source": text} for text in markdown]
    cells += [{"cell_type": "code", "metadata": {}, "outputs": [], "source": text} for text in code]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4}))
    return path


@pytest.mark.parametrize(
    ("minutes", "box"), [(0.4, 5), (7.4, 5), (7.5, 10), (12.49, 10), (37.6, 40), (52.5, 55)]
)
def test_a_box_is_the_nearest_five_minutes_and_never_empty(minutes, box):
    assert timebox.rounded(minutes) == box


def test_the_estimate_adds_execution_reading_lab_tasks_and_quiz_cells(tmp_path):
    notebook = write_notebook(
        tmp_path / "98b_sample.ipynb",
        [
            "# 98b · A sample\nTime box: 5 minutes.",  # 7 words
            "## Lab Task 1: do one thing\n| a | b |\n|---|---|\n## Lab Task 2: and another",  # 13
        ],
        [
            'from quizzes import quiz\n\nquiz(notebook="04")',
            "exam(n=3, minutes=12)\nreview()\nquiz(n=None, notebook='01')",
            'flashcards(rule="stream-first")\nflashcards(kind="trap")',
            "%%time\nquiz()",  # a magic: not Python, and not counted
        ],
    )
    bank = engine.load_bank()
    in_bank = {n: len(bank.filter(notebook=n)) for n in ("01", "04")}
    assert in_bank["04"] >= 5, "the sample assumes notebook 04 has more questions than a quiz shows"
    traps = sum(rule.kind == "trap" for rule in bank.rulebook.rules.values())

    estimate = timebox.estimate(notebook, {notebook.name: 90.0})
    assert (estimate.words, estimate.lab_tasks) == (7 + 13, 2)
    assert estimate.questions == 5 + 10 + in_bank["01"], "quiz capped at 5, review's default 10"
    assert (estimate.exam_min, estimate.cards) == (12, 1 + traps)
    assert estimate.execution_measured and estimate.execution_min == 1.5
    assert estimate.total_min == pytest.approx(
        1.5
        + 20 / timebox.READING_WORDS_PER_MINUTE
        + 2 * timebox.MINUTES_PER_LAB_TASK
        + estimate.questions * timebox.MINUTES_PER_QUESTION
        + 12
        + (1 + traps) * timebox.MINUTES_PER_FLASHCARD
    )
    assert estimate.box == timebox.rounded(estimate.total_min)

    unmeasured = timebox.estimate(notebook, {"a.ipynb": 60.0, "b.ipynb": 120.0, "c.ipynb": 600.0})
    assert not unmeasured.execution_measured and unmeasured.execution_s == 120.0, "the median"


def test_every_numbered_notebook_is_estimated_a_new_one_included(tmp_path):
    for name in ("01_a.ipynb", "06_b.ipynb", "06b_c.ipynb", "10_d.ipynb", "README.ipynb"):
        write_notebook(tmp_path / name, ["words here"], [])
    names = [path.name for path in timebox.notebook_paths(tmp_path)]
    assert names == ["01_a.ipynb", "06_b.ipynb", "06b_c.ipynb", "10_d.ipynb"]


# --- the course states what the model gives ----------------------------------------------------


def stated_in_headers() -> dict[str, int]:
    boxes = {}
    for path in timebox.notebook_paths():
        header = json.loads(path.read_text(encoding="utf-8"))["cells"][0]["source"]
        found = re.search(r"Time box: (\d+) minutes", "".join(header))
        assert found, f"{path.name}: no 'Time box: N minutes' in its first cell"
        boxes[path.name] = int(found[1])
    return boxes


def stated_in_readme() -> dict[str, int]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return {
        name: int(minutes)
        for name, minutes in re.findall(
            r"^\| \[[^\]]+\]\(notebooks/([^)]+)\) \|.*\| (\d+) min \|$", readme, re.M
        )
    }


def agenda_blocks() -> dict[str, int]:
    """The one-day agenda in docs/workshop.md: minutes from each notebook's start to the next
    row's start, keyed by the notebook number the block names ("06b" too)."""
    guide = (ROOT / "docs" / "workshop.md").read_text(encoding="utf-8")
    agenda = guide.split("## One-day agenda", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d\d):(\d\d) \| ([^|]+?) \|", agenda, re.M)
    starts = [(int(h) * 60 + int(m), block) for h, m, block in rows]
    blocks = {}
    for (start, block), (following, _) in zip(starts, starts[1:], strict=False):
        number = re.match(r"(\d\d[a-z]?) · ", block)
        if number:
            blocks[number[1]] = following - start
    return blocks


def test_each_notebook_states_the_same_box_everywhere_and_it_is_the_modelled_one():
    estimates = {e.notebook: e for e in timebox.estimates()}
    headers, readme, agenda = stated_in_headers(), stated_in_readme(), agenda_blocks()
    by_notebook = {Path(lab.notebook).name: lab.minutes for lab in catalog.labs().values()}
    assert set(headers) == set(estimates)
    for name, estimate in estimates.items():
        box = headers[name]
        assert readme.get(name) == box, f"README's course map gives {name} {readme.get(name)} min"
        assert agenda.get(name.split("_")[0]) == box, f"workshop agenda block for {name}"
        if name in by_notebook:
            assert by_notebook[name] == box, f"course/labs.yaml gives {name} {by_notebook[name]}"
        assert abs(box - estimate.total_min) <= timebox.TOLERANCE_MINUTES, (
            f"{name} states {box} min, the model gives {estimate.total_min:.1f} "
            f"(run `python -m course.timebox`)"
        )


def test_the_recorded_execution_times_say_when_where_and_how_to_measure_again():
    data = timebox.recorded()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", data["measured"])
    assert "CPU" in data["machine"] and data["command"] == "python -m course.timebox --measure"
    names = {path.name for path in timebox.notebook_paths()}
    assert set(data["seconds"]) <= names, "a recorded notebook no longer exists"
    assert all(seconds > 0 for seconds in data["seconds"].values())
    text = (ROOT / "docs" / "workshop.md").read_text(encoding="utf-8")
    assert "python -m course.timebox" in text and "not a timed" in text


@pytest.mark.timeout(180)
def test_measure_runs_a_notebook_in_a_kernel_and_records_its_cells_time(tmp_path, monkeypatch):
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# 97 · Timed\nTime box: 5 minutes."),
        nbformat.v4.new_code_cell("import time\n\ntime.sleep(0.4)  # the work being timed"),
        nbformat.v4.new_code_cell("import os\n\nassert os.environ['LAB_IMPL'] == 'reference'"),
    ]
    path = tmp_path / "97_timed.ipynb"
    nbformat.write(notebook, path)
    record = tmp_path / "execution.json"
    record.write_text(json.dumps({"seconds": {"96_other.ipynb": 12.0}}))
    monkeypatch.setattr(timebox, "EXECUTION", record)

    data = timebox.measure([path])
    assert 0.4 <= data["seconds"]["97_timed.ipynb"] < 60, "the cells' time"
    assert data["seconds"]["96_other.ipynb"] == 12.0, "the other notebooks' records are kept"
    assert json.loads(record.read_text()) == data
    assert data["command"] == "python -m course.timebox --measure" and "CPU" in data["machine"]
