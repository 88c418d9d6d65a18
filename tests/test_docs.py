"""Generated documents stay in step with their sources."""

from __future__ import annotations

from pathlib import Path

from course import catalog
from quizzes.cheatsheet import render_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_cheatsheet_is_regenerated_from_rules_yaml():
    on_disk = (ROOT / "docs" / "cheatsheet.md").read_text(encoding="utf-8")
    assert on_disk == render_markdown(), "docs/cheatsheet.md is stale: run `make cheatsheet`"


def test_readme_course_map_names_every_lab_and_its_time_box():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for lab in catalog.labs().values():
        assert f"{lab.number} · {lab.title}" in readme, lab.title
        assert f"{lab.minutes} min" in readme


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
