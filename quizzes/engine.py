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
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import schema
from .schema import EXAM_SET, MATCHING, ORDERING, BankError

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
class Pair:
    """One prompt of a matching question and its correct answer."""

    prompt: str
    answer: str


@dataclass(frozen=True)
class Question:
    """One question as written in the bank: options, ordering items and matching pairs in
    their authored order (for ordering, that is the correct order)."""

    id: str
    type: str  # single | multiple | ordering | matching
    stem: str
    explanation: str
    rules: tuple[str, ...]
    skills: tuple[str, ...]
    sources: tuple[str, ...]
    notebook: str
    exhibit: str | None
    file: str
    choose: int = 1  # single and multiple only
    options: tuple[Option, ...] = ()  # single and multiple only
    items: tuple[str, ...] = ()  # ordering only, in the correct order
    pairs: tuple[Pair, ...] = ()  # matching only
    distractors: tuple[str, ...] = ()  # matching only: answers that match no prompt
    set: str = EXAM_SET  # exam | lab-check
    topics: tuple[str, ...] = ()  # topic ids from skills.yaml

    @property
    def is_multiple(self) -> bool:
        return self.type == "multiple"

    @property
    def is_choice(self) -> bool:
        """Single or multiple: the learner picks options."""
        return self.type in schema.CHOICE_TYPES

    @property
    def answers(self) -> tuple[str, ...]:
        """A matching question's answer list: each distinct pair answer, then the distractors.
        Two prompts may share an answer; it is listed once."""
        distinct = tuple(dict.fromkeys(pair.answer for pair in self.pairs))
        return distinct + self.distractors


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


@dataclass(frozen=True)
class Skill:
    """One exam skill statement and the topics questions are tagged with (id -> title)."""

    id: str
    statement: str
    topics: dict[str, str]


@dataclass(frozen=True, eq=False)
class SkillMap:
    """skills.yaml, validated: the skill statements in file order."""

    skills: dict[str, Skill]
    path: str

    @property
    def topics(self) -> dict[str, str]:
        """Every topic id -> the id of its skill statement, in file order."""
        return {topic: skill.id for skill in self.skills.values() for topic in skill.topics}


def load_skills(root: str | Path | None = None) -> SkillMap:
    """Read and validate `skills.yaml` under `root`, or the course's own when `root` has none:
    the skill statements belong to the exam, not to one bank."""
    root = Path(root) if root is not None else PACKAGE_DIR
    if not (root / "skills.yaml").exists():
        root = PACKAGE_DIR
    path = root / "skills.yaml"
    shown = _shown_path(path, root)
    return skill_map_from_document(_read_yaml(path, shown), shown)


def skill_map_from_document(document: object, shown: str = "skills.yaml") -> SkillMap:
    schema.check_skills_file(document, shown)
    skills = {
        entry["id"]: Skill(
            id=entry["id"],
            statement=entry["statement"].strip(),
            topics={topic["id"]: topic["title"].strip() for topic in entry["topics"]},
        )
        for entry in document["skills"]
    }
    return SkillMap(skills=skills, path=shown)


def _question(entry: dict, rulebook: Rulebook, shown: str) -> Question:
    return Question(
        id=entry["id"],
        type=entry["type"],
        choose=entry.get("choose", 1),
        stem=entry["stem"].strip(),
        options=tuple(
            Option(text=o["text"].strip(), correct=o["correct"], feedback=o["feedback"].strip())
            for o in entry.get("options", ())
        ),
        items=tuple(item["text"].strip() for item in entry.get("items", ())),
        pairs=tuple(
            Pair(prompt=pair["prompt"].strip(), answer=pair["answer"].strip())
            for pair in entry.get("pairs", ())
        ),
        distractors=tuple(text.strip() for text in entry.get("distractors", ())),
        set=entry.get("set", EXAM_SET),
        topics=tuple(entry.get("topics", ())),
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
    skill_map = load_skills(root)
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
    schema.check_bank(documents, rulebook.rules, skill_map.topics)
    questions = tuple(
        _question(entry, rulebook, shown)
        for shown, document in documents.items()
        for entry in document["questions"]
    )
    return Bank(rulebook=rulebook, questions=questions, skill_map=skill_map)


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
    skill_map: SkillMap

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
        question_set: str | None = None,
    ) -> list[Question]:
        """Questions matching every filter given, in bank order. A rule, notebook or set that
        does not exist is a ValueError (a typo should not look like an empty quiz)."""
        if rule is not None and rule not in self.rules:
            raise ValueError(unknown_name_message("rule", rule, self.rules))
        if question_set is not None and question_set not in schema.QUESTION_SETS:
            raise ValueError(unknown_name_message("set", question_set, schema.QUESTION_SETS))
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
            and (question_set is None or question.set == question_set)
        ]

    def select(
        self,
        rule: str | None = None,
        skill: str | None = None,
        notebook: str | int | None = None,
        n: int | None = None,
        seed: int | None = None,
        rng: random.Random | None = None,
        question_set: str | None = None,
    ) -> list[Question]:
        """Matching questions in random order, at most `n` of them. The same seed gives the
        same questions in the same order."""
        picked = self.filter(rule=rule, skill=skill, notebook=notebook, question_set=question_set)
        if not picked:
            filters = (
                ("rule", rule),
                ("skill", skill),
                ("notebook", notebook),
                ("set", question_set),
            )
            asked = ", ".join(f"{name}={value!r}" for name, value in filters if value is not None)
            known = sorted({s for q in self.questions for s in q.skills})
            hint = f" Skills in the bank: {', '.join(known)}." if skill is not None else ""
            raise NoQuestionsError(f"No questions match {asked}.{hint}")
        rng = rng or random.Random(seed)
        rng.shuffle(picked)
        return picked[:n] if n is not None else picked


