"""Ordering and matching questions: validated with errors naming file and id, shuffled for
display, graded all or nothing, and answered in the terminal as "3 1 2" or "1b 2a 3c".
Right answers are computed from the shuffle, never hard-coded."""

from __future__ import annotations

import random

import pytest

from quizzes import cli, engine
from quizzes.schema import BankError


def _shuffled(bank, question_id, seed=0):
    return engine.shuffle_options(bank.question(question_id), random.Random(seed))


def _error(editable) -> str:
    with pytest.raises(BankError) as caught:
        editable.load()
    return str(caught.value)


# --- Loading and validation ------------------------------------------------------------------


def test_the_new_types_load_with_their_items_pairs_sets_and_topics(kinds_bank):
    order = kinds_bank.question("kx-order-001")
    match = kinds_bank.question("kx-match-001")
    assert order.items[0] == "The client sends the request."
    assert [pair.answer for pair in match.pairs] == [
        "First-token timeout",
        "Idle timeout",
        "Total stream timeout",
    ]
    assert match.answers[-1] == "Request size limit", "distractors come after the real answers"
    assert (order.set, match.topics) == ("exam", ("stream-limits",))
    assert kinds_bank.question("kx-lab-001").set == "lab-check"


def test_an_ordering_question_without_items_names_file_id_and_field(editable_kinds):
    editable_kinds.edit_question("bank/kinds.yaml", "kx-order-001", lambda q: q.pop("items"))
    message = _error(editable_kinds)
    assert "quizzes/bank/kinds.yaml: question kx-order-001: 'items' is a required property" in (
        message
    )


def test_an_ordering_question_needs_three_items(editable_kinds):
    editable_kinds.edit_question(
        "bank/kinds.yaml", "kx-order-001", lambda q: q.update(items=q["items"][:2])
    )
    assert "question kx-order-001: [" in _error(editable_kinds)
    assert "is too short (at items)" in _error(editable_kinds)


def test_an_ordering_item_written_twice_is_an_error(editable_kinds):
    def twice(question):
        question["items"][2] = {"text": question["items"][0]["text"].upper()}

    editable_kinds.edit_question("bank/kinds.yaml", "kx-order-001", twice)
    assert (
        "quizzes/bank/kinds.yaml: question kx-order-001: ordering item "
        "'THE CLIENT SENDS THE REQUEST.' appears twice"
    ) in _error(editable_kinds)


def test_options_on_an_ordering_question_are_refused(editable_kinds):
    editable_kinds.edit_question(
        "bank/kinds.yaml", "kx-order-001", lambda q: q.update(options=[], choose=1)
    )
    message = _error(editable_kinds)
    assert "question kx-order-001: Additional properties are not allowed" in message


def test_a_matching_prompt_without_an_answer_names_the_pair(editable_kinds):
    editable_kinds.edit_question(
        "bank/kinds.yaml", "kx-match-001", lambda q: q["pairs"][1].pop("answer")
    )
    assert "question kx-match-001: 'answer' is a required property (at pairs/1)" in _error(
        editable_kinds
    )


def test_a_distractor_that_is_also_an_answer_is_an_error(editable_kinds):
    editable_kinds.edit_question(
        "bank/kinds.yaml", "kx-match-001", lambda q: q.update(distractors=["idle timeout"])
    )
    assert (
        "question kx-match-001: distractor 'idle timeout' is also the answer to a prompt"
        in _error(editable_kinds)
    )


def test_a_prompt_written_twice_is_an_error(editable_kinds):
    def twice(question):
        question["pairs"][1]["prompt"] = question["pairs"][0]["prompt"]

    editable_kinds.edit_question("bank/kinds.yaml", "kx-match-001", twice)
    assert "question kx-match-001: matching prompt" in _error(editable_kinds)


