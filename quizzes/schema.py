"""The shape of the quiz data, and the checks a JSON Schema cannot express.

`quizzes/SCHEMA.md` describes the format in prose; this module is its executable form. The JSON
Schemas catch typos and missing fields; `check_*` functions catch what only makes sense across
fields or files (a single-answer question with two correct options, a question naming a rule
that does not exist, the same stem written twice). Every problem is reported with the file and
the question (or rule) id, so the author of a bank can go straight to the bad entry.
"""

from __future__ import annotations

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

QUESTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "type", "choose", "stem", "options", "explanation", "rules", "skills"],
    "properties": {
        "id": {"type": "string", "pattern": _KEBAB_ID},
        "type": {"enum": ["single", "multiple"]},
        "choose": {"type": "integer", "minimum": 1},
        "stem": _TEXT,
        "exhibit": _TEXT,
        "options": {"type": "array", "minItems": 2, "items": OPTION_SCHEMA},
        "explanation": _TEXT,
        "rules": {**_ID_LIST, "minItems": 1},
        "skills": _SKILL_LIST,
        "sources": _ID_LIST,
        "notebook": {"enum": list(NOTEBOOKS)},
    },
}

BANK_FILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["questions"],
    "properties": {"questions": {"type": "array", "minItems": 1, "items": QUESTION_SCHEMA}},
}


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


def question_problems(question: Mapping[str, Any], path: str) -> list[str]:
    """What is wrong with one schema-valid question, judged by the exam's question types."""
    where = _where(path, "question", question["id"])
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


def check_bank_file(document: Any, path: str) -> None:
    """Validate one parsed bank/*.yaml on its own; raise BankError naming file and question id."""
    problems = _schema_problems(document, BANK_FILE_SCHEMA, path, "questions", "question")
    if problems:
        raise BankError(problems)
    for question in document["questions"]:
        problems.extend(question_problems(question, path))
    if problems:
        raise BankError(problems)


def check_bank(files: Mapping[str, Any], rule_ids: Iterable[str]) -> None:
    """Cross-file checks over schema-valid bank files (path -> parsed document): question ids
    unique across the bank, every named rule exists, no stem asked twice."""
    known_rules = set(rule_ids)
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
            stem = normalise_stem(question["stem"])
            if stem in first_stem:
                problems.append(f"{where}: same stem as {first_stem[stem]}")
            first_stem.setdefault(stem, where)
    if problems:
        raise BankError(problems)


def choose_phrase(count: int) -> str:
    """'two' for 2: how the exam words a multiple-response instruction."""
    return CHOOSE_WORDS.get(count, str(count))
