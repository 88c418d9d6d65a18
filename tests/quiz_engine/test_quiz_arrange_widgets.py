"""Ordering and matching in the notebook widgets, the lab-check set kept out of exam mode, and a
notebook's quiz cell asking five rotating questions. Driven headlessly: set `.choices.value`
(one dropdown per place or per prompt), click, read the HTML."""

from __future__ import annotations

import html
import io
import os
import re
import subprocess
import sys

import pytest

from quizzes import arrange_widgets, cli, engine, widgets
from quizzes.progress import Progress


def _one(kinds_bank, question_id, mode=engine.PRACTICE, seed=3):
    session = engine.session_of(kinds_bank, [question_id], mode, seed)
    return widgets.QuizWidget(session, kinds_bank, Progress.load())


def test_an_ordering_question_has_one_dropdown_per_place_listing_every_item(kinds_bank):
    quiz = _one(kinds_bank, "kx-order-001")
    item = quiz.session.current
    assert isinstance(quiz.choices, arrange_widgets.OrderingChoices)
    dropdowns = quiz.choices.rows.dropdowns
    assert len(dropdowns) == 4
    for dropdown in dropdowns:
        assert (dropdown.value, dropdown.label) == (None, "(choose)"), "nothing preselected"
        assert [label for label, _ in dropdown.options[1:]] == [
            f"{n}. {text}" for n, text in enumerate(item.shown_items, start=1)
        ]
    for text in item.shown_items:
        assert html.escape(text) in quiz.choices.listing.value


def test_an_incomplete_order_is_explained_and_not_graded(kinds_bank):
    quiz = _one(kinds_bank, "kx-order-001")
    quiz.choices.value = (0, 1, None, None)
    quiz.submit.click()
    assert "Put all 4 items in order (you placed 2)." in quiz.feedback.value
    assert quiz.session.answers == {} and not quiz.choices.disabled


def test_a_wrong_order_gets_the_right_order_as_feedback(kinds_bank, progress_file):
    quiz = _one(kinds_bank, "kx-order-001")
    item = quiz.session.current
    quiz.choices.value = tuple(reversed(item.correct_response))
    quiz.submit.click()
    feedback = quiz.feedback.value
    assert "Not quite." in feedback and "The right order:" in feedback
    listed = re.findall(r"<li>&#100(?:03|07); (.*?)(?: <i>.*?</i>)?</li>", feedback)
    assert listed == [html.escape(text) for text in item.question.items], "in the right order"
    assert feedback.count("&#10007;") >= 2, "the misplaced items are marked"
    assert quiz.choices.disabled
    assert Progress.load(progress_file).last_correct("kx-order-001") is False


def test_a_matching_question_has_one_dropdown_per_prompt(kinds_bank, progress_file):
    quiz = _one(kinds_bank, "kx-match-001")
    item = quiz.session.current
    assert isinstance(quiz.choices, arrange_widgets.MatchingChoices)
    rows = quiz.choices.rows.children
    assert len(rows) == 3
    for row, pair in zip(rows, item.shown_prompts, strict=True):
        prompt, dropdown = row.children
        assert html.escape(pair.prompt) in prompt.value
        assert [label for label, _ in dropdown.options[1:]] == [
            f"{engine.answer_letter(i)}. {text}" for i, text in enumerate(item.shown_answers)
        ]
    quiz.choices.value = item.correct_response
    quiz.submit.click()
    assert "Correct." in quiz.feedback.value and "The right pairs:" in quiz.feedback.value
    for pair in item.question.pairs:
        assert f"{html.escape(pair.prompt)} &rarr; <b>{html.escape(pair.answer)}</b>" in (
            quiz.feedback.value
        )
    assert Progress.load(progress_file).last_correct("kx-match-001") is True