def test_an_unknown_type_set_or_topic_is_named(editable_kinds):
    editable_kinds.edit_question("bank/kinds.yaml", "kx-exam-001", lambda q: q.update(type="sort"))
    assert "question kx-exam-001: 'sort' is not one of" in _error(editable_kinds)
    editable_kinds.edit_question(
        "bank/kinds.yaml", "kx-exam-001", lambda q: q.update(type="single", set="labcheck")
    )
    assert "question kx-exam-001: 'labcheck' is not one of ['exam', 'lab-check'] (at set)" in (
        _error(editable_kinds)
    )
    editable_kinds.edit_question(
        "bank/kinds.yaml",
        "kx-exam-001",
        lambda q: q.update(set="exam", topics=["sse-vs-websockets"]),
    )
    assert (
        "quizzes/bank/kinds.yaml: question kx-exam-001: names topic 'sse-vs-websockets', "
        "not in skills.yaml (did you mean 'sse-vs-websocket'?)"
    ) in _error(editable_kinds)


def test_two_prompts_may_share_an_answer_which_is_listed_once(editable_kinds):
    def shared(question):
        question["pairs"][2]["answer"] = question["pairs"][1]["answer"]

    editable_kinds.edit_question("bank/kinds.yaml", "kx-match-001", shared)
    question = editable_kinds.load().question("kx-match-001")
    assert question.answers == ("First-token timeout", "Idle timeout", "Request size limit")
    item = engine.shuffle_options(question, random.Random(3))
    assert item.grade(item.correct_response)


# --- Shuffling and grading -------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_an_ordering_question_is_never_shown_in_order(kinds_bank, seed):
    item = _shuffled(kinds_bank, "kx-order-001", seed)
    assert item.shown_items != kinds_bank.question("kx-order-001").items
    assert sorted(item.shown_items) == sorted(kinds_bank.question("kx-order-001").items)


def test_the_same_seed_shows_the_same_shuffle(kinds_bank):
    assert _shuffled(kinds_bank, "kx-match-001", 5) == _shuffled(kinds_bank, "kx-match-001", 5)


@pytest.mark.parametrize("seed", range(5))
def test_the_right_order_lists_the_shown_items_in_the_authored_order(kinds_bank, seed):
    item = _shuffled(kinds_bank, "kx-order-001", seed)
    in_order = tuple(item.shown_items[i] for i in item.correct_response)
    assert in_order == kinds_bank.question("kx-order-001").items
    assert item.grade(item.correct_response)


def test_ordering_is_all_or_nothing(kinds_bank):
    item = _shuffled(kinds_bank, "kx-order-001")
    right = list(item.correct_response)
    nearly = right[:2] + [right[3], right[2]]  # the last two swapped
    assert not item.grade(nearly)


@pytest.mark.parametrize("seed", range(5))
def test_the_right_matching_pairs_each_shown_prompt_with_its_answer(kinds_bank, seed):
    item = _shuffled(kinds_bank, "kx-match-001", seed)
    for pair, position in zip(item.shown_prompts, item.correct_response, strict=True):
        assert item.shown_answers[position] == pair.answer
    assert "Request size limit" in item.shown_answers
    assert item.grade(item.correct_response)


def test_matching_is_all_or_nothing(kinds_bank):
    item = _shuffled(kinds_bank, "kx-match-001")
    right = list(item.correct_response)
    right[0], right[1] = right[1], right[0]
    assert not item.grade(right)


def test_incomplete_answers_are_explained_not_graded(kinds_bank):
    order = _shuffled(kinds_bank, "kx-order-001")
    assert order.selection_problem([0, 1]) == "Put all 4 items in order (you placed 2)."
    assert order.selection_problem([0, 0, 1, 2]) == "Each item can be placed only once."
    assert order.selection_problem([0, 1, 2, 7]) == (
        "There is no item 8: the items are numbered 1 to 4."
    )
    match = _shuffled(kinds_bank, "kx-match-001")
    assert match.selection_problem([0, None, 1]) == (
        "Choose an answer for every prompt (1 of 3 still open)."
    )
    assert match.selection_problem([0, 1, 9]) == "There is no answer j: the answers are a to d."
    session = engine.session_of(kinds_bank, ["kx-order-001"], seed=0)
    with pytest.raises(ValueError, match="Put all 4 items in order"):
        session.submit([0, 1])
    assert session.answers == {}, "an incomplete order is not recorded"


