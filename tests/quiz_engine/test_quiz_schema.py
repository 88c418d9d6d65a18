"""A bad entry in the quiz data fails loading, and the message names the file and the id."""

from __future__ import annotations

import pytest

from quizzes.schema import BankError


def _expect_error(editable_bank, *fragments: str) -> str:
    with pytest.raises(BankError) as caught:
        editable_bank.load()
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    return message


def test_fixture_bank_is_valid(fixture_bank):
    assert len(fixture_bank.questions) == 7
    assert set(fixture_bank.rules) == {
        "stream-first",
        "trap-model-timeouts",
        "ws-idle-timeout",
        "problem-details",
    }


def test_single_answer_question_with_two_correct_options_names_file_and_id(editable_bank):
    def two_correct(question):
        question["options"][1]["correct"] = True

    editable_bank.edit_question("bank/edge.yaml", "fx-edge-001", two_correct)
    _expect_error(
        editable_bank,
        "quizzes/bank/edge.yaml: question fx-edge-001: single-answer question has 2 correct",
    )


def test_single_answer_question_needs_exactly_four_options(editable_bank):
    editable_bank.edit_question("bank/edge.yaml", "fx-edge-002", lambda q: q["options"].pop())
    _expect_error(editable_bank, "question fx-edge-002: single-answer question has 3 options")


def test_multiple_response_needs_five_options(editable_bank):
    def four_options(question):
        question["options"] = [o for o in question["options"] if o["correct"]] + [
            o for o in question["options"] if not o["correct"]
        ][:1]

    editable_bank.edit_question("bank/streaming.yaml", "fx-stream-002", four_options)
    _expect_error(
        editable_bank,
        "quizzes/bank/streaming.yaml: question fx-stream-002: multiple-response question has 3 "
        "options",
    )


def test_multiple_response_needs_two_correct_options(editable_bank):
    def one_correct(question):
        question["options"][1]["correct"] = False
        question["choose"] = 1

    editable_bank.edit_question("bank/streaming.yaml", "fx-stream-002", one_correct)
    _expect_error(editable_bank, "question fx-stream-002: multiple-response question has 1 correct")


def test_choose_must_equal_the_number_of_correct_options(editable_bank):
    editable_bank.edit_question("bank/edge.yaml", "fx-edge-003", lambda q: q.update(choose=2))
    _expect_error(editable_bank, "question fx-edge-003: choose is 2 but 3 options are correct")


def test_multiple_response_stem_says_how_many_to_choose(editable_bank):
    def no_instruction(question):
        question["stem"] = question["stem"].replace("(Choose three.)", "")

    editable_bank.edit_question("bank/edge.yaml", "fx-edge-003", no_instruction)
    _expect_error(editable_bank, "question fx-edge-003: the stem must say '(Choose three.)'")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda q: q.update(colour="blue"), "'colour' was unexpected"),
        (lambda q: q.update(type="ranking"), "'ranking' is not one of"),
        (lambda q: q.update(type="ordering"), "'items' is a required property"),
        (lambda q: q.pop("explanation"), "'explanation' is a required property"),
        (lambda q: q.update(rules=[]), "(at rules)"),
        (lambda q: q["options"][0].pop("feedback"), "(at options/0)"),
        (lambda q: q.update(notebook="12"), "(at notebook)"),
        (lambda q: q.update(skills=["2.4"]), "(at skills/0)"),
    ],
)
def test_schema_violations_name_file_and_question(editable_bank, change, fragment):
    editable_bank.edit_question("bank/edge.yaml", "fx-edge-001", change)
    _expect_error(editable_bank, "quizzes/bank/edge.yaml: question fx-edge-001:", fragment)


def test_question_without_id_is_named_by_position(editable_bank):
    editable_bank.edit_question("bank/edge.yaml", "fx-edge-002", lambda q: q.pop("id"))
    _expect_error(editable_bank, "quizzes/bank/edge.yaml: question #2:", "'id' is a required")


def test_question_ids_are_unique_across_files(editable_bank):
    def reuse_id(question):
        question["id"] = "fx-stream-001"

    editable_bank.edit_question("bank/edge.yaml", "fx-edge-001", reuse_id)
    _expect_error(
        editable_bank,
        "question fx-stream-001: id already used in quizzes/bank/",
    )


def test_question_naming_an_unknown_rule_fails(editable_bank):
    editable_bank.edit_question(
        "bank/edge.yaml", "fx-edge-001", lambda q: q.update(rules=["no-such-rule"])
    )
    _expect_error(
        editable_bank,
        "quizzes/bank/edge.yaml: question fx-edge-001: names rule 'no-such-rule', not in rules",
    )


def test_duplicate_stem_is_found_despite_case_and_whitespace(editable_bank):
    original = editable_bank.read("bank/edge.yaml")["questions"][0]["stem"]

    def copy_stem(question):
        question["stem"] = "  " + original.upper().replace(" ", "\n   ") + "\n"

    editable_bank.edit_question("bank/streaming.yaml", "fx-stream-001", copy_stem)
    _expect_error(
        editable_bank,
        "question fx-stream-001: same stem as quizzes/bank/edge.yaml: question fx-edge-001",
    )


def test_yaml_syntax_error_names_the_file(editable_bank):
    (editable_bank.root / "bank" / "broken.yaml").write_text("questions: [\n", encoding="utf-8")
    _expect_error(editable_bank, "quizzes/bank/broken.yaml: not valid YAML")


def test_problems_in_several_files_are_all_reported(editable_bank):
    editable_bank.edit_question("bank/edge.yaml", "fx-edge-001", lambda q: q.update(choose=2))
    editable_bank.edit_question("bank/streaming.yaml", "fx-stream-001", lambda q: q.pop("stem"))
    message = _expect_error(editable_bank, "fx-edge-001", "fx-stream-001")
    assert len(message.splitlines()) >= 2


def test_fact_rule_must_cite_a_source(editable_bank):
    document = editable_bank.read("rules.yaml")
    (fact,) = [r for r in document["rules"] if r["kind"] == "fact"]
    fact.pop("sources")
    editable_bank.write("rules.yaml", document)
    _expect_error(editable_bank, "quizzes/rules.yaml: rule ws-idle-timeout:", "sources")


def test_rule_ids_are_unique(editable_bank):
    document = editable_bank.read("rules.yaml")
    document["rules"].append(dict(document["rules"][0]))
    editable_bank.write("rules.yaml", document)
    _expect_error(editable_bank, "quizzes/rules.yaml: rule stream-first: rule id used twice")


def test_decision_table_rows_match_the_columns(editable_bank):
    document = editable_bank.read("rules.yaml")
    document["decision_table"]["rows"].append(["Only one cell"])
    editable_bank.write("rules.yaml", document)
    _expect_error(editable_bank, "quizzes/rules.yaml: decision_table row 3: has 1 cells")


def test_missing_rules_file_is_reported(editable_bank):
    (editable_bank.root / "rules.yaml").unlink()
    _expect_error(editable_bank, "quizzes/rules.yaml: cannot read the file")
