"""The shape of the quiz data, and the checks a JSON Schema cannot express.

`quizzes/SCHEMA.md` describes the format in prose; this module is its executable form. The JSON
Schemas catch typos and missing fields; `check_*` functions catch what only makes sense across
fields or files (a single-answer question with two correct options, a question naming a rule
that does not exist, the same stem written twice). Every problem is reported with the file and
the question (or rule) id, so the author of a bank can go straight to the bad entry.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from jsonschema import Draft202012Validator

# The course map from SCHEMA.md: which notebook and lab numbers exist.
NOTEBOOKS = {
    "00": "environment check",
    "01": "the SSE wire format",
    "02": "contract first: OpenAPI 3.2",
    "03": "stream vs full response, time to first token",
    "04": "limits at the edge: request size, max tokens",
    "05": "stream guard: first-token, idle and total timeouts, disconnect",
    "06": "structured errors, rate limits, retries",
    "06b": "limits across workers: per worker or shared in Redis",
    "07": "WebSocket chat: interrupt, cancel, follow-ups",
    "08": "the AWS path: API Gateway, Lambda, Bedrock",
    "09": "review: exam mode and cheat sheet",
}
LABS = ["01", "02", "03", "04", "05", "06", "07", "08"]

# The exam's two question types (exam guide [exam-guide]): one correct of four, or two or more
# correct of five or more.
SINGLE_OPTIONS = 4
MULTIPLE_MIN_OPTIONS = 5
MULTIPLE_MIN_CORRECT = 2

# Coverage targets for the bank: how many questions should name each rule, by kind. A trap
# needs fewer because it is also met as a wrong option in other rules' questions.
MIN_QUESTIONS_PER_KIND = {"rule": 4, "fact": 4, "trap": 3}

# A multiple-response stem tells the candidate how many to pick, as on the exam: "(Choose two.)"
CHOOSE_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}

_KEBAB_ID = "^[a-z0-9]+(-[a-z0-9]+)*$"
_SKILL_ID = r"^[0-9]+\.[0-9]+\.[0-9]+$"
_TEXT = {"type": "string", "minLength": 1}
_ID_LIST = {"type": "array", "items": {"type": "string", "pattern": _KEBAB_ID}, "uniqueItems": True}
_SKILL_LIST = {
    "type": "array",
    "items": {"type": "string", "pattern": _SKILL_ID},
    "minItems": 1,
    "uniqueItems": True,
}

RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "kind", "rule", "why", "skills", "notebook", "hook"],
    "properties": {
        "id": {"type": "string", "pattern": _KEBAB_ID},
        "kind": {"enum": ["rule", "trap", "fact"]},
        "rule": _TEXT,
        "why": _TEXT,
        "skills": _SKILL_LIST,
        "notebook": {"enum": list(NOTEBOOKS)},
        "lab": {"enum": [*LABS, None]},
        "hook": _TEXT,
        "sources": _ID_LIST,
    },
    # An AWS fact is only as good as its source: kind fact must cite at least one.
    "if": {"properties": {"kind": {"const": "fact"}}},
    "then": {"required": ["sources"], "properties": {"sources": {"minItems": 1}}},
}

RULES_FILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["rules", "decision_table"],
    "properties": {
        "rules": {"type": "array", "minItems": 1, "items": RULE_SCHEMA},
        "decision_table": {
            "type": "object",
            "additionalProperties": False,
            "required": ["columns", "rows"],
            "properties": {
                "columns": {"type": "array", "minItems": 2, "items": _TEXT},
                "rows": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}

OPTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["text", "correct", "feedback"],
    "properties": {"text": _TEXT, "correct": {"type": "boolean"}, "feedback": _TEXT},
}

# The two sets of the bank: `exam` questions feel like the real exam and are the only ones in
# exam mode; `lab-check` questions ask about this course's gateway (its error codes, its
# settings names), which the real exam never does.
EXAM_SET = "exam"
LAB_CHECK_SET = "lab-check"
QUESTION_SETS = [EXAM_SET, LAB_CHECK_SET]

CHOICE_TYPES = ["single", "multiple"]
ORDERING = "ordering"
MATCHING = "matching"
QUESTION_TYPES = [*CHOICE_TYPES, ORDERING, MATCHING]

# Fewer than three items to order is a coin toss; a matching question needs two prompts at least.
ORDERING_MIN_ITEMS = 3
MATCHING_MIN_PAIRS = 2

# Fields every question type shares.
_COMMON_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "pattern": _KEBAB_ID},
    "stem": _TEXT,
    "exhibit": _TEXT,
    "explanation": _TEXT,
    "rules": {**_ID_LIST, "minItems": 1},
    "skills": _SKILL_LIST,
    "sources": _ID_LIST,
    "notebook": {"enum": list(NOTEBOOKS)},
    "set": {"enum": QUESTION_SETS},
    "topics": _ID_LIST,
}
_COMMON_REQUIRED = ["id", "type", "stem", "explanation", "rules", "skills"]


def _question_schema(types: list[str], required: list[str], properties: dict) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [*_COMMON_REQUIRED, *required],
        "properties": {**_COMMON_PROPERTIES, "type": {"enum": types}, **properties},
    }


# One schema per question type, so an error says what that type needs (one schema with oneOf
# would only say "not valid under any of the given schemas").
_CHOICE_SCHEMA = _question_schema(
    CHOICE_TYPES,
    ["choose", "options"],
    {
        "choose": {"type": "integer", "minimum": 1},
        "options": {"type": "array", "minItems": 2, "items": OPTION_SCHEMA},
    },
)
QUESTION_SCHEMAS: dict[str, dict[str, Any]] = {
    "single": _CHOICE_SCHEMA,
    "multiple": _CHOICE_SCHEMA,
    ORDERING: _question_schema(
        [ORDERING],
        ["items"],
        {
            "items": {  # in the correct order; the engine shuffles them for display
                "type": "array",
                "minItems": ORDERING_MIN_ITEMS,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["text"],
                    "properties": {"text": _TEXT},
                },
            }
        },
    ),
    MATCHING: _question_schema(
        [MATCHING],
        ["pairs"],
        {
            "pairs": {  # each prompt with its one correct answer
                "type": "array",
                "minItems": MATCHING_MIN_PAIRS,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["prompt", "answer"],
                    "properties": {"prompt": _TEXT, "answer": _TEXT},
                },
            },
            "distractors": {"type": "array", "items": _TEXT},  # answers that match no prompt
        },
    ),
}

# The file level checks only what is needed to pick each question's schema.
BANK_FILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["questions"],
    "properties": {
        "questions": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "type"],
                "properties": {"type": {"enum": QUESTION_TYPES}},
            },
        }
    },
}

# skills.yaml: the exam's skill statements this course covers, each with the topics a question
# is tagged with. Coverage is counted per topic and per statement.
SKILLS_FILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["skills"],
    "properties": {
        "exam": _TEXT,
        "skills": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "statement", "topics"],
                "properties": {
                    "id": {"type": "string", "pattern": _SKILL_ID},
                    "statement": _TEXT,
                    "topics": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["id", "title"],
                            "properties": {
                                "id": {"type": "string", "pattern": _KEBAB_ID},
                                "title": _TEXT,
                            },
                        },
                    },
                },
            },
        },
    },
}

# Coverage targets of the exam set, checked by `python -m quizzes check`.
MIN_EXAM_QUESTIONS = 150
MIN_EXAM_QUESTIONS_PER_TOPIC = 5


class BankError(ValueError):
    """The quiz data is malformed. The message lists every problem, one a line, each starting
    with the file and the question or rule id."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _where(path: str, kind: str, entry_id: str | None) -> str:
    return f"{path}: {kind} {entry_id}" if entry_id else path


