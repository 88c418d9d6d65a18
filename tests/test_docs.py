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
