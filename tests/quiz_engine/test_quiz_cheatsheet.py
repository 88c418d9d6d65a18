"""The cheat sheet is a pure function of rules.yaml, in Markdown and in HTML."""

from __future__ import annotations

import yaml

from quizzes import engine
from quizzes.cheatsheet import cheatsheet_html, render_markdown, write_markdown


def test_markdown_groups_rules_traps_facts_and_the_decision_table(fixture_root):
    text = render_markdown(fixture_root)
    rules, rest = text.split("## Traps the exam baits")
    traps, rest = rest.split("## AWS facts")
    facts, table = rest.split("## SSE or WebSocket?")
    assert "- **stream-first**: Stream tokens as they come;" in rules
    assert "(nb 03, lab 03)" in rules
    assert "Trap: let the model handle timeouts." in traps
    assert "Stream tokens" not in traps
    assert "- **ws-idle-timeout**: An API Gateway" in facts
    assert "idle for 10 minutes is closed. [apigw-ws-quotas] (nb 07)" in facts
    assert "Ten quiet minutes" not in text, "hooks are for flashcards, the sheet stays short"
    assert "| Need | SSE | WebSocket |\n|---|---|---|\n| Direction |" in table


def test_markdown_is_the_same_from_every_kind_of_input(fixture_root, fixture_bank):
    document = yaml.safe_load((fixture_root / "rules.yaml").read_text())
    expected = render_markdown(fixture_root)
    assert render_markdown(fixture_bank) == expected
    assert render_markdown(fixture_bank.rulebook) == expected
    assert render_markdown(document) == expected
    assert render_markdown(engine.load_rules(fixture_root)) == expected


def test_table_cells_escape_pipes(fixture_root):
    document = yaml.safe_load((fixture_root / "rules.yaml").read_text())
    document["decision_table"]["rows"].append(["Auth", "header | cookie", "on $connect"])
    assert "| Auth | header \\| cookie | on $connect |" in render_markdown(document)


def test_write_markdown_reports_whether_the_file_changed(fixture_root, tmp_path):
    out = tmp_path / "cheatsheet.md"
    assert write_markdown(out, engine.load_rules(fixture_root)) is True
    assert write_markdown(out, engine.load_rules(fixture_root)) is False
    assert out.read_text() == render_markdown(fixture_root)


def test_html_version_escapes_text_and_has_the_table(fixture_root):
    document = yaml.safe_load((fixture_root / "rules.yaml").read_text())
    document["rules"][0]["rule"] = "Send <event> lines & flush."
    page = cheatsheet_html(document)
    assert "Send &lt;event&gt; lines &amp; flush." in page
    assert "<th>SSE</th>" in page and "<td>two-way</td>" in page
    assert "[apigw-ws-quotas]" in page
