"""The course map (`course/labs.yaml`): lab number -> title, notebook, skills, time box."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

CATALOG_PATH = Path(__file__).with_name("labs.yaml")
ROOT = CATALOG_PATH.parent.parent
TASK_HEADING = re.compile(r"^## Lab Task (?P<task>\d+): (?P<title>.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Lab:
    number: str
    title: str
    notebook: str
    skills: tuple[str, ...]
    minutes: int


@cache
def labs() -> dict[str, Lab]:
    """Every lab in the course map, keyed by its two-digit number ("01")."""
    raw = yaml.safe_load(CATALOG_PATH.read_text(encoding="utf-8"))["labs"]
    return {
        str(number): Lab(
            number=str(number),
            title=entry["title"],
            notebook=entry["notebook"],
            skills=tuple(entry["skills"]),
            minutes=int(entry["minutes"]),
        )
        for number, entry in raw.items()
    }


def normalise(number: str | int) -> str:
    """Accept 4, "4" or "04" and return "04"; reject numbers that are not in the course map."""
    text = str(number).strip()
    if not text.isdigit():
        raise ValueError(f"lab number must be digits, got {number!r}")
    key = f"{int(text):02d}"
    if key not in labs():
        raise ValueError(f"there is no lab {key}; the course has labs {', '.join(labs())}")
    return key


@cache
def tasks(number: str) -> dict[int, str]:
    """Lab `number`'s tasks as its notebook names them ("## Lab Task 2: ..."): task -> title."""
    path = ROOT / labs()[number].notebook
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return {}
    text = "\n".join("".join(c["source"]) for c in cells if c.get("cell_type") == "markdown")
    return {int(found["task"]): found["title"] for found in TASK_HEADING.finditer(text)}
