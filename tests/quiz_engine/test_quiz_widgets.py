"""The notebook widgets, driven headlessly: set `.choices.value`, click, read the HTML."""

from __future__ import annotations

import html

import ipywidgets
import pytest

from quizzes import progress as progress_module
from quizzes import widgets
from quizzes.progress import Progress


def _answer(widget, chosen: tuple[int, ...]) -> None:
    """Tick the options like a learner would, then press Submit."""
    multiple = isinstance(widget.choices, widgets.CheckboxGroup)
    widget.choices.value = chosen if multiple else chosen[0]
    widget.submit.click()


def test_public_one_liners_are_importable_from_the_package():
    from quizzes import exam, flashcards, quiz, review, show_cheatsheet

    assert quiz is widgets.quiz and exam is widgets.exam and review is widgets.review
    assert flashcards is widgets.flashcards and show_cheatsheet is widgets.show_cheatsheet


def test_practice_gives_feedback_after_each_answer_and_a_summary_at_the_end(
    fixture_bank, progress_file, key
):
    quiz = widgets.quiz(rule="stream-first", seed=2, bank=fixture_bank)
    assert isinstance(quiz, ipywidgets.VBox)
    assert quiz.progress.max == 3 and quiz.progress.value == 0
    assert quiz.next.disabled, "practice waits for an answer before Next"

    answered = []
    while (item := quiz.session.current) is not None:
        widget_kind = ipywidgets.RadioButtons
        if item.question.is_multiple:
            widget_kind = widgets.CheckboxGroup
        assert isinstance(quiz.choices, widget_kind)
        first = item.question.id == quiz.session.items[0].question.id
        _answer(quiz, key.wrong(item) if first else key.right(item))
        answered.append((item.question.id, not first))
        if first:
            assert "Not quite" in quiz.feedback.value
            assert f"The answer is {widgets._letters(item.correct)}" in quiz.feedback.value
        else:
            assert "Correct." in quiz.feedback.value
        assert html.escape(item.question.explanation) in quiz.feedback.value
        assert html.escape(fixture_bank.rules["stream-first"].rule) in quiz.feedback.value
        assert quiz.choices.disabled and quiz.submit.disabled and not quiz.next.disabled
        assert quiz.progress.value == len(answered)
        quiz.next.click()

    assert "<table" in quiz.summary.value
    assert "Results: 2 of 3 correct (67 %)" in quiz.summary.value
    assert "stream-first" in quiz.summary.value and "2.4.2" in quiz.summary.value
    assert quiz.question_area.layout.display == "none"

    stored = Progress.load(progress_file)
    for question_id, correct in answered:
        assert stored.last_correct(question_id) is correct
    assert stored.sessions[-1]["percent"] == 67


def test_submit_without_a_choice_asks_for_one_and_grades_nothing(fixture_bank, progress_file):
    quiz = widgets.quiz(notebook="01", bank=fixture_bank)
    assert quiz.choices.value is None, "no option is preselected"
    quiz.submit.click()
    assert "Choose one option." in quiz.feedback.value
    assert quiz.session.answers == {} and quiz.progress.value == 0
    assert not progress_file.exists()


def test_multiple_response_needs_the_stated_number_of_checks(fixture_bank, key):
    quiz = widgets.quiz(
        rule="problem-details", skill="2.4.4", notebook="06", seed=0, bank=fixture_bank
    )
    while not quiz.session.current.question.is_multiple:
        _answer(quiz, key.right(quiz.session.current))
        quiz.next.click()
    item = quiz.session.current
    _answer(quiz, key.right(item)[:2])
    assert "Choose exactly three options (you chose 2)." in quiz.feedback.value
    _answer(quiz, key.right(item))
    assert "Correct." in quiz.feedback.value


def test_multiple_response_partly_right_is_wrong(fixture_bank, key):
    quiz = widgets.quiz(rule="trap-model-timeouts", notebook="03", bank=fixture_bank)
    item = quiz.session.current
    assert item.question.id == "fx-stream-002"
    _answer(quiz, key.wrong(item))
    assert "Not quite" in quiz.feedback.value
    assert quiz.session.answers[0].correct is False


def test_exhibit_is_shown_in_a_pre_block(fixture_bank):
    quiz = widgets.quiz(notebook="01", bank=fixture_bank)
    assert (
        "<pre>event: token\ndata: {&quot;text&quot;: &quot;Hel&quot;}</pre>" in quiz.question.value
    )