def test_a_session_grades_and_reports_the_new_types(kinds_bank):
    session = engine.session_of(kinds_bank, ["kx-order-001", "kx-match-001"], seed=2)
    assert session.submit(session.current.correct_response).correct
    session.next()
    wrong = list(session.current.correct_response)
    wrong[0], wrong[2] = wrong[2], wrong[0]
    assert not session.submit(wrong).correct
    report = session.finish()
    assert (report.overall.correct, report.overall.total) == (1, 2)
    assert report.by_topic["stream-limits"].total == 2


# --- The terminal ----------------------------------------------------------------------------


def test_the_terminal_reads_an_order_as_item_numbers(kinds_bank):
    item = _shuffled(kinds_bank, "kx-order-001")
    typed = " ".join(str(i + 1) for i in item.correct_response)
    assert cli.parse_answer(typed, item) == (item.correct_response, None)
    assert cli.parse_answer(typed.replace(" ", ""), item) == (item.correct_response, None)
    assert cli.parse_answer("1 2 x 3", item) == (
        None,
        "'x' is not an item number: type numbers from 1 to 4.",
    )


def test_the_terminal_reads_matches_as_number_and_letter(kinds_bank):
    item = _shuffled(kinds_bank, "kx-match-001")
    letters = "abcd"
    typed = " ".join(f"{n}{letters[i]}" for n, i in enumerate(item.correct_response, start=1))
    reversed_typed = " ".join(reversed(typed.upper().split()))  # any order, any case
    assert cli.parse_answer(typed, item) == (item.correct_response, None)
    assert cli.parse_answer(reversed_typed, item) == (item.correct_response, None)
    assert cli.parse_answer("1a 1b 2c", item) == (None, "Prompt 1 is matched twice.")
    assert cli.parse_answer("a1", item)[1] == (
        "'a1' is not a prompt number and an answer letter, like 1b."
    )


def test_terminal_feedback_shows_the_right_order_and_the_right_pairs(kinds_bank):
    order = _shuffled(kinds_bank, "kx-order-001")
    wrong = tuple(reversed(order.correct_response))
    text = cli.feedback_text(order, wrong, kinds_bank)
    expected = "\n".join(
        f"  {place}. {item}"
        for place, item in enumerate(kinds_bank.question("kx-order-001").items, start=1)
    )
    assert "Not quite." in text
    # each line of the right order, marked where the learner put it elsewhere
    for place, item in enumerate(kinds_bank.question("kx-order-001").items, start=1):
        assert f"  {place}. {item}" in text
    assert expected.splitlines()[0] + " (you put it at 4)" in text

    match = _shuffled(kinds_bank, "kx-match-001")
    text = cli.feedback_text(match, match.correct_response, kinds_bank)
    assert text.startswith("Correct.")
    for pair in kinds_bank.question("kx-match-001").pairs:
        assert f"{pair.prompt} -> " in text and f". {pair.answer}" in text


def test_the_terminal_exam_report_lists_the_right_order_and_pairs(kinds_bank):
    session = engine.session_of(kinds_bank, ["kx-order-001", "kx-match-001"], engine.EXAM, 4)
    order = session.current
    session.submit(tuple(reversed(order.correct_response)))
    session.next()
    match = session.current
    session.submit(match.correct_response)
    text = cli.report_text(session.finish())
    reversed_order = " ".join(str(i + 1) for i in reversed(order.correct_response))
    right_order = " ".join(str(i + 1) for i in order.correct_response)
    assert f"kx-order-001: wrong (yours: {reversed_order}; correct: {right_order})" in text
    assert (
        f"kx-match-001: right (yours: {engine.typed_response(match, match.correct_response)};"
        in text
    )
    assert "     1. The client sends the request." in text
    assert "By topic (weakest first)" in text
