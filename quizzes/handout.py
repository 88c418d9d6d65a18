"""The printable one-page handout: the six-line cheat sheet and the SSE-or-WebSocket table.

Generated from rules.yaml, like the long cheat sheet (`quizzes/cheatsheet.py`), so a workshop
hands out exactly what the quizzes test. Each of the six lines names the rule it condenses; a
line whose rule disappears from rules.yaml fails loudly instead of printing a stale promise.

    python -m quizzes.handout --out build/handout.html      (or: make handout)
"""

from __future__ import annotations

import argparse
import html
import sys
from dataclasses import dataclass
from pathlib import Path

from .engine import Rulebook, load_rules

TITLE = "Real-time GenAI APIs on one page (AIP-C01)"

# (the need, the answer, the rule in rules.yaml it condenses): the whole course in six lines.
ULTRA_SHORT = (
    ("Real-time UX", "streaming", "stream-first"),
    ("Two-way", "WebSockets", "ws-for-two-way"),
    ("One-way", "SSE", "sse-for-one-way"),
    ("Cost control", "API-level limits", "limits-at-edge"),
    ("Governance", "OpenAPI first", "openapi-first"),
    ("Amplify", "optional", "amplify-optional"),
)


@dataclass(frozen=True)
class Line:
    need: str
    answer: str
    rule_id: str
    rule: str  # the rule's own sentence in rules.yaml
    hook: str  # its memory hook


def ultra_short(rulebook: Rulebook | None = None) -> list[Line]:
    """The six lines, each with the rule and hook it stands for. KeyError names a lost rule."""
    rulebook = rulebook or load_rules()
    lines = []
    for need, answer, rule_id in ULTRA_SHORT:
        if rule_id not in rulebook.rules:
            raise KeyError(
                f"the handout line {need!r} condenses rule {rule_id!r}, not in rules.yaml"
            )
        rule = rulebook.rules[rule_id]
        lines.append(Line(need, answer, rule_id, " ".join(rule.rule.split()), rule.hook))
    return lines


def ultra_short_markdown(rulebook: Rulebook | None = None) -> str:
    """The six lines as Markdown, for a notebook's last cell."""
    return "\n".join(f"- **{line.need}** → {line.answer}" for line in ultra_short(rulebook))


def render_html(rulebook: Rulebook | None = None) -> str:
    """A self-contained HTML page sized to print on one A4 or Letter sheet."""
    rulebook = rulebook or load_rules()
    rows = "".join(
        f"<tr><th>{html.escape(line.need)}</th><td class='answer'>{html.escape(line.answer)}</td>"
        f"<td><i>{html.escape(line.hook)}</i></td></tr>"
        for line in ultra_short(rulebook)
    )
    table = rulebook.decision_table
    head = "".join(f"<th>{html.escape(column)}</th>" for column in table.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<{'th' if i == 0 else 'td'}>{html.escape(cell)}</{'th' if i == 0 else 'td'}>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in table.rows
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(TITLE)}</title>
<style>
  @page {{ size: A4; margin: 12mm; }}
  body {{ font: 9.5pt/1.3 system-ui, sans-serif; color: #111; background: #fff;
         max-width: 186mm; margin: 0 auto; }}
  @media print {{ body {{ font-size: 9pt; margin: 0; }} }}
  h1 {{ font-size: 16pt; margin: 0 0 4mm; }}
  h2 {{ font-size: 12pt; margin: 5mm 0 2mm; }}
  table {{ border-collapse: collapse; width: 100%; }}
  th, td {{ border: 1px solid #999; padding: 1mm 2mm; text-align: left; vertical-align: top; }}
  thead th {{ background: #e8eef6; }}
  tbody th {{ background: #f4f4f4; white-space: nowrap; }}
  td.answer {{ font-weight: bold; font-size: 12pt; white-space: nowrap; color: #0b4f8a; }}
  i {{ color: #444; }}
  footer {{ margin-top: 4mm; font-size: 8.5pt; color: #444; }}
</style></head>
<body>
<h1>{html.escape(TITLE)}</h1>
<h2>The cheat sheet in six lines</h2>
<table class="ultra-short"><tbody>{rows}</tbody></table>
<h2>SSE or WebSocket?</h2>
<table class="decision"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<footer>Generated from quizzes/rules.yaml (make handout). The rules in full:
docs/cheatsheet.md and notebook 09.</footer>
</body></html>
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the printable one-page handout (HTML).")
    parser.add_argument("--out", type=Path, default=Path("build/handout.html"))
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render_html(), encoding="utf-8")
    print(f"wrote {args.out}: print it from a browser (one page)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
