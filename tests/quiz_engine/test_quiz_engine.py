"""Selection, shuffling, grading, sessions and reports, on the fixture bank."""

from __future__ import annotations

import random

import pytest

from quizzes import engine
from quizzes.engine import NoQuestionsError, TimeUpError


def _ids(questions) -> list[str]:
    return [question.id for question in questions]


# --- loading and selection ---


def test_question_notebook_defaults_to_its_first_rules_notebook(fixture_bank):
    assert fixture_bank.question("fx-stream-001").notebook == "03"  # stream-first is nb 03
    assert fixture_bank.question("fx-edge-004").notebook == "06"  # problem-details first
    assert fixture_bank.question("fx-stream-003").notebook == "01"  # set explicitly


def test_exhibit_is_kept_and_questions_without_one_have_none(fixture_bank):
    assert fixture_bank.question("fx-stream-003").exhibit.startswith("event: token")
    assert fixture_bank.question("fx-stream-001").exhibit is None


def test_filter_by_rule_returns_every_question_naming_it(fixture_bank):
    assert _ids(fixture_bank.filter(rule="trap-model-timeouts")) == [
        "fx-edge-001",
        "fx-stream-002",
    ]


def test_filter_by_skill_matches_exact_and_prefix(fixture_bank):
    assert set(_ids(fixture_bank.filter(skill="2.4.1"))) == {"fx-edge-002", "fx-edge-004"}
    assert len(fixture_bank.filter(skill="2.4")) == 7
    assert fixture_bank.filter(skill="2.4.9") == []


def test_filter_by_notebook_accepts_a_number(fixture_bank):
    assert _ids(fixture_bank.filter(notebook=3)) == _ids(fixture_bank.filter(notebook="03"))
    assert set(_ids(fixture_bank.filter(notebook="03"))) == {"fx-stream-001", "fx-stream-002"}


def test_filters_combine(fixture_bank):
    assert _ids(fixture_bank.filter(rule="stream-first", notebook="01")) == ["fx-stream-003"]


def test_unknown_rule_is_an_error_with_a_suggestion(fixture_bank):
    with pytest.raises(ValueError, match="Did you mean 'stream-first'"):
        fixture_bank.filter(rule="stream-frist")


def test_unknown_notebook_is_an_error(fixture_bank):
    with pytest.raises(ValueError, match="notebook '42'"):
        fixture_bank.filter(notebook=42)


def test_empty_selection_says_what_was_asked(fixture_bank):
    with pytest.raises(NoQuestionsError, match=r"skill='9\.9\.9'.*Skills in the bank: 2\.4\.1"):
        fixture_bank.select(skill="9.9.9")


def test_same_seed_selects_same_questions_in_same_order(fixture_bank):
    first = _ids(fixture_bank.select(n=4, seed=7))
    assert first == _ids(fixture_bank.select(n=4, seed=7))
    assert len(first) == 4 and len(set(first)) == 4
    orders = {tuple(_ids(fixture_bank.select(seed=seed))) for seed in range(10)}
    assert len(orders) > 1, "different seeds should give different orders"


def test_n_larger_than_the_bank_gives_every_question_once(fixture_bank):
    assert sorted(_ids(fixture_bank.select(n=100, seed=1))) == sorted(fixture_bank.question_ids)


def test_questions_per_rule_counts_each_naming(fixture_bank):
    assert fixture_bank.questions_per_rule() == {
        "stream-first": 3,
        "trap-model-timeouts": 2,
        "ws-idle-timeout": 2,
        "problem-details": 2,
    }


# --- shuffling and grading ---


def test_option_shuffle_is_deterministic_with_a_seed(fixture_bank):
    question = fixture_bank.question("fx-edge-003")
    first = engine.shuffle_options(question, random.Random(3))
    assert first.order == engine.shuffle_options(question, random.Random(3)).order
    assert sorted(first.order) == list(range(6))
    orders = {engine.shuffle_options(question, random.Random(s)).order for s in range(20)}
    assert len(orders) > 1


def test_grading_follows_the_shuffle(fixture_bank):
    question = fixture_bank.question("fx-stream-001")
    for seed in range(20):
        item = engine.shuffle_options(question, random.Random(seed))
        (position,) = item.correct
        assert (
            item.options[position].text
            == "Stream the tokens to the client as the model produces them."
        )
        assert item.grade({position})
        assert not item.grade({(position + 1) % 4})
        # the authored index of the correct option is 0: the shown position follows `order`
        assert item.order[position] == 0


def test_multiple_response_is_all_or_nothing(fixture_bank):
    item = engine.shuffle_options(fixture_bank.question("fx-edge-003"), random.Random(0))
    right = sorted(item.correct)
    wrong = next(i for i in range(6) if i not in item.correct)
    assert len(right) == 3
    assert item.grade(right)
    assert not item.grade(right[:2]), "two of three correct scores nothing"
    assert not item.grade(right + [wrong]), "all correct plus a wrong one scores nothing"
    assert not item.grade(right[:2] + [wrong])


