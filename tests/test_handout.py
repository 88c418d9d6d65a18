"""The printable handout: six lines and the decision table from rules.yaml, on one page."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest
from browser import needs_chromium, screenshot

from quizzes import handout
from quizzes.engine import load_rules

pytestmark = pytest.mark.timeout(60)


def test_the_six_lines_each_condense_a_rule_of_rules_yaml():
    rulebook = load_rules()
    lines = handout.ultra_short(rulebook)
    assert [(line.need, line.answer) for line in lines] == [
        ("Real-time UX", "streaming"),
        ("Two-way", "WebSockets"),
        ("One-way", "SSE"),
        ("Cost control", "API-level limits"),
        ("Governance", "OpenAPI first"),
        ("Amplify", "optional"),
    ]
    for line in lines:
        assert line.rule == " ".join(rulebook.rules[line.rule_id].rule.split())


def test_a_line_whose_rule_left_rules_yaml_fails_by_name():
    rulebook = load_rules()
    rules = {k: v for k, v in rulebook.rules.items() if k != "openapi-first"}
    with pytest.raises(KeyError, match="openapi-first"):
        handout.ultra_short(dataclasses.replace(rulebook, rules=rules))


def test_make_handout_writes_the_page(tmp_path):
    out = tmp_path / "handout.html"
    subprocess.run(
        [sys.executable, "-m", "quizzes.handout", "--out", str(out)],
        check=True,
        timeout=60,
        capture_output=True,
    )
    page = out.read_text(encoding="utf-8")
    for row in load_rules().decision_table.rows:
        assert row[0] in page
    assert "Cost control" in page and "API-level limits" in page


@needs_chromium
def test_the_handout_prints_on_one_page_and_shows_both_tables(page, tmp_path):
    out = tmp_path / "handout.html"
    handout.main(["--out", str(out)])
    page.goto(out.as_uri())
    assert page.locator("table.ultra-short tr").count() == 6
    rows = len(load_rules().decision_table.rows)
    assert page.locator("table.decision tbody tr").count() == rows
    screenshot(page, "handout")
    pdf = page.pdf(format="A4", prefer_css_page_size=True)
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf))
    assert pages == 1, f"the handout prints on {pages} pages"
    assert not page.console_errors