# --- Shuffling and grading -------------------------------------------------------------------


@dataclass(frozen=True)
class ShuffledQuestion:
    """A question as shown, its lists shuffled. `order[i]` is the authored index of what is shown
    at position i: the option (single, multiple), the item (ordering) or the entry of
    `question.answers` (matching); `prompt_order[i]` likewise for a matching question's
    prompts. Grading follows the shuffle.

    A response is a tuple of shown positions (0-based): the chosen options; for ordering the
    items in the order the learner puts them; for matching, per shown prompt, the shown
    position of the answer chosen for it."""

    question: Question
    order: tuple[int, ...]
    prompt_order: tuple[int, ...] = ()

    @property
    def options(self) -> tuple[Option, ...]:
        return (
            tuple(self.question.options[i] for i in self.order) if self.question.is_choice else ()
        )

    @property
    def shown_items(self) -> tuple[str, ...]:
        """An ordering question's items in the shuffled order they are shown in."""
        if self.question.type != ORDERING:
            return ()
        return tuple(self.question.items[i] for i in self.order)

    @property
    def shown_prompts(self) -> tuple[Pair, ...]:
        """A matching question's pairs in the order their prompts are shown in."""
        return tuple(self.question.pairs[i] for i in self.prompt_order)

    @property
    def shown_answers(self) -> tuple[str, ...]:
        """A matching question's answers (and distractors) in the order they are shown in."""
        if self.question.type != MATCHING:
            return ()
        return tuple(self.question.answers[i] for i in self.order)

    @property
    def size(self) -> int:
        """How many things are shown to pick from or to put in order."""
        return len(self.order)

    @property
    def correct(self):
        """The right response. For single and multiple: the frozenset of the correct options'
        shown positions. For ordering and matching: `correct_response`."""
        if self.question.is_choice:
            return frozenset(i for i, option in enumerate(self.options) if option.correct)
        return self.correct_response

    @property
    def correct_response(self) -> tuple[int, ...]:
        """The right response as a tuple: sorted positions, the items in the right order, or
        per shown prompt the shown position of its answer."""
        if self.question.is_choice:
            return tuple(sorted(self.correct))
        if self.question.type == ORDERING:
            return tuple(self.order.index(authored) for authored in range(len(self.order)))
        answers = self.question.answers
        return tuple(self.order.index(answers.index(pair.answer)) for pair in self.shown_prompts)

    def grade(self, chosen: Iterable[int]) -> bool:
        """All or nothing, as on the exam: a multiple-response answer scores only when exactly
        the correct options are chosen; an order only when every item is in its place; a
        matching only when every prompt has its answer."""
        if self.question.is_choice:
            return frozenset(chosen) == self.correct
        return tuple(chosen) == self.correct_response

    def selection_problem(self, chosen: Iterable[int | None]) -> str | None:
        """Why `chosen` (0-based positions) is not a complete answer yet, or None. Both front
        ends ask this before submitting, so learners get the same message everywhere."""
        chosen = list(chosen)
        if self.question.type == ORDERING:
            return self._ordering_problem(chosen)
        if self.question.type == MATCHING:
            return self._matching_problem(chosen)
        count = len(self.options)
        outside = [i for i in chosen if i is None or not 0 <= i < count]
        if outside:
            shown = "none" if outside[0] is None else outside[0] + 1
            return f"There is no option {shown}: the options are numbered 1 to {count}."
        if len(set(chosen)) != len(chosen):
            return "Each option can be chosen only once."
        wanted = self.question.choose
        if len(chosen) == wanted:
            return None
        if wanted == 1:
            return "Choose one option." if not chosen else "Choose exactly one option."
        return f"Choose exactly {schema.choose_phrase(wanted)} options (you chose {len(chosen)})."

    def _ordering_problem(self, chosen: list) -> str | None:
        count = self.size
        placed = [i for i in chosen if i is not None]  # None: a place left empty
        outside = [i for i in placed if not 0 <= i < count]
        if outside:
            return f"There is no item {outside[0] + 1}: the items are numbered 1 to {count}."
        if len(set(placed)) != len(placed):
            return "Each item can be placed only once."
        if len(placed) != count or len(chosen) != count:
            return f"Put all {count} items in order (you placed {len(placed)})."
        return None

    def _matching_problem(self, chosen: list) -> str | None:
        count, prompts = self.size, len(self.prompt_order)
        outside = [i for i in chosen if i is not None and not 0 <= i < count]
        if outside:
            return (
                f"There is no answer {answer_letter(outside[0])}: the answers are "
                f"{answer_letter(0)} to {answer_letter(count - 1)}."
            )
        if len(chosen) > prompts:
            return f"There are only {prompts} prompts to match."
        missing = prompts - sum(1 for i in chosen if i is not None)
        if missing:
            return f"Choose an answer for every prompt ({missing} of {prompts} still open)."
        return None