def _schema_problems(document: Any, schema: dict, path: str, list_key: str, kind: str) -> list:
    """JSON Schema errors, each prefixed with the file and the id of the entry it concerns."""
    problems = []
    validator = Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        location = list(error.absolute_path)
        entry_id = None
        if len(location) >= 2 and location[0] == list_key and isinstance(location[1], int):
            entry = document[list_key][location[1]]
            entry_id = entry.get("id") if isinstance(entry, Mapping) else None
            entry_id = entry_id or f"#{location[1] + 1}"  # no id yet: name it by position
            location = location[2:]
        field = "/".join(str(part) for part in location)
        suffix = f" (at {field})" if field else ""
        problems.append(f"{_where(path, kind, entry_id)}: {error.message}{suffix}")
    return problems


def normalise_stem(stem: str) -> str:
    """The stem as compared for duplicates: case and whitespace do not make a new question."""
    return " ".join(stem.split()).casefold()


def check_rules_file(document: Any, path: str) -> None:
    """Validate a parsed rules.yaml; raise BankError naming the file and the rule id."""
    problems = _schema_problems(document, RULES_FILE_SCHEMA, path, "rules", "rule")
    if problems:
        raise BankError(problems)
    seen: set[str] = set()
    for rule in document["rules"]:
        if rule["id"] in seen:
            problems.append(f"{path}: rule {rule['id']}: rule id used twice")
        seen.add(rule["id"])
    table = document["decision_table"]
    for number, row in enumerate(table["rows"], start=1):
        if len(row) != len(table["columns"]):
            problems.append(
                f"{path}: decision_table row {number}: has {len(row)} cells, "
                f"the table has {len(table['columns'])} columns"
            )
    if problems:
        raise BankError(problems)


