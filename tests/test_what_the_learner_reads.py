"""Texts a learner works from: they must state what the checks hold them to, and render anywhere."""

from __future__ import annotations

import json
import re
from pathlib import Path

from course import envcheck

ROOT = Path(__file__).resolve().parent.parent


def test_lab_01_states_the_empty_data_line_rule_where_the_learner_reads_it():
    """The check is byte-exact: an empty line is `data: ` with its space, in the task and the
    docstring of the function to write."""
    cells = json.loads((ROOT / "notebooks/01_sse_wire_format.ipynb").read_text())["cells"]
    task = next(
        "".join(cell["source"])
        for cell in cells
        if "".join(cell["source"]).startswith("## Lab Task 1:")
    )
    assert "`data: `, not `data:`" in task
    source = (ROOT / "labs/sse.py").read_text()
    docstring = re.search(r'def data_lines\(.*?"""(.*?)"""', source, re.S).group(1)
    assert '"data: " + line' in docstring and '"data: "]' in docstring


def test_the_environment_table_reads_without_an_emoji_font():
    checks = [
        envcheck.Check(name="python", ok=True, detail="3.11", fix=""),
        envcheck.Check(name="widgets", ok=False, detail="missing", fix="make lab"),
    ]
    page = envcheck.report_html(checks)
    assert not re.search(r"&#(9989|10060|1[0-9]{5});|[\u2705\u274c\U0001F300-\U0001FAFF]", page)
    cells = re.findall(r"<tr[^>]*><td[^>]*>(\w+)</td>", page)
    assert cells == ["ok", "FIX"]