def answer_letter(position: int) -> str:
    """Matching answers are lettered a, b, c... so they cannot be mixed up with the prompts'
    numbers."""
    return chr(ord("a") + position) if 0 <= position < 26 else str(position + 1)


def typed_response(item: ShuffledQuestion, response: Sequence[int]) -> str:
    """A response as a learner types it in the terminal: options "1, 3", an order "3 1 2",
    matches "1b 2a" (prompt number, answer letter)."""
    if item.question.type == ORDERING:
        return " ".join(str(i + 1) for i in response)
    if item.question.type == MATCHING:
        return " ".join(f"{n}{answer_letter(i)}" for n, i in enumerate(response, start=1))
    return ", ".join(str(i + 1) for i in sorted(response))


def shuffle_options(question: Question, rng: random.Random) -> ShuffledQuestion:
    """Shuffle what a question shows. An ordering question is never shown already in order."""
    if question.type == ORDERING:
        order = list(range(len(question.items)))
        while order == sorted(order):
            rng.shuffle(order)
        return ShuffledQuestion(question=question, order=tuple(order))
    if question.type == MATCHING:
        order = list(range(len(question.answers)))
        prompt_order = list(range(len(question.pairs)))
        rng.shuffle(order)
        rng.shuffle(prompt_order)
        return ShuffledQuestion(question, tuple(order), tuple(prompt_order))
    order = list(range(len(question.options)))
    rng.shuffle(order)
    return ShuffledQuestion(question=question, order=tuple(order))


# --- Sessions --------------------------------------------------------------------------------


class TimeUpError(RuntimeError):
    """An exam answer arrived after the deadline. It was not recorded."""


@dataclass(frozen=True)
class Answer:
    question_id: str
    chosen: tuple[int, ...]  # the response: shown positions, 0-based (see ShuffledQuestion)
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
        chosen = tuple(chosen)
        if item.question.is_choice:
            chosen = tuple(sorted(set(chosen)))
            if any(not 0 <= i < item.size for i in chosen):
                raise ValueError(item.selection_problem(chosen))
        elif problem := item.selection_problem(chosen):
            raise ValueError(problem)  # an order or a matching is graded only when complete
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
    question_set: str | None = None,
) -> Session:
    """Questions matching the filters (from both sets unless `question_set` says which),
    shuffled; feedback after each answer."""
    rng = random.Random(seed)
    questions = bank.select(
        rule=rule, skill=skill, notebook=notebook, n=n, rng=rng, question_set=question_set
    )
    return Session([shuffle_options(q, rng) for q in questions], mode=PRACTICE)


def exam_session(
    bank: Bank,
    n: int = 20,
    minutes: float = 30,
    seed: int | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Session:
    """`n` random questions from the exam set against a deadline; no feedback until the end.
    The lab-check set asks about this course's gateway, which the real exam never does."""
    rng = random.Random(seed)
    questions = bank.select(n=n, rng=rng, question_set=EXAM_SET)
    return Session([shuffle_options(q, rng) for q in questions], EXAM, minutes, clock)


def review_session(bank: Bank, question_ids: Sequence[str], seed: int | None = None) -> Session:
    """The given questions in the given order (the review queue decides it), options shuffled."""
    return session_of(bank, question_ids, REVIEW, seed, "Nothing to review: no question is due.")


def session_of(
    bank: Bank,
    question_ids: Sequence[str],
    mode: str = PRACTICE,
    seed: int | None = None,
    empty_message: str = "No questions to ask.",
) -> Session:
    """The given questions in the given order (someone else chose them), options shuffled."""
    rng = random.Random(seed)
    known = set(bank.question_ids)
    questions = [bank.question(qid) for qid in question_ids if qid in known]
    if not questions:
        raise NoQuestionsError(empty_message)
    return Session([shuffle_options(q, rng) for q in questions], mode=mode)


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
    by_topic: dict[str, Tally] = field(default_factory=dict)


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
    overall, by_rule, by_skill, by_topic = Tally(), {}, {}, {}
    for result in results:
        overall.add(result.correct)
        for rule_id in result.item.question.rules:
            by_rule.setdefault(rule_id, Tally()).add(result.correct)
        for skill in result.item.question.skills:
            by_skill.setdefault(skill, Tally()).add(result.correct)
        for topic in result.item.question.topics:
            by_topic.setdefault(topic, Tally()).add(result.correct)
    return Report(
        mode=session.mode,
        overall=overall,
        by_rule=_weakest_first(by_rule),
        by_skill=_weakest_first(by_skill),
        results=tuple(results),
        unanswered=sum(1 for result in results if result.answer is None),
        time_up=session.time_up(),
        by_topic=_weakest_first(by_topic),
    )