def _repeated(texts: Iterable[str]) -> list[str]:
    """Texts that appear more than once, compared as stems are (case and spacing ignored)."""
    seen: set[str] = set()
    repeated = []
    for text in texts:
        key = normalise_stem(text)
        if key in seen and text not in repeated:
            repeated.append(text)
        seen.add(key)
    return repeated


def _ordering_problems(question: Mapping[str, Any], where: str) -> list[str]:
    repeated = _repeated(item["text"] for item in question["items"])
    # Two items with the same text could swap places unseen: the key would be ambiguous.
    return [f"{where}: ordering item {text!r} appears twice" for text in repeated]


def _matching_problems(question: Mapping[str, Any], where: str) -> list[str]:
    problems = [
        f"{where}: matching prompt {text!r} appears twice"
        for text in _repeated(pair["prompt"] for pair in question["pairs"])
    ]
    distractors = question.get("distractors", [])
    problems += [f"{where}: distractor {text!r} appears twice" for text in _repeated(distractors)]
    answers = {normalise_stem(pair["answer"]) for pair in question["pairs"]}
    problems += [
        f"{where}: distractor {text!r} is also the answer to a prompt"
        for text in distractors
        if normalise_stem(text) in answers
    ]
    return problems


def question_problems(question: Mapping[str, Any], path: str) -> list[str]:
    """What is wrong with one schema-valid question, judged by the exam's question types."""
    where = _where(path, "question", question["id"])
    if question["type"] == ORDERING:
        return _ordering_problems(question, where)
    if question["type"] == MATCHING:
        return _matching_problems(question, where)
    options = question["options"]
    correct = sum(1 for option in options if option["correct"])
    problems = []
    if question["type"] == "single":
        if len(options) != SINGLE_OPTIONS:
            problems.append(
                f"{where}: single-answer question has {len(options)} options, "
                f"needs exactly {SINGLE_OPTIONS}"
            )
        if correct != 1:
            problems.append(f"{where}: single-answer question has {correct} correct options")
        if question["choose"] != 1:
            problems.append(f"{where}: single-answer question must have choose: 1")
    else:
        if len(options) < MULTIPLE_MIN_OPTIONS:
            problems.append(
                f"{where}: multiple-response question has {len(options)} options, "
                f"needs at least {MULTIPLE_MIN_OPTIONS}"
            )
        if correct < MULTIPLE_MIN_CORRECT:
            problems.append(
                f"{where}: multiple-response question has {correct} correct options, "
                f"needs at least {MULTIPLE_MIN_CORRECT}"
            )
        if question["choose"] != correct:
            problems.append(
                f"{where}: choose is {question['choose']} but {correct} options are correct"
            )
        word = CHOOSE_WORDS.get(question["choose"])
        wanted = f"(Choose {word}.)" if word else None
        if wanted and wanted.casefold() not in question["stem"].casefold():
            problems.append(f"{where}: the stem must say {wanted!r}")
    texts = [normalise_stem(option["text"]) for option in options]
    if len(set(texts)) != len(texts):
        problems.append(f"{where}: two options have the same text")
    return problems