def test_exam_gives_no_feedback_until_the_end(fixture_bank, progress_file, clock, key):
    exam = widgets.exam(n=4, minutes=30, seed=1, bank=fixture_bank, clock=clock)
    assert "30 min 0 s left" in exam.header.value
    assert not exam.next.disabled, "the exam lets you skip a question"
    results = []
    for number in range(4):
        item = exam.session.current
        right = number % 2 == 0
        _answer(exam, key.right(item) if right else key.wrong(item))
        results.append((item.question.id, right))
        assert exam.feedback.value == "<p>Answer recorded.</p>"
        assert exam.summary.value == ""
        assert not Progress.load(progress_file).data["questions"], "nothing saved before the end"
        exam.next.click()
    assert "Exam results: 2 of 4 correct (50 %)" in exam.summary.value
    assert "Question by question" in exam.summary.value
    assert "scaled" not in exam.summary.value.lower()
    stored = Progress.load(progress_file)
    for question_id, right in results:
        assert stored.last_correct(question_id) is right
    assert stored.sessions[-1]["mode"] == "exam"


def test_exam_refuses_an_answer_after_the_deadline(fixture_bank, progress_file, clock, key):
    exam = widgets.exam(n=3, minutes=5, seed=2, bank=fixture_bank, clock=clock)
    _answer(exam, key.right(exam.session.current))
    exam.next.click()
    clock.advance(5 * 60)
    _answer(exam, key.right(exam.session.current))
    assert "Time is up" in exam.summary.value
    assert "Exam results: 1 of 3 correct (33 %)" in exam.summary.value
    assert "2 unanswered, counted as wrong." in exam.summary.value
    assert len(exam.session.answers) == 1
    assert sorted(Progress.load(progress_file).data["questions"]) == sorted(
        item.question.id for item in exam.session.items
    )


def test_exam_finish_button_ends_early(fixture_bank, clock):
    exam = widgets.exam(n=3, seed=2, bank=fixture_bank, clock=clock)
    exam.finish.click()
    assert "Exam results: 0 of 3 correct (0 %)" in exam.summary.value
    exam.next.click()  # a click after the end changes nothing
    assert exam.report.overall.total == 3


def test_review_starts_with_the_question_missed_last_time(fixture_bank, progress_file, key):
    first = widgets.quiz(rule="ws-idle-timeout", notebook="07", bank=fixture_bank)
    missed = first.session.current
    _answer(first, key.wrong(missed))
    review = widgets.review(n=3, seed=0, bank=fixture_bank)
    assert review.session.mode == "review"
    assert review.session.items[0].question.id == missed.question.id
    assert len(review.session.items) == 3
    _answer(review, key.right(review.session.current))
    assert "Correct." in review.feedback.value
    assert Progress.load(progress_file).last_correct(missed.question.id) is True


def test_flashcards_flip_between_hook_and_rule(fixture_bank):
    cards = widgets.flashcards(bank=fixture_bank)
    first = fixture_bank.rules["stream-first"]
    assert html.escape(first.hook) in cards.card.value
    assert html.escape(first.rule) not in cards.card.value
    cards.flip.click()
    assert html.escape(first.rule) in cards.card.value
    assert html.escape(first.why) in cards.card.value
    assert cards.previous.disabled
    cards.next.click()
    assert cards.progress.value == 2 and not cards.showing_back
    assert html.escape(fixture_bank.rules["trap-model-timeouts"].hook) in cards.card.value
    for _ in range(5):
        cards.next.click()
    assert cards.next.disabled and cards.progress.value == 4


def test_flashcards_for_one_rule_or_one_kind(fixture_bank):
    assert [r.id for r in widgets.flashcards("ws-idle-timeout", bank=fixture_bank).rules] == [
        "ws-idle-timeout"
    ]
    card = widgets.flashcards(kind="fact", bank=fixture_bank)
    card.flip.click()
    assert "apigw-ws-quotas" in card.card.value
    with pytest.raises(ValueError, match="Did you mean 'stream-first'"):
        widgets.flashcards("stream-firs", bank=fixture_bank)


def test_practice_ended_before_any_answer_says_so(fixture_bank, progress_file):
    quiz = widgets.quiz(notebook="03", bank=fixture_bank)
    quiz.finish.click()
    assert quiz.summary.value == "<h3>No questions answered.</h3>"
    assert not progress_file.exists()


def test_cheatsheet_widget_shows_the_rules(fixture_bank):
    sheet = widgets.show_cheatsheet(fixture_bank)
    assert "Traps the exam baits" in sheet.value and "<table>" in sheet.value


def test_a_progress_file_that_cannot_be_written_is_reported_not_fatal(
    fixture_bank, monkeypatch, key
):
    def disk_full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(progress_module, "_write_atomically", disk_full)
    quiz = widgets.quiz(notebook="01", bank=fixture_bank)
    _answer(quiz, key.right(quiz.session.current))
    assert "Correct." in quiz.feedback.value
    assert "Progress could not be saved" in quiz.feedback.value
    assert "No space left on device" in quiz.feedback.value
