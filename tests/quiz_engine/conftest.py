"""Fixtures for the quiz engine tests: a small fixed bank, a bank copy to break, a progress file
in a temporary directory, and a clock the tests move by hand."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from quizzes import engine

FIXTURE_ROOT = Path(__file__).parent / "fixtures"
# Every question type and both sets; the main fixture bank stays single and multiple only.
KINDS_ROOT = FIXTURE_ROOT / "kinds"
REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    """Monotonic seconds that only move when a test says so: exam deadlines without sleeping."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class AnswerKey:
    """Answers computed from a shuffled question, never hard-coded: the tests stay right when
    the shuffle or the bank changes."""

    @staticmethod
    def right(item) -> tuple[int, ...]:
        return item.correct_response

    @staticmethod
    def wrong(item) -> tuple[int, ...]:
        """A complete but wrong answer: as many options as asked for, not all correct; for
        ordering and matching the right response turned by one place."""
        if not item.question.is_choice:
            right = item.correct_response
            return right[1:] + right[:1]
        wrong = [i for i in range(len(item.options)) if i not in item.correct]
        if item.question.is_multiple:
            return tuple(sorted(item.correct)[1:]) + (wrong[0],)
        return (wrong[0],)

    @staticmethod
    def typed(positions) -> str:
        """Shown positions (0-based) as a learner types them in the terminal: "1,3"."""
        return ",".join(str(i + 1) for i in sorted(positions))

    @staticmethod
    def typed_right(item) -> str:
        """The right answer to any question type as typed in the terminal."""
        return engine.typed_response(item, item.correct_response)


@pytest.fixture
def key() -> AnswerKey:
    return AnswerKey()


@pytest.fixture(autouse=True)
def progress_file(tmp_path, monkeypatch) -> Path:
    """Every quiz test writes progress under tmp_path, never in the learner's home."""
    path = tmp_path / "progress" / "quiz-progress.json"
    monkeypatch.setenv("QUIZ_PROGRESS_FILE", str(path))
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def fixture_root() -> Path:
    return FIXTURE_ROOT


@pytest.fixture
def fixture_bank() -> engine.Bank:
    return engine.load_bank(FIXTURE_ROOT)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class EditableBank:
    """A copy of the fixture bank in tmp_path, with helpers to break one entry."""

    def __init__(self, root: Path):
        self.root = root

    def read(self, name: str) -> dict:
        return yaml.safe_load((self.root / name).read_text(encoding="utf-8"))

    def write(self, name: str, document: dict) -> None:
        (self.root / name).write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")

    def edit_question(self, name: str, question_id: str, change) -> None:
        document = self.read(name)
        (question,) = [q for q in document["questions"] if q["id"] == question_id]
        change(question)
        self.write(name, document)

    def load(self) -> engine.Bank:
        return engine.load_bank(self.root)


@pytest.fixture
def editable_bank(tmp_path) -> EditableBank:
    root = tmp_path / "quizzes"
    shutil.copytree(FIXTURE_ROOT, root)
    return EditableBank(root)


@pytest.fixture(scope="session")
def kinds_root() -> Path:
    return KINDS_ROOT


@pytest.fixture
def kinds_bank() -> engine.Bank:
    return engine.load_bank(KINDS_ROOT)


@pytest.fixture
def editable_kinds(tmp_path) -> EditableBank:
    root = tmp_path / "quizzes"
    shutil.copytree(KINDS_ROOT, root)
    return EditableBank(root)