def test_selection_problem_explains_an_incomplete_answer(fixture_bank):
    single = engine.shuffle_options(fixture_bank.question("fx-edge-001"), random.Random(0))
    multiple = engine.shuffle_options(fixture_bank.question("fx-stream-002"), random.Random(0))
    assert single.selection_problem([]) == "Choose one option."
    assert single.selection_problem([0, 1]) == "Choose exactly one option."
    assert single.selection_problem([4]) == "There is no option 5: the options are numbered 1 to 4."
    assert single.selection_problem([2]) is None
    assert multiple.selection_problem([1]) == "Choose exactly two options (you chose 1)."
    assert multiple.selection_problem([1, 1]) == "Each option can be chosen only once."
    assert multiple.selection_problem([0, 3]) is None


# --- sessions and reports ---


def test_practice_session_is_reproducible_and_grades_shown_positions(fixture_bank):
    one = engine.practice_session(fixture_bank, n=3, seed=5)
    two = engine.practice_session(fixture_bank, n=3, seed=5)
    assert [(i.question.id, i.order) for i in one.items] == [
        (i.question.id, i.order) for i in two.items
    ]
    answer = one.submit(one.current.correct)
    assert answer.correct
    assert answer.question_id == one.items[0].question.id


def test_practice_report_counts_answered_questions_by_rule_and_skill(fixture_bank, key):
    session = engine.practice_session(fixture_bank, rule="stream-first", seed=1)
    while (item := session.current) is not None:
        if item.question.id == "fx-stream-002":
            session.submit(key.wrong(item))
        else:
            session.submit(item.correct)
        session.next()
    report = session.report()
    assert (report.overall.correct, report.overall.total, report.overall.percent) == (2, 3, 67)
    assert report.by_rule["stream-first"] == engine.Tally(correct=2, total=3)
    assert report.by_rule["trap-model-timeouts"] == engine.Tally(correct=0, total=1)
    assert report.by_skill["2.4.3"] == engine.Tally(correct=0, total=1)
    assert report.by_skill["2.4.2"] == engine.Tally(correct=2, total=3)
    assert list(report.by_rule)[0] == "trap-model-timeouts", "weakest rule first"


def test_practice_stopped_early_reports_only_what_was_answered(fixture_bank):
    session = engine.practice_session(fixture_bank, n=5, seed=2)
    session.submit(session.current.correct)
    report = session.finish()
    assert (report.overall.correct, report.overall.total, report.unanswered) == (1, 1, 0)


def test_a_question_cannot_be_answered_twice(fixture_bank):
    session = engine.practice_session(fixture_bank, n=2, seed=2)
    session.submit(session.current.correct)
    with pytest.raises(RuntimeError, match="already answered"):
        session.submit(session.current.correct)


def test_exam_accepts_answers_before_the_deadline_and_refuses_them_after(fixture_bank, clock):
    session = engine.exam_session(fixture_bank, n=4, minutes=10, seed=3, clock=clock)
    assert not session.shows_feedback
    assert session.seconds_left() == 600
    clock.advance(599)
    assert session.submit(session.current.correct).correct
    session.next()
    clock.advance(1)  # exactly at the deadline: too late
    with pytest.raises(TimeUpError):
        session.submit(session.current.correct)
    assert session.finished and session.current is None
    report = session.report()
    assert report.time_up
    assert (report.overall.correct, report.overall.total, report.unanswered) == (1, 4, 3)
    assert report.overall.percent == 25


def test_exam_unanswered_questions_count_as_wrong(fixture_bank, clock, key):
    session = engine.exam_session(fixture_bank, n=3, minutes=30, seed=1, clock=clock)
    session.next()  # skip the first
    session.submit(session.current.correct)
    session.next()
    session.submit(key.wrong(session.current))
    session.next()
    report = session.report()
    assert [r.answer is None for r in report.results] == [True, False, False]
    assert (report.overall.correct, report.overall.total, report.unanswered) == (1, 3, 1)
    assert not report.time_up


def test_exam_deadline_ends_the_session_on_next(fixture_bank, clock):
    session = engine.exam_session(fixture_bank, n=3, minutes=1, seed=1, clock=clock)
    clock.advance(61)
    assert session.next() is None
    assert session.finished


def test_exam_draws_distinct_questions_from_the_whole_bank(fixture_bank, clock):
    session = engine.exam_session(fixture_bank, n=20, seed=4, clock=clock)
    ids = [item.question.id for item in session.items]
    assert sorted(ids) == sorted(fixture_bank.question_ids)


def test_review_session_keeps_the_queue_order_and_skips_unknown_ids(fixture_bank):
    session = engine.review_session(fixture_bank, ["fx-edge-002", "gone-001", "fx-stream-001"])
    assert [item.question.id for item in session.items] == ["fx-edge-002", "fx-stream-001"]
    with pytest.raises(NoQuestionsError):
        engine.review_session(fixture_bank, [])


@pytest.mark.parametrize(
    ("correct", "total", "percent"), [(1, 8, 13), (2, 3, 67), (1, 3, 33), (0, 5, 0), (0, 0, 0)]
)
def test_percent_rounds_half_up(correct, total, percent):
    assert engine.Tally(correct, total).percent == percent


def test_report_has_no_scaled_score(fixture_bank):
    session = engine.practice_session(fixture_bank, n=1, seed=1)
    session.submit(session.current.correct)
    fields = set(vars(session.report()))
    assert not {name for name in fields if "scale" in name or "score" in name}
