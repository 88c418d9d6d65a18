"""The course's own quiz bank (quizzes/rules.yaml, quizzes/bank/*.yaml) meets the bar: valid,
enough questions on every rule and trap, every AWS fact sourced in docs/sources.md.

Skipped only while quizzes/rules.yaml does not exist yet."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from quizzes import coverage, engine, widgets
from quizzes.cheatsheet import render_markdown
from quizzes.progress import Progress
from quizzes.schema import MIN_QUESTIONS_PER_KIND, normalise_stem

RULES_FILE = engine.PACKAGE_DIR / "rules.yaml"
MIN_QUESTIONS = 90
MAX_LONGEST_IS_CORRECT = 0.5  # share of single-answer questions; chance is about 0.25
NOTEBOOKS_WITH_A_QUIZ = ["01", "02", "03", "04", "05", "06", "06b", "07", "08"]

pytestmark = pytest.mark.skipif(
    not RULES_FILE.exists(), reason="quizzes/rules.yaml is not written yet"
)


@pytest.fixture(scope="module")
def real_bank() -> engine.Bank:
    return engine.load_bank()  # raises BankError naming file and question id


@pytest.fixture(scope="module")
def listed_sources(repo_root) -> set[str]:
    text = (repo_root / "docs" / "sources.md").read_text(encoding="utf-8")
    return set(re.findall(r"\*\*\[([a-z0-9-]+)\]\*\*", text))


def test_the_real_bank_validates(real_bank):
    assert real_bank.questions


def test_the_real_bank_has_enough_questions(real_bank):
    assert len(real_bank.questions) >= MIN_QUESTIONS


def test_every_rule_fact_and_trap_has_enough_questions(real_bank):
    counts = real_bank.questions_per_rule()
    short = {
        rule_id: f"{counts[rule_id]} < {MIN_QUESTIONS_PER_KIND[rule.kind]} ({rule.kind})"
        for rule_id, rule in real_bank.rules.items()
        if counts[rule_id] < MIN_QUESTIONS_PER_KIND[rule.kind]
    }
    assert not short, f"rules below their coverage target: {short}"


def test_the_real_bank_meets_the_exam_coverage_targets(real_bank, repo_root):
    # At least 150 exam-set questions, every topic of skills.yaml at least 5, every exam-set
    # question tagged with a topic: what `python -m quizzes check` fails on, run as make test runs.
    measured = coverage.measure(real_bank)
    assert measured.meets_targets, "short of the targets:\n" + "\n".join(measured.shortfalls)
    result = subprocess.run(
        [sys.executable, "-m", "quizzes", "check"],
        capture_output=True,
        text=True,
        cwd=repo_root,
        timeout=50,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_lab_check_set_stays_out_of_exam_mode(real_bank):
    session = engine.exam_session(real_bank, n=len(real_bank.questions), seed=1)
    assert {item.question.set for item in session.items} == {"exam"}


def test_single_answer_questions_have_one_correct_option_of_four(real_bank):
    bad = [
        q.id
        for q in real_bank.questions
        if q.type == "single" and (len(q.options) != 4 or sum(o.correct for o in q.options) != 1)
    ]
    assert not bad


def test_multiple_response_questions_have_at_least_two_correct_of_five(real_bank):
    bad = [
        q.id
        for q in real_bank.questions
        if q.is_multiple and (len(q.options) < 5 or sum(o.correct for o in q.options) < 2)
    ]
    assert not bad


def test_the_longest_option_does_not_give_the_answer_away(real_bank):
    # By chance the correct option of four is the longest about a quarter of the time. If it
    # nearly always is, "pick the longest" passes our quizzes and fails the exam.
    singles = [q for q in real_bank.questions if q.type == "single"]
    giveaways = [
        f"{q.file}: question {q.id}"
        for q in singles
        if all(
            len(wrong.text) < len(right.text)
            for right in q.options
            if right.correct
            for wrong in q.options
            if not wrong.correct
        )
    ]
    share = len(giveaways) / len(singles)
    assert share <= MAX_LONGEST_IS_CORRECT, (
        f"the correct option is the longest in {len(giveaways)} of {len(singles)} "
        f"single-answer questions ({share:.0%}):\n" + "\n".join(giveaways)
    )


def test_no_stem_is_asked_twice(real_bank):
    stems = Counter(normalise_stem(q.stem) for q in real_bank.questions)
    assert [stem for stem, count in stems.items() if count > 1] == []


def test_every_source_id_is_listed_in_docs_sources(real_bank, listed_sources):
    unknown = {
        f"{q.file}: question {q.id}: {source}"
        for q in real_bank.questions
        for source in q.sources
        if source not in listed_sources
    } | {
        f"rules.yaml: rule {rule.id}: {source}"
        for rule in real_bank.rules.values()
        for source in rule.sources
        if source not in listed_sources
    }
    assert not unknown, "source ids missing from docs/sources.md:\n" + "\n".join(sorted(unknown))


def test_questions_on_an_aws_fact_cite_a_source(real_bank):
    unsourced = [
        f"{q.file}: question {q.id}"
        for q in real_bank.questions
        if not q.sources and any(real_bank.rules[r].kind == "fact" for r in q.rules)
    ]
    assert not unsourced, "questions naming a fact rule but citing no source:\n" + "\n".join(
        unsourced
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS_WITH_A_QUIZ)
def test_every_notebook_quiz_cell_has_questions(real_bank, notebook):
    quiz = widgets.quiz(notebook=notebook, bank=real_bank)
    assert quiz.progress.max >= 1


def test_the_real_cheat_sheet_lists_every_rule(real_bank):
    text = render_markdown(real_bank)
    missing = [r.id for r in real_bank.rules.values() if " ".join(r.rule.split()) not in text]
    assert not missing


def test_terminal_practice_on_the_real_bank_through_stdin(real_bank, repo_root, progress_file, key):
    session = engine.practice_session(real_bank, n=2, seed=1)
    answers = "".join(key.typed_right(item) + "\n" for item in session.items)
    result = subprocess.run(
        [sys.executable, "-m", "quizzes", "practice", "--n", "2", "--seed", "1"],
        input=answers,
        capture_output=True,
        text=True,
        cwd=repo_root,
        env={**os.environ, "QUIZ_PROGRESS_FILE": str(progress_file)},
        timeout=50,
    )
    assert result.returncode == 0, result.stderr
    assert "Results: 2 of 2 correct (100 %)" in result.stdout
    stored = Progress.load(progress_file)
    assert [stored.last_correct(it.question.id) for it in session.items] == [True, True]
