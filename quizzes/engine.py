"""The quiz engine: load the bank, pick questions, shuffle options, grade, report.

Plain Python with no widgets, so the notebook widgets (`widgets.py`), the terminal (`cli.py`)
and the tests all run the same logic. Read it top to bottom: data, loading, selection,
shuffling and grading, sessions, reports.
"""

from __future__ import annotations

import difflib
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import schema
from .schema import BankError

PACKAGE_DIR = Path(__file__).resolve().parent

PRACTICE = "practice"
EXAM = "exam"
REVIEW = "review"


# --- Data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One entry of rules.yaml: a decision rule, an exam trap or a sourced AWS fact."""

    id: str
    kind: str  # rule | trap | fact
    rule: str
    why: str
    skills: tuple[str, ...]
    notebook: str
    lab: str | None
    hook: str
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class DecisionTable:
    """The SSE-vs-WebSocket table of the cheat sheet."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, eq=False)
class Rulebook:
    """rules.yaml, validated: the rules by id (in file order) and the decision table."""

    rules: dict[str, Rule]
    decision_table: DecisionTable
    path: str


@dataclass(frozen=True)
class Option:
    text: str
    correct: bool
    feedback: str


@dataclass(frozen=True)
class Question:
    """One question as written in the bank, options in their authored order."""

    id: str
    type: str  # single | multiple
    choose: int
    stem: str
    options: tuple[Option, ...]
    explanation: str
    rules: tuple[str, ...]
    skills: tuple[str, ...]
    sources: tuple[str, ...]
    notebook: str
    exhibit: str | None
    file: str

    @property
    def is_multiple(self) -> bool:
        return self.type == "multiple"


# --- Loading ---------------------------------------------------------------------------------


def _shown_path(path: Path, root: Path) -> str:
    """The path as a learner or author sees it in an error: quizzes/bank/limits.yaml."""
    return f"{root.name}/{path.relative_to(root).as_posix()}"


def _read_yaml(path: Path, shown: str) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise BankError([f"{shown}: cannot read the file: {error}"]) from error
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise BankError([f"{shown}: not valid YAML: {error}"]) from error
    if document is None:
        raise BankError([f"{shown}: the file is empty"])
    return document


def load_rules(root: str | Path | None = None) -> Rulebook:
    """Read and validate `rules.yaml` under `root` (default: the quizzes package)."""
    root = Path(root) if root is not None else PACKAGE_DIR
    path = root / "rules.yaml"
    shown = _shown_path(path, root)
    return rulebook_from_document(_read_yaml(path, shown), shown)


def rulebook_from_document(document: object, shown: str = "rules.yaml") -> Rulebook:
    """Validate a parsed rules.yaml (`shown` names it in errors) and build the Rulebook."""
    schema.check_rules_file(document, shown)
    rules = {
        entry["id"]: Rule(
            id=entry["id"],
            kind=entry["kind"],
            rule=entry["rule"].strip(),
            why=entry["why"].strip(),
            skills=tuple(entry["skills"]),
            notebook=entry["notebook"],
            lab=entry.get("lab"),
            hook=entry["hook"].strip(),
            sources=tuple(entry.get("sources", ())),
        )
        for entry in document["rules"]
    }
    table = document["decision_table"]
    decision_table = DecisionTable(
        columns=tuple(table["columns"]), rows=tuple(tuple(row) for row in table["rows"])
    )
    return Rulebook(rules=rules, decision_table=decision_table, path=shown)


def _question(entry: dict, rulebook: Rulebook, shown: str) -> Question:
    return Question(
        id=entry["id"],
        type=entry["type"],
        choose=entry["choose"],
        stem=entry["stem"].strip(),
        options=tuple(
            Option(text=o["text"].strip(), correct=o["correct"], feedback=o["feedback"].strip())
            for o in entry["options"]
        ),
        explanation=entry["explanation"].strip(),
        rules=tuple(entry["rules"]),
        skills=tuple(entry["skills"]),
        sources=tuple(entry.get("sources", ())),
        # SCHEMA.md: a question belongs to its first rule's notebook unless it says otherwise.
        notebook=entry.get("notebook") or rulebook.rules[entry["rules"][0]].notebook,
        exhibit=entry["exhibit"].rstrip() if entry.get("exhibit") else None,
        file=shown,
    )


def load_bank(root: str | Path | None = None) -> Bank:
    """Read `rules.yaml` and every `bank/*.yaml` under `root` (default: the quizzes package),
    validate them, and return the Bank. Raises BankError listing every problem found, each
    naming its file and question id."""
    root = Path(root) if root is not None else PACKAGE_DIR
    rulebook = load_rules(root)
    paths = sorted((root / "bank").glob("*.yaml"))
    if not paths:
        raise BankError([f"{root.name}/bank: no question files (*.yaml)"])
    documents: dict[str, dict] = {}
    problems: list[str] = []
    for path in paths:  # check every file before failing, so an author sees all problems at once
        shown = _shown_path(path, root)
        try:
            document = _read_yaml(path, shown)
            schema.check_bank_file(document, shown)
        except BankError as error:
            problems.extend(error.problems)
            continue
        documents[shown] = document
    if problems:
        raise BankError(problems)
    schema.check_bank(documents, rulebook.rules)
    questions = tuple(
        _question(entry, rulebook, shown)
        for shown, document in documents.items()
        for entry in document["questions"]
    )
    return Bank(rulebook=rulebook, questions=questions)


# --- Selection -------------------------------------------------------------------------------


class NoQuestionsError(ValueError):
    """A selection matched no question: a typo in a rule id, or a notebook with no quiz."""


def unknown_name_message(what: str, value: str, known: Iterable[str]) -> str:
    """'No rule 'strem-first' in the quiz bank. Did you mean 'stream-first'?'"""
    close = difflib.get_close_matches(value, list(known), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"No {what} {value!r} in the quiz bank.{hint}"


def normalise_notebook(notebook: str | int) -> str:
    """'03' for 3, "3" or "03": notebooks are named by two digits."""
    text = str(notebook).strip()
    return text.zfill(2) if text.isdigit() else text


def _skill_matches(wanted: str, skills: Sequence[str]) -> bool:
    # "2.4" selects every 2.4.x skill; "2.4.2" selects only that one.
    return any(skill == wanted or skill.startswith(wanted + ".") for skill in skills)


@dataclass(frozen=True, eq=False)
class Bank:
    """The validated rules and questions."""

    rulebook: Rulebook
    questions: tuple[Question, ...]

    @property
    def rules(self) -> dict[str, Rule]:
        return self.rulebook.rules

    @property
    def decision_table(self) -> DecisionTable:
        return self.rulebook.decision_table

    @property
    def question_ids(self) -> list[str]:
        return [question.id for question in self.questions]

    def question(self, question_id: str) -> Question:
        for question in self.questions:
            if question.id == question_id:
                return question
        raise KeyError(unknown_name_message("question", question_id, self.question_ids))

    def questions_per_rule(self) -> dict[str, int]:
        """How many questions name each rule: the coverage an author should keep up."""
        counts = dict.fromkeys(self.rules, 0)
        for question in self.questions:
            for rule_id in question.rules:
                counts[rule_id] += 1
        return counts

    def filter(
        self,
        rule: str | None = None,
        skill: str | None = None,
        notebook: str | int | None = None,
    ) -> list[Question]:
        """Questions matching every filter given, in bank order. A rule or notebook that does
        not exist is a ValueError (a typo should not look like an empty quiz)."""
        if rule is not None and rule not in self.rules:
            raise ValueError(unknown_name_message("rule", rule, self.rules))
        if notebook is not None:
            notebook = normalise_notebook(notebook)
            if notebook not in schema.NOTEBOOKS:
                raise ValueError(unknown_name_message("notebook", notebook, schema.NOTEBOOKS))
        return [
            question
            for question in self.questions
            if (rule is None or rule in question.rules)
            and (skill is None or _skill_matches(skill, question.skills))
            and (notebook is None or question.notebook == notebook)
        ]

    def select(
        self,
        rule: str | None = None,
        skill: str | None = None,
        notebook: str | int | None = None,
        n: int | None = None,
        seed: int | None = None,
        rng: random.Random | None = None,
    ) -> list[Question]:
        """Matching questions in random order, at most `n` of them. The same seed gives the
        same questions in the same order."""
        picked = self.filter(rule=rule, skill=skill, notebook=notebook)
        if not picked:
            asked = ", ".join(
                f"{name}={value!r}"
                for name, value in (("rule", rule), ("skill", skill), ("notebook", notebook))
                if value is not None
            )
            known = sorted({s for q in self.questions for s in q.skills})
            hint = f" Skills in the bank: {', '.join(known)}." if skill is not None else ""
            raise NoQuestionsError(f"No questions match {asked}.{hint}")
        rng = rng or random.Random(seed)
        rng.shuffle(picked)
        return picked[:n] if n is not None else picked


# --- Shuffling and grading -------------------------------------------------------------------


@dataclass(frozen=True)
class ShuffledQuestion:
    """A question as shown: options in shuffled order. `order[i]` is the authored index of the
    option shown at position i, so grading follows the shuffle."""

    question: Question
    order: tuple[int, ...]

    @property
    def options(self) -> tuple[Option, ...]:
        return tuple(self.question.options[i] for i in self.order)

    @property
    def correct(self) -> frozenset[int]:
        """The shown positions (0-based) of the correct options."""
        return frozenset(i for i, option in enumerate(self.options) if option.correct)

    def grade(self, chosen: Iterable[int]) -> bool:
        """All or nothing, as on the exam: a multiple-response answer scores only when exactly
        the correct options are chosen."""
        return frozenset(chosen) == self.correct

    def selection_problem(self, chosen: Iterable[int]) -> str | None:
        """Why `chosen` (0-based positions) is not a complete answer yet, or None. Both front
        ends ask this before submitting, so learners get the same message everywhere."""
        chosen = list(chosen)
        count = len(self.options)
        outside = [i for i in chosen if not 0 <= i < count]
        if outside:
            return f"There is no option {outside[0] + 1}: the options are numbered 1 to {count}."
        if len(set(chosen)) != len(chosen):
            return "Each option can be chosen only once."
        wanted = self.question.choose
        if len(chosen) == wanted:
            return None
        if wanted == 1:
            return "Choose one option." if not chosen else "Choose exactly one option."
        return f"Choose exactly {schema.choose_phrase(wanted)} options (you chose {len(chosen)})."


def shuffle_options(question: Question, rng: random.Random) -> ShuffledQuestion:
    order = list(range(len(question.options)))
    rng.shuffle(order)
    return ShuffledQuestion(question=question, order=tuple(order))


# --- Sessions --------------------------------------------------------------------------------


class TimeUpError(RuntimeError):
    """An exam answer arrived after the deadline. It was not recorded."""


@dataclass(frozen=True)
class Answer:
    question_id: str
    chosen: frozenset[int]  # shown positions, 0-based
    correct: bool


class Session:
    """One attempt at a list of shuffled questions, answered in order.

    Practice and review give feedback after each answer. An exam has a deadline (`minutes`
    from the start, read from `clock`, injectable for tests): an answer after it is refused
    with TimeUpError, and unanswered questions count as wrong.
    """

    def __init__(
        self,
        items: Sequence[ShuffledQuestion],
        mode: str = PRACTICE,
        minutes: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if mode not in (PRACTICE, EXAM, REVIEW):
            raise ValueError(f"mode must be {PRACTICE}, {EXAM} or {REVIEW}, not {mode!r}")
        self.items = list(items)
        self.mode = mode
        self.clock = clock
        self.deadline = clock() + minutes * 60 if minutes is not None else None
        self.answers: dict[int, Answer] = {}  # item position -> answer
        self.position = 0
        self.finished = False

    @property
    def shows_feedback(self) -> bool:
        """On the exam nothing tells you whether you were right until the end."""
        return self.mode != EXAM

    @property
    def current(self) -> ShuffledQuestion | None:
        if self.finished or self.position >= len(self.items):
            return None
        return self.items[self.position]

    def seconds_left(self) -> float | None:
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - self.clock())

    def time_up(self) -> bool:
        return self.deadline is not None and self.clock() >= self.deadline

    def submit(self, chosen: Iterable[int]) -> Answer:
        """Grade and record an answer (0-based shown positions) to the current question."""
        item = self.current
        if item is None:
            raise RuntimeError("The session is over: there is no question to answer.")
        if self.time_up():
            self.finished = True
            raise TimeUpError("Time is up: the answer arrived after the deadline.")
        if self.position in self.answers:
            raise RuntimeError(f"Question {item.question.id} is already answered.")
        chosen = frozenset(chosen)
        if any(not 0 <= i < len(item.options) for i in chosen):
            raise ValueError(item.selection_problem(chosen))
        answer = Answer(question_id=item.question.id, chosen=chosen, correct=item.grade(chosen))
        self.answers[self.position] = answer
        return answer

    def next(self) -> ShuffledQuestion | None:
        """Move on; returns the next question, or None when the session has ended."""
        if self.time_up():
            self.finished = True
        if not self.finished:
            self.position += 1
            if self.position >= len(self.items):
                self.finished = True
        return self.current

    def finish(self) -> Report:
        self.finished = True
        return self.report()

    def report(self) -> Report:
        return build_report(self)


def practice_session(
    bank: Bank,
    rule: str | None = None,
    skill: str | None = None,
    notebook: str | int | None = None,
    n: int | None = None,
    seed: int | None = None,
) -> Session:
    """Questions matching the filters, shuffled; feedback after each answer."""
    rng = random.Random(seed)
    questions = bank.select(rule=rule, skill=skill, notebook=notebook, n=n, rng=rng)
    return Session([shuffle_options(q, rng) for q in questions], mode=PRACTICE)


def exam_session(
    bank: Bank,
    n: int = 20,
    minutes: float = 30,
    seed: int | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Session:
    """`n` random questions from the whole bank against a deadline; no feedback until the end."""
    rng = random.Random(seed)
    questions = bank.select(n=n, rng=rng)
    return Session([shuffle_options(q, rng) for q in questions], EXAM, minutes, clock)


def review_session(bank: Bank, question_ids: Sequence[str], seed: int | None = None) -> Session:
    """The given questions in the given order (the review queue decides it), options shuffled."""
    rng = random.Random(seed)
    known = set(bank.question_ids)
    questions = [bank.question(qid) for qid in question_ids if qid in known]
    if not questions:
        raise NoQuestionsError("Nothing to review: no question is due.")
    return Session([shuffle_options(q, rng) for q in questions], mode=REVIEW)


# --- Reports ---------------------------------------------------------------------------------


@dataclass
class Tally:
    correct: int = 0
    total: int = 0

    @property
    def percent(self) -> int:
        """Rounded half up, so 1 of 8 is 13 %, not 12 %."""
        if not self.total:
            return 0
        return (200 * self.correct + self.total) // (2 * self.total)

    def add(self, correct: bool) -> None:
        self.total += 1
        self.correct += int(correct)


@dataclass(frozen=True)
class QuestionResult:
    item: ShuffledQuestion
    answer: Answer | None  # None: not answered

    @property
    def correct(self) -> bool:
        return self.answer is not None and self.answer.correct


@dataclass(frozen=True)
class Report:
    """Percent correct overall, per rule and per skill. No scaled score: the exam's 100-1,000
    scale is not a percentage and AWS does not publish the conversion, so we do not invent one.
    Tables list the weakest rule or skill first: that is what to review next."""

    mode: str
    overall: Tally
    by_rule: dict[str, Tally]
    by_skill: dict[str, Tally]
    results: tuple[QuestionResult, ...]
    unanswered: int
    time_up: bool = False


def _weakest_first(tallies: dict[str, Tally]) -> dict[str, Tally]:
    return dict(sorted(tallies.items(), key=lambda kv: (kv[1].percent, -kv[1].total, kv[0])))


def build_report(session: Session) -> Report:
    """Practice and review count the questions answered so far; an exam counts every question,
    unanswered ones as wrong."""
    results = []
    for position, item in enumerate(session.items):
        answer = session.answers.get(position)
        if answer is None and session.mode != EXAM:
            continue
        results.append(QuestionResult(item=item, answer=answer))
    overall, by_rule, by_skill = Tally(), {}, {}
    for result in results:
        overall.add(result.correct)
        for rule_id in result.item.question.rules:
            by_rule.setdefault(rule_id, Tally()).add(result.correct)
        for skill in result.item.question.skills:
            by_skill.setdefault(skill, Tally()).add(result.correct)
    return Report(
        mode=session.mode,
        overall=overall,
        by_rule=_weakest_first(by_rule),
        by_skill=_weakest_first(by_skill),
        results=tuple(results),
        unanswered=sum(1 for result in results if result.answer is None),
        time_up=session.time_up(),
    )
