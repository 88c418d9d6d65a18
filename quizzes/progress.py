"""A learner's quiz progress in one JSON file, and the spaced review that schedules it.

Widget state is lost when a notebook is reopened, so progress lives in a file the kernel
writes: `~/.realtime-genai-labs/quiz-progress.json`, or the path in `QUIZ_PROGRESS_FILE`.
Writes are atomic (a temporary file in the same directory, then `os.replace`), so a crash
mid-write leaves the previous file whole. A file that cannot be read is never overwritten: it
is kept beside the new one as `quiz-progress.json.corrupt-<timestamp>` with a warning.

Spaced review is FSRS (the `fsrs` package): each question is a card whose stability grows with
every right answer, so it comes back later each time; a miss makes it due again at once. The
first format of this file (version 1) kept hand-made Leitner boxes; it is converted when read,
its counts and session history kept, and the old file is kept beside the new one as
`quiz-progress.json.v1-backup-<timestamp>`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import warnings
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fsrs import Card, Rating, Scheduler, State

from .engine import Report

PROGRESS_ENV = "QUIZ_PROGRESS_FILE"
DEFAULT_PROGRESS_FILE = Path("~/.realtime-genai-labs/quiz-progress.json")
FORMAT_VERSION = 2
LEITNER_VERSION = 1  # the first format: Leitner boxes, converted when read

# The Leitner boxes of format 1: days before a question in box n was due again.
BOX_INTERVAL_DAYS = {1: 0, 2: 1, 3: 3, 4: 7, 5: 14}

# FSRS with one learning step of zero: a question missed (or new and missed) is due again at
# once, as in the quiz's review queue; a question answered right moves to days-long intervals
# straight away (a quiz is not a card deck drilled within minutes). No fuzzing: the same answers
# give the same schedule, so a learner (and a test) can predict it.
SCHEDULER = Scheduler(
    learning_steps=(timedelta(0),),
    relearning_steps=(timedelta(0),),
    enable_fuzzing=False,
)
# FSRS's middle difficulty (1 to 10) for questions converted from Leitner boxes: nothing better is
# known about them.
CONVERTED_DIFFICULTY = 5.0
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


def _problem_with(data: object, version: int = FORMAT_VERSION) -> str | None:
    """Why a parsed progress file cannot be used as format `version`, or None if it can."""
    if not isinstance(data, dict):
        return "not a JSON object"
    if data.get("version") != version:
        return f"unknown format version {data.get('version')!r}"
    if not isinstance(data.get("questions"), dict) or not isinstance(data.get("sessions"), list):
        return "missing 'questions' or 'sessions'"
    valid = _entry_is_valid if version == FORMAT_VERSION else _leitner_entry_is_valid
    for question_id, entry in data["questions"].items():
        if not valid(entry):
            return f"bad entry for question {question_id!r}"
    return None


def _counts_are_valid(entry: dict) -> bool:
    return isinstance(entry.get("seen"), int) and isinstance(entry.get("correct"), int)


def _entry_is_valid(entry: object) -> bool:
    if not isinstance(entry, dict) or not _counts_are_valid(entry):
        return False
    try:
        Card.from_dict(entry["card"])
    except (KeyError, TypeError, ValueError):
        return False
    return True


def _leitner_entry_is_valid(entry: object) -> bool:
    if not isinstance(entry, dict) or entry.get("box") not in BOX_INTERVAL_DAYS:
        return False
    if not _counts_are_valid(entry):
        return False
    try:
        datetime.fromisoformat(entry["due"])
    except (KeyError, TypeError, ValueError):
        return False
    return True


def _card_id(question_id: str) -> int:
    """A stable card id per question (FSRS would otherwise use the creation time)."""
    return zlib.crc32(question_id.encode("utf-8"))


def _card_from_box(question_id: str, entry: dict) -> Card:
    """A Leitner entry as an FSRS card, due when it was due. A question that waited n days in
    its box gets a stability of n days: at FSRS's 90 % desired retention the next interval is
    about the stability, so the schedule carries on where the boxes left it."""
    due = _utc(datetime.fromisoformat(entry["due"]))
    last_seen = entry.get("last_seen")
    last_review = _utc(datetime.fromisoformat(last_seen)) if last_seen else None
    if entry["box"] == 1:  # missed last time: learning again from the first step
        return Card(card_id=_card_id(question_id), due=due, last_review=last_review)
    return Card(
        card_id=_card_id(question_id),
        state=State.Review,
        stability=float(BOX_INTERVAL_DAYS[entry["box"]]),
        difficulty=CONVERTED_DIFFICULTY,
        due=due,
        last_review=last_review,
    )


def _from_leitner(data: dict) -> dict:
    """Format 1 -> format 2: every count, every session kept; boxes become FSRS cards."""
    questions = {}
    for question_id, entry in data["questions"].items():
        converted = {key: value for key, value in entry.items() if key not in ("box", "due")}
        converted["card"] = _card_from_box(question_id, entry).to_dict()
        converted["leitner_box"] = entry["box"]  # kept for the record
        questions[question_id] = converted
    return {"version": FORMAT_VERSION, "questions": questions, "sessions": data["sessions"]}


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
    if isinstance(data, dict) and data.get("version") == LEITNER_VERSION:
        problem = _problem_with(data, LEITNER_VERSION)
        if not problem:
            return _convert_file(path, data)
    else:
        problem = _problem_with(data)
    if problem:
        _set_aside(path, problem)
        return _empty()
    return data


def _convert_file(path: Path, data: dict) -> dict:
    """Convert a format-1 file in place, after copying it aside: the learner's old file is never
    lost. If the disk refuses, the converted data is used for this run and conversion is tried
    again next time."""
    converted = _from_leitner(data)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    backup = path.with_name(f"{path.name}.v1-backup-{stamp}")
    try:
        shutil.copy2(path, backup)
        converted["converted_from"] = {"version": LEITNER_VERSION, "backup": backup.name}
        _write_atomically(path, converted)
    except OSError:
        pass
    return converted


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
        """What is known about one question: card (FSRS), seen, correct, last_correct,
        last_seen."""
        return self.data["questions"].get(question_id)

    def last_correct(self, question_id: str) -> bool | None:
        """Whether the last answer to the question was right; None if it was never answered."""
        entry = self.entry(question_id)
        return entry.get("last_correct") if entry else None

    def card(self, question_id: str) -> Card | None:
        entry = self.entry(question_id)
        return Card.from_dict(entry["card"]) if entry else None

    def due(self, question_id: str) -> datetime | None:
        """When the question is due for review again; None if it was never answered."""
        card = self.card(question_id)
        return _utc(card.due) if card else None

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
        the ones last right, the least stable first; then, if `question_ids` (the bank) is
        given, questions never seen yet, mixed (by `seed`) so they do not come file by file."""
        now = _utc(now)
        known = self.data["questions"]
        candidates = list(question_ids) if question_ids is not None else list(known)
        cards = {qid: Card.from_dict(known[qid]["card"]) for qid in candidates if qid in known}
        due = [qid for qid, card in cards.items() if _utc(card.due) <= now]
        due.sort(
            key=lambda qid: (
                bool(known[qid].get("last_correct")),
                cards[qid].stability or 0.0,
                _utc(cards[qid].due),
            )
        )
        new = [qid for qid in candidates if qid not in known] if question_ids is not None else []
        random.Random(seed).shuffle(new)
        queue = due + new
        return queue[:n] if n is not None else queue

    def rotation(
        self,
        question_ids: Iterable[str],
        n: int,
        now: datetime | None = None,
        seed: int | None = None,
    ) -> list[str]:
        """`n` of `question_ids` for a short quiz that moves through all of them over time:
        due ones first (missed first), then never seen ones, then those due soonest. Answering
        pushes a question back, so the next quiz shows others."""
        candidates = list(question_ids)
        queue = self.due_questions(now, question_ids=candidates, seed=seed)
        if len(queue) < n:
            known = self.data["questions"]
            later = [qid for qid in candidates if qid not in queue]
            later.sort(key=lambda qid: Card.from_dict(known[qid]["card"]).due)
            queue += later
        return queue[:n]

    # --- writing ---

    def record_answer(
        self, question_id: str, correct: bool, now: datetime | None = None
    ) -> datetime:
        """Review the question's card (right: Good, wrong: Again) and save. Returns when it is
        due next."""
        now = _utc(now).astimezone(UTC)

        def change(data: dict) -> None:
            entry = data["questions"].setdefault(question_id, {"seen": 0, "correct": 0})
            if "card" in entry:
                card = Card.from_dict(entry["card"])
            else:
                card = Card(card_id=_card_id(question_id), due=now)
            rating = Rating.Good if correct else Rating.Again
            card, _ = SCHEDULER.review_card(card, rating, review_datetime=now)
            entry["card"] = card.to_dict()
            entry["seen"] += 1
            entry["correct"] += int(correct)
            entry["last_correct"] = bool(correct)
            entry["last_seen"] = now.isoformat()

        self._update(change)
        return self.due(question_id)

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
