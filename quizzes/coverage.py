"""How well the bank covers the exam: exam-set questions per skill statement and topic, questions
per rule, and what falls short of the targets. `python -m quizzes check` prints it; the tests
on the real bank assert it.

A question covers a topic it names in `topics`, and through it the topic's skill statement.
Only the exam set counts towards the exam targets: lab-check questions ask about this course's
gateway, which the real exam never does.
"""

from __future__ import annotations

from dataclasses import dataclass

from .engine import Bank
from .schema import (
    EXAM_SET,
    MIN_EXAM_QUESTIONS,
    MIN_EXAM_QUESTIONS_PER_TOPIC,
    MIN_QUESTIONS_PER_KIND,
)


@dataclass(frozen=True)
class Coverage:
    total: int
    exam_questions: int
    per_skill: dict[str, int]  # skill statement id -> exam-set questions naming one of its topics
    per_topic: dict[str, int]  # topic id -> exam-set questions naming it
    per_rule: dict[str, int]  # rule id -> questions (either set) naming it
    shortfalls: tuple[str, ...]  # one line per target missed; empty when every target is met

    @property
    def meets_targets(self) -> bool:
        return not self.shortfalls


def measure(
    bank: Bank,
    min_exam_questions: int = MIN_EXAM_QUESTIONS,
    min_per_topic: int = MIN_EXAM_QUESTIONS_PER_TOPIC,
) -> Coverage:
    """Count, and list every target missed, each line naming what is short and by how much."""
    exam = [question for question in bank.questions if question.set == EXAM_SET]
    skill_of = bank.skill_map.topics
    per_topic = dict.fromkeys(skill_of, 0)
    per_skill = dict.fromkeys(bank.skill_map.skills, 0)
    for question in exam:
        for topic in question.topics:
            per_topic[topic] += 1
        for skill in dict.fromkeys(skill_of[topic] for topic in question.topics):
            per_skill[skill] += 1
    per_rule = bank.questions_per_rule()

    shortfalls = []
    if len(exam) < min_exam_questions:
        shortfalls.append(f"exam set: {len(exam)} questions, needs at least {min_exam_questions}")
    shortfalls += [
        f"topic {topic} (skill {skill_of[topic]}): {count} exam-set questions, "
        f"needs at least {min_per_topic}"
        for topic, count in per_topic.items()
        if count < min_per_topic
    ]
    shortfalls += [
        f"{question.file}: question {question.id}: an exam-set question needs at least one topic"
        for question in exam
        if not question.topics
    ]
    for rule_id, count in per_rule.items():
        kind = bank.rules[rule_id].kind
        if count < MIN_QUESTIONS_PER_KIND[kind]:
            shortfalls.append(
                f"rule {rule_id} ({kind}): {count} questions, "
                f"needs at least {MIN_QUESTIONS_PER_KIND[kind]}"
            )
    return Coverage(
        total=len(bank.questions),
        exam_questions=len(exam),
        per_skill=per_skill,
        per_topic=per_topic,
        per_rule=per_rule,
        shortfalls=tuple(shortfalls),
    )


def coverage_text(bank: Bank, coverage: Coverage) -> str:
    """The report `python -m quizzes check` prints: statements and topics, rules, shortfalls."""
    lab_check = coverage.total - coverage.exam_questions
    lines = [
        f"{coverage.total} questions ({coverage.exam_questions} exam set, {lab_check} lab-check), "
        f"{len(bank.rules)} rules: valid.",
        "",
        "Exam set by skill statement and topic",
    ]
    rows = []  # (label, count, short?)
    for skill in bank.skill_map.skills.values():
        rows.append((f"{skill.id} {skill.statement}", coverage.per_skill[skill.id], False))
        for topic in skill.topics:
            count = coverage.per_topic[topic]
            rows.append((f"    {topic}", count, count < MIN_EXAM_QUESTIONS_PER_TOPIC))
    width = max(len(label) for label, _, _ in rows)
    lines += [
        f"  {label:<{width}} {count:>4}{'  <- short' if short else ''}"
        for label, count, short in rows
    ]
    lines += ["", "Questions per rule"]
    for rule_id, count in coverage.per_rule.items():
        kind = bank.rules[rule_id].kind
        flag = "" if count >= MIN_QUESTIONS_PER_KIND[kind] else "  <- short"
        lines.append(f"  {kind:<5} {rule_id:<40} {count:>3}{flag}")
    if coverage.shortfalls:
        lines += ["", f"Short of the targets ({len(coverage.shortfalls)}):"]
        lines += [f"  {line}" for line in coverage.shortfalls]
    else:
        lines += ["", "Every coverage target is met."]
    return "\n".join(lines) + "\n"
