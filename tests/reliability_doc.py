"""Write docs/reliability.md from the bad-input catalogue (tests/bad_input.py).

    .venv/bin/python tests/reliability_doc.py          # rewrite the page
    .venv/bin/python tests/reliability_doc.py --check  # exit 1 when the page is stale

`test_bad_input.py` fails when the page and the catalogue disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "docs" / "reliability.md"

INTRO = """\
# Reliability: what bad input gets

Bad input is the client's mistake, never the gateway's: every kind below is answered with a
structured error (an RFC 9457 problem object on HTTP, an `error` message on the WebSocket chat,
whose `problem` is the same object), with no stack trace, file path or internal name in it and
no traceback in the server's log, and the gateway stays healthy after it (the next stream is
answered, no slot stays taken). The codes are the catalogue in `reference_impl/errors.py`.

The JSON rules, the same for HTTP bodies and WebSocket messages
(`reference_impl/json_input.py`): no nesting deeper than 32 levels, no key twice in one object,
no `NaN` or `Infinity`, and no NUL or lone surrogate in any string (a lone surrogate cannot be
encoded as UTF-8). Other characters are text: control characters and right-to-left marks are
answered normally. On the chat a refused message gets its `error` before any `start`, and the
connection stays open unless a close code is given.

This page is generated from the table in `tests/bad_input.py`, which also drives
`tests/test_bad_input.py` (one test per row); run `python tests/reliability_doc.py` after
changing it. A row that ends with (server hardening) or (security) is answered so once the
gateway's change of that name is in.
"""


def render() -> str:
    if str(HERE) not in sys.path:  # run as a script: the catalogue sits beside this file
        sys.path.insert(0, str(HERE))
    from bad_input import CATALOGUE

    lines = [INTRO]
    for channel in ("HTTP", "WebSocket"):
        lines += [
            "",
            f"## {channel}",
            "",
            "| Kind | How it is sent | What it gets |",
            "|---|---|---|",
        ]
        for kind in CATALOGUE:
            if kind.channel == channel:
                answer = kind.expected.describe()
                if kind.owner:
                    answer += f" ({kind.owner})"
                how = kind.how.replace("|", "\\|")
                lines.append(f"| {kind.name} | {how} | {answer} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    page = render()
    if "--check" in argv:
        if PAGE.read_text(encoding="utf-8") != page:
            print(f"{PAGE} is stale: run python tests/reliability_doc.py")
            return 1
        return 0
    PAGE.write_text(page, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
