"""The one-page cheat sheet, generated from rules.yaml so it never drifts from the quizzes.

`render_markdown` writes docs/cheatsheet.md (`make cheatsheet`); a test compares that file with
a fresh rendering. `cheatsheet_html` shows the same page inside a notebook. The output depends
only on rules.yaml (no dates, no paths), so regenerating an unchanged file changes nothing.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

from .engine import Bank, Rule, Rulebook, load_rules, rulebook_from_document

TITLE = "Cheat sheet: real-time GenAI APIs (AIP-C01)"
GENERATED_NOTE = "Generated from quizzes/rules.yaml by `make cheatsheet`. Do not edit by hand."

# (kind, heading) in the order the page shows them.
SECTIONS = (
    ("rule", "Rules"),
    ("trap", "Traps the exam baits"),
    ("fact", "AWS facts (with their sources in docs/sources.md)"),
)
DECISION_HEADING = "SSE or WebSocket?"


def _rulebook(rules: Rulebook | Bank | Mapping | str | Path | None) -> Rulebook:
    """Accept what a caller is likely to hold: nothing (the package's rules.yaml), a Rulebook,
    a Bank, a parsed rules.yaml document, or the directory holding rules.yaml."""
    if rules is None or isinstance(rules, str | Path):
        return load_rules(rules)
    if isinstance(rules, Rulebook):
        return rules
    if isinstance(rules, Bank):
        return rules.rulebook
    if isinstance(rules, Mapping):
        return rulebook_from_document(dict(rules))
    raise TypeError(f"cannot make a cheat sheet from {type(rules).__name__}")


def _by_kind(rulebook: Rulebook, kind: str) -> list[Rule]:
    return [rule for rule in rulebook.rules.values() if rule.kind == kind]


def _where(rule: Rule) -> str:
    lab = f", lab {rule.lab}" if rule.lab else ""
    return f"nb {rule.notebook}{lab}"


def _md_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _md_line(rule: Rule) -> str:
    # The rule id in bold is the handle the quiz reports use ("stream-first: 1 / 3").
    text = " ".join(rule.rule.split())
    sources = "".join(f" [{source}]" for source in rule.sources) if rule.kind == "fact" else ""
    return f"- **{rule.id}**: {text}{sources} ({_where(rule)})"


def render_markdown(rules: Rulebook | Bank | Mapping | str | Path | None = None) -> str:
    """The cheat sheet as Markdown: the rules, the traps, the AWS facts with their source ids,
    and the SSE-vs-WebSocket decision table. (The memory hooks live in the flashcards.)"""
    rulebook = _rulebook(rules)
    lines = [f"# {TITLE}", "", f"<!-- {GENERATED_NOTE} -->", ""]
    for kind, heading in SECTIONS:
        entries = _by_kind(rulebook, kind)
        if entries:
            lines += [f"## {heading}", "", *(_md_line(rule) for rule in entries), ""]
    table = rulebook.decision_table
    lines += [f"## {DECISION_HEADING}", ""]
    lines.append("| " + " | ".join(_md_cell(c) for c in table.columns) + " |")
    lines.append("|" + "---|" * len(table.columns))
    for row in table.rows:
        lines.append("| " + " | ".join(_md_cell(cell) for cell in row) + " |")
    return "\n".join(lines) + "\n"


def _html_item(rule: Rule) -> str:
    text = html.escape(" ".join(rule.rule.split()))
    sources = "".join(f" [{source}]" for source in rule.sources) if rule.kind == "fact" else ""
    return (
        f"<li><b>{html.escape(rule.id)}</b>: {text}{html.escape(sources)} "
        f"<small>({html.escape(_where(rule))})</small></li>"
    )


def cheatsheet_html(rules: Rulebook | Bank | Mapping | str | Path | None = None) -> str:
    """The same page as HTML, for `IPython.display.HTML` or an ipywidgets.HTML in a notebook."""
    rulebook = _rulebook(rules)
    parts = [f"<h2>{html.escape(TITLE)}</h2>"]
    for kind, heading in SECTIONS:
        entries = _by_kind(rulebook, kind)
        if entries:
            items = "".join(_html_item(rule) for rule in entries)
            parts.append(f"<h3>{html.escape(heading)}</h3><ul>{items}</ul>")
    table = rulebook.decision_table
    head = "".join(f"<th>{html.escape(column)}</th>" for column in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in table.rows
    )
    parts.append(
        f"<h3>{html.escape(DECISION_HEADING)}</h3>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )
    return "\n".join(parts)


def write_markdown(out: str | Path, rules: Rulebook | Bank | Mapping | None = None) -> bool:
    """Write the Markdown cheat sheet to `out`; returns True if the file changed."""
    out = Path(out)
    text = render_markdown(rules)
    if out.exists() and out.read_text(encoding="utf-8") == text:
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return True
