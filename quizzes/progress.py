"""A learner's quiz progress in one JSON file, and the Leitner boxes that schedule review.

Widget state is lost when a notebook is reopened, so progress lives in a file the kernel
writes: `~/.realtime-genai-labs/quiz-progress.json`, or the path in `QUIZ_PROGRESS_FILE`.
Writes are atomic (a temporary file in the same directory, then `os.replace`), so a crash
mid-write leaves the previous file whole. A file that cannot be read is never overwritten: it
is kept beside the new one as `quiz-progress.json.corrupt-<timestamp>` with a warning.

Leitner boxes: every question sits in box 1 to 5. A miss sends it back to box 1, which is due
at once; a hit moves it up one box, and each box waits longer before the question is due again.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import warnings
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .engine import Report

PROGRESS_ENV = "QUIZ_PROGRESS_FILE"
DEFAULT_PROGRESS_FILE = Path("~/.realtime-genai-labs/quiz-progress.json")
FORMAT_VERSION = 1

# Days before a question in box n is due again.
BOX_INTERVAL_DAYS = {1: 0, 2: 1, 3: 3, 4: 7, 5: 14}
TOP_BOX = max(BOX_INTERVAL_DAYS)
SESSIONS_KEPT = 200  # the history of session summaries is for the learner, not an archive


class ProgressFileWarning(UserWarning):
    """The progress file could not be read; it was kept aside and a fresh one started."""


# Python shows a warning once per code location by default; a second corrupt file in the same
# kernel must still be reported, or the learner would lose progress silently.
warnings.simplefilter("always", ProgressFileWarning)


def progress_path(path: str | Path | None = None) -> Path:
    """The progress file: `path` if given, else $QUIZ_PROGRESS_FILE, else the default."""
    if path is None:
        path = os.environ.get(PROGRESS_ENV) or DEFAULT_PROGRESS_FILE
    return Path(path).expanduser()


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def _empty() -> dict:
    return {"version": FORMAT_VERSION, "questions": {}, "sessions": []}


def _problem_with(data: object) -> str | None:
    """Why a parsed progress file cannot be used, or None if it can."""
    if not isinstance(data, dict):
        return "not a JSON object"
    if data.get("version") != FORMAT_VERSION:
        return f"unknown format version {data.get('version')!r}"
    if not isinstance(data.get("questions"), dict) or not isinstance(data.get("sessions"), list):
        return "missing 'questions' or 'sessions'"
    for question_id, entry in data["questions"].items():
        if not _entry_is_valid(entry):
            return f"bad entry for question {question_id!r}"
    return None


def _entry_is_valid(entry: object) -> bool:
    if not isinstance(entry, dict) or entry.get("box") not in BOX_INTERVAL_DAYS:
        return False
    if not isinstance(entry.get("seen"), int) or not isinstance(entry.get("correct"), int):
        return False
    try:
        datetime.fromisoformat(entry["due"])
    except (KeyError, TypeError, ValueError):
        return False
    return True


def _set_aside(path: Path, reason: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    os.replace(path, aside)
    warnings.warn(
        f"Quiz progress file {path} could not be read ({reason}). It was kept as {aside} "
        f"and a fresh progress file was started.",
        ProgressFileWarning,
        stacklevel=3,
    )
    return aside


def _read(path: Path) -> dict:
    """The file's data; a fresh record if there is no file; a corrupt file is set aside."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return _empty()
    try:
        data = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        _set_aside(path, f"not valid JSON: {error}")
        return _empty()
    problem = _problem_with(data)
    if problem:
        _set_aside(path, problem)
        return _empty()
    return data


def _write_atomically(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2, sort_keys=True)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class Progress:
    """The progress file, read fresh before every change and saved right after it, so a
    notebook and a terminal quiz running side by side do not overwrite each other's answers."""

    def __init__(self, path: str | Path | None = None):
        self.path = progress_path(path)
        self.data = _read(self.path)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Progress:
        return cls(path)

    def _update(self, change) -> None:
        self.data = _read(self.path)
        change(self.data)
        _write_atomically(self.path, self.data)

    # --- reading ---

    def entry(self, question_id: str) -> dict | None:
        """What is known about one question: box, due, seen, correct, last_correct."""
        return self.data["questions"].get(question_id)

    def box(self, question_id: str) -> int | None:
        entry = self.entry(question_id)
        return entry["box"] if entry else None

    @property
    def sessions(self) -> list[dict]:
        return self.data["sessions"]

    def due_questions(
        self,
        now: datetime | None = None,
        question_ids: Iterable[str] | None = None,
        n: int | None = None,
        seed: int | None = None,
    ) -> list[str]:
        """Question ids to review at `now`: due questions first, the ones last missed before
        the ones last right, lower boxes first; then, if `question_ids` (the bank) is given,
        questions never seen yet, mixed (by `seed`) so they do not come file by file."""
        now = _utc(now)
        known = self.data["questions"]
        candidates = list(question_ids) if question_ids is not None else list(known)
        due = [
            qid
            for qid in candidates
            if qid in known and _utc(datetime.fromisoformat(known[qid]["due"])) <= now
        ]
        due.sort(
            key=lambda qid: (
                bool(known[qid].get("last_correct")),
                known[qid]["box"],
                _utc(datetime.fromisoformat(known[qid]["due"])),
            )
        )
        new = [qid for qid in candidates if qid not in known] if question_ids is not None else []
        random.Random(seed).shuffle(new)
        queue = due + new
        return queue[:n] if n is not None else queue

    # --- writing ---

    def record_answer(self, question_id: str, correct: bool, now: datetime | None = None) -> int:
        """Move a question between Leitner boxes and save. Returns its new box."""
        now = _utc(now)

        def change(data: dict) -> None:
            entry = data["questions"].setdefault(question_id, {"box": 1, "seen": 0, "correct": 0})
            entry["box"] = min(entry["box"] + 1, TOP_BOX) if correct else 1
            entry["seen"] += 1
            entry["correct"] += int(correct)
            entry["last_correct"] = bool(correct)
            entry["last_seen"] = now.isoformat()
            entry["due"] = (now + timedelta(days=BOX_INTERVAL_DAYS[entry["box"]])).isoformat()

        self._update(change)
        return self.data["questions"][question_id]["box"]

    def record_session(self, report: Report, now: datetime | None = None) -> None:
        """Keep a one-line summary of a finished session: the learner's history."""
        summary = {
            "mode": report.mode,
            "finished_at": _utc(now).isoformat(),
            "correct": report.overall.correct,
            "total": report.overall.total,
            "percent": report.overall.percent,
            "by_rule": {rule: [t.correct, t.total] for rule, t in report.by_rule.items()},
            "by_skill": {skill: [t.correct, t.total] for skill, t in report.by_skill.items()},
        }

        def change(data: dict) -> None:
            data["sessions"] = (data["sessions"] + [summary])[-SESSIONS_KEPT:]

        self._update(change)