def test_the_exam_report_shows_the_right_order_and_pairs_in_words(kinds_bank):
    session = engine.session_of(kinds_bank, ["kx-order-001", "kx-match-001"], engine.EXAM, 1)
    exam = widgets.QuizWidget(session, kinds_bank, Progress.load())
    order = exam.session.current
    exam.choices.value = order.correct_response
    exam.submit.click()
    assert exam.feedback.value == "<p>Answer recorded.</p>"
    exam.next.click()
    match = exam.session.current
    wrong = list(match.correct_response)
    wrong[0], wrong[1] = wrong[1], wrong[0]
    exam.choices.value = tuple(wrong)
    exam.submit.click()
    exam.next.click()
    summary = exam.summary.value
    assert "Exam results: 1 of 2 correct (50 %)" in summary
    assert "<td>stream-limits</td>" in summary, "the report has a per-topic table"
    steps = "".join(f"<li>{html.escape(text)}</li>" for text in order.question.items)
    assert f"Correct: <ol>{steps}</ol>" in summary
    for pair in match.question.pairs:
        assert f"{html.escape(pair.prompt)} &rarr; <b>{html.escape(pair.answer)}</b>" in summary


def test_exam_mode_never_asks_a_lab_check_question(kinds_bank, clock):
    exam = widgets.exam(n=10, seed=1, bank=kinds_bank, clock=clock)
    asked = {item.question.id for item in exam.session.items}
    assert asked == {"kx-order-001", "kx-match-001", "kx-exam-001"}


def test_the_lab_check_set_is_reachable_in_the_widgets(kinds_bank):
    quiz = widgets.quiz(question_set="lab-check", bank=kinds_bank)
    assert [item.question.id for item in quiz.session.items] == ["kx-lab-001"]


def test_the_lab_check_set_is_reachable_in_the_terminal(
    repo_root, progress_file, kinds_bank, kinds_root
):
    session = engine.practice_session(kinds_bank, seed=4, question_set="lab-check")
    (item,) = session.items
    result = subprocess.run(
        [sys.executable, "-m", "quizzes", "practice", "--set", "lab-check", "--seed", "4"]
        + ["--bank", str(kinds_root)],
        input=engine.typed_response(item, item.correct_response) + "\n",
        capture_output=True,
        text=True,
        cwd=repo_root,
        env={**os.environ, "QUIZ_PROGRESS_FILE": str(progress_file)},
        timeout=50,
    )
    assert result.returncode == 0, result.stderr
    assert "Question 1 of 1 (practice)" in result.stdout
    assert "Results: 1 of 1 correct (100 %)" in result.stdout


def test_the_terminal_exam_never_asks_a_lab_check_question(kinds_root, clock):
    out = io.StringIO()
    cli.main(
        ["exam", "--n", "10", "--seed", "1", "--bank", str(kinds_root)],
        stdin=io.StringIO(""),
        out=out,
        clock=clock,
    )
    assert "kx-lab-001" not in out.getvalue()
    assert "3 unanswered, counted as wrong." in out.getvalue()


# --- A notebook's quiz cell: five rotating questions --------------------------------------------


def test_a_quiz_cell_asks_five_questions_by_default_and_all_with_n_none(fixture_bank):
    assert len(fixture_bank.filter(skill="2.4")) == 7
    assert widgets.quiz(skill="2.4", seed=1, bank=fixture_bank).progress.max == 5
    assert widgets.quiz(skill="2.4", n=None, seed=1, bank=fixture_bank).progress.max == 7


def test_the_next_run_of_a_quiz_cell_asks_the_questions_not_yet_seen_first(fixture_bank, key):
    first = widgets.quiz(skill="2.4", seed=1, bank=fixture_bank)
    while (item := first.session.current) is not None:
        first.choices.value = key.right(item) if item.question.is_multiple else key.right(item)[0]
        first.submit.click()
        first.next.click()
    seen = {item.question.id for item in first.session.items}
    again = widgets.quiz(skill="2.4", seed=1, bank=fixture_bank)
    unseen = set(fixture_bank.question_ids) - seen
    assert {item.question.id for item in again.session.items[:2]} == unseen
    assert again.progress.max == 5


@pytest.mark.parametrize("notebook", ["03", "05"])
def test_the_notebook_quiz_cells_stay_short(fixture_bank, notebook):
    quiz = widgets.quiz(notebook=notebook, bank=fixture_bank)
    assert quiz.progress.max <= widgets.QUIZ_SAMPLE
