"""The markers of a lab task, in the solutions and in the learner's copy.

`tools/make_labs.py` cuts each `# BEGIN SOLUTION labNN: title` ... `# END SOLUTION` region of
`reference_impl/` into a `# BEGIN LAB NN: title` ... `# END LAB NN` block of `labs/`. Live cells
(`course.live`) pair the two again, so the markers are defined once, here.
"""

from __future__ import annotations

import re

BEGIN_SOLUTION = re.compile(
    r"^(?P<indent>[ \t]*)# BEGIN SOLUTION lab(?P<lab>\d{2}): (?P<title>\S.*?)\s*$"
)
END_SOLUTION = re.compile(r"^[ \t]*# END SOLUTION\s*$")
BEGIN_LAB = re.compile(r"^[ \t]*# BEGIN LAB (?P<lab>\d{2}):\s*(?P<title>.*?)\s*$")
END_LAB = re.compile(r"^[ \t]*# END LAB (?P<lab>\d{2})\s*$")


def spans(lines: list[str], begin: re.Pattern[str], end: re.Pattern[str]) -> list[dict]:
    """Each region in `lines`: its lab, title and the 1-based line numbers of its two markers."""
    found, open_region = [], None
    for number, line in enumerate(lines, start=1):
        opened = begin.match(line)
        if opened:
            open_region = {"lab": opened["lab"], "title": opened["title"], "begin": number}
            continue
        if open_region and end.match(line):
            found.append({**open_region, "end": number})
            open_region = None
    return found