def _question_schema_problems(question: Mapping[str, Any], path: str, number: int) -> list:
    """JSON Schema errors of one question against the schema of its type."""
    where = _where(path, "question", question.get("id") or f"#{number}")
    validator = Draft202012Validator(QUESTION_SCHEMAS[question["type"]])
    problems = []
    for error in sorted(validator.iter_errors(question), key=lambda e: list(e.absolute_path)):
        field = "/".join(str(part) for part in error.absolute_path)
        suffix = f" (at {field})" if field else ""
        problems.append(f"{where}: {error.message}{suffix}")
    return problems


def check_bank_file(document: Any, path: str) -> None:
    """Validate one parsed bank/*.yaml on its own; raise BankError naming file and question id."""
    problems = _schema_problems(document, BANK_FILE_SCHEMA, path, "questions", "question")
    if problems:
        raise BankError(problems)
    for number, question in enumerate(document["questions"], start=1):
        problems.extend(_question_schema_problems(question, path, number))
    if problems:
        raise BankError(problems)
    for question in document["questions"]:
        problems.extend(question_problems(question, path))
    if problems:
        raise BankError(problems)


def check_skills_file(document: Any, path: str) -> None:
    """Validate a parsed skills.yaml: schema, and every skill and topic id used once."""
    problems = _schema_problems(document, SKILLS_FILE_SCHEMA, path, "skills", "skill")
    if problems:
        raise BankError(problems)
    seen_skills: set[str] = set()
    seen_topics: set[str] = set()
    for skill in document["skills"]:
        if skill["id"] in seen_skills:
            problems.append(f"{path}: skill {skill['id']}: skill id used twice")
        seen_skills.add(skill["id"])
        for topic in skill["topics"]:
            if topic["id"] in seen_topics:
                problems.append(f"{path}: topic {topic['id']}: topic id used twice")
            seen_topics.add(topic["id"])
    if problems:
        raise BankError(problems)


def check_bank(
    files: Mapping[str, Any], rule_ids: Iterable[str], topic_ids: Iterable[str] = ()
) -> None:
    """Cross-file checks over schema-valid bank files (path -> parsed document): question ids
    unique across the bank, every named rule and topic exists, no stem asked twice."""
    known_rules = set(rule_ids)
    known_topics = set(topic_ids)
    first_id: dict[str, str] = {}  # question id -> file it first appeared in
    first_stem: dict[str, str] = {}  # normalised stem -> "file: question id"
    problems = []
    for path, document in files.items():
        for question in document["questions"]:
            qid = question["id"]
            where = _where(path, "question", qid)
            if qid in first_id:
                problems.append(f"{where}: id already used in {first_id[qid]}")
            first_id.setdefault(qid, path)
            for rule_id in question["rules"]:
                if rule_id not in known_rules:
                    problems.append(f"{where}: names rule {rule_id!r}, not in rules.yaml")
            for topic_id in question.get("topics", []):
                if topic_id not in known_topics:
                    hint = difflib.get_close_matches(topic_id, sorted(known_topics), n=1)
                    maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
                    problems.append(f"{where}: names topic {topic_id!r}, not in skills.yaml{maybe}")
            stem = normalise_stem(question["stem"])
            if stem in first_stem:
                problems.append(f"{where}: same stem as {first_stem[stem]}")
            first_stem.setdefault(stem, where)
    if problems:
        raise BankError(problems)


def choose_phrase(count: int) -> str:
    """'two' for 2: how the exam words a multiple-response instruction."""
    return CHOOSE_WORDS.get(count, str(count))
