"""Notebooks: committed clean, taught in the course order, and they run top to bottom."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from course import catalog

ROOT = Path(__file__).resolve().parent.parent
# Numbered "06_..."; a notebook added between two keeps their numbers with a letter: "06b_...".
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
SECTIONS = ["Objectives", "Concept", "Lab Task", "Check", "Try it live", "Quiz", "Clean-up"]


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ has no numbered notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name}: strip outputs before committing"
            assert cell.get("execution_count") is None, f"{path.name}: strip execution counts"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_teaches_in_the_course_order(path):
    notebook = nbformat.read(path, as_version=4)
    headings = [
        line[3:].strip()
        for cell in notebook.cells
        if cell.cell_type == "markdown"
        for line in cell.source.splitlines()
        if line.startswith("## ")
    ]
    first_seen = []
    for heading in headings:
        section = next((s for s in SECTIONS if heading.startswith(s)), None)
        if section and section not in first_seen:
            first_seen.append(section)
    assert first_seen == SECTIONS, f"{path.name}: sections {first_seen}, want {SECTIONS}"
    title = notebook.cells[0].source.splitlines()[0]
    number = path.name.split("_")[0]
    assert re.match(rf"# {number} · \S", title), f"{path.name}: title {title!r}"
    assert "Time box:" in notebook.cells[0].source


def test_every_lab_with_tasks_has_its_notebook():
    manifest = json.loads((ROOT / "labs" / ".manifest.json").read_text())
    labs_with_tasks = {lab for labs in manifest["labs"].values() for lab in labs}
    for number in sorted(labs_with_tasks):
        notebook = ROOT / catalog.labs()[number].notebook
        assert notebook.exists(), f"lab {number} has tasks but {notebook.name} is missing"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_IMPL", "reference")
    monkeypatch.setenv("QUIZ_PROGRESS_FILE", str(tmp_path / "progress.json"))
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=240,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors, errors
