"""Generated documents stay in step with their sources."""

from __future__ import annotations

from pathlib import Path

from course import catalog
from quizzes.cheatsheet import render_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_cheatsheet_is_regenerated_from_rules_yaml():
    on_disk = (ROOT / "docs" / "cheatsheet.md").read_text(encoding="utf-8")
    assert on_disk == render_markdown(), "docs/cheatsheet.md is stale: run `make cheatsheet`"


def course_map_rows() -> dict[str, list[str]]:
    """The README's course map table: each row's cells, keyed by its first cell."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = {}
    for line in readme.splitlines():
        if line.startswith("| [") and line.endswith("|"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


def test_readme_course_map_gives_every_lab_its_row_with_its_skills_and_time_box():
    rows = course_map_rows()
    for lab in catalog.labs().values():
        row = rows.get(f"[{lab.number} · {lab.title}]({lab.notebook})")
        assert row is not None, f"the course map has no row for lab {lab.number}: {lab.title}"
        _, lab_files, skills, time_box = row
        assert lab_files.startswith(f"{lab.number}: "), row
        assert skills == ", ".join(lab.skills), row
        assert time_box == f"{lab.minutes} min", row


def test_every_notebook_has_its_course_map_row_and_agenda_block_with_its_own_time_box():
    import json
    import re

    rows = course_map_rows()
    agenda = (ROOT / "docs" / "workshop.md").read_text(encoding="utf-8")
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb")):
        number = path.name.split("_")[0]
        first = "".join(json.loads(path.read_text(encoding="utf-8"))["cells"][0]["source"])
        minutes = re.search(r"Time box: (\d+) minutes", first)[1]
        row = next((r for key, r in rows.items() if f"(notebooks/{path.name})" in key), None)
        assert row is not None, f"the README's course map has no row for {path.name}"
        assert row[0].startswith(f"[{number} · "), row
        assert row[-1] == f"{minutes} min", f"{path.name}: Time box {minutes} min, README {row[-1]}"
        assert re.search(rf"^\| \d\d:\d\d \| {number} · ", agenda, re.M), (
            f"docs/workshop.md's agenda has no block for {number}"
        )


def test_every_source_cited_in_the_docs_is_listed_in_sources_md():
    import re

    listed = set(
        re.findall(r"\*\*\[([a-z0-9-]+)\]\*\*", (ROOT / "docs" / "sources.md").read_text())
    )
    for name in ("aws-mapping.md", "cheatsheet.md"):
        cited = set(
            re.findall(r"\[([a-z0-9]+(?:-[a-z0-9]+)+)\]", (ROOT / "docs" / name).read_text())
        )
        assert cited <= listed, f"docs/{name} cites unknown sources: {sorted(cited - listed)}"
