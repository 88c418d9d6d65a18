"""`python -m quizzes` driven through stdin. The right answers are computed through the engine
with the same seed, never hard-coded."""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys

import pytest

from quizzes import cli, engine
from quizzes.progress import Progress


def run_quizzes(args, stdin_text, repo_root, progress_file, bank_root=None):
    command = [sys.executable, "-m", "quizzes", *args]
    if bank_root is not None:
        command += ["--bank", str(bank_root)]
    return subprocess.run(
        command,
        input=stdin_text,
        capture_output=True,
        text=True,
        cwd=repo_root,
        env={**os.environ, "QUIZ_PROGRESS_FILE": str(progress_file)},
        timeout=50,
    )


def test_practice_through_stdin_grades_the_typed_numbers(
    fixture_root, fixture_bank, repo_root, progress_file, key
):
    session = engine.practice_session(fixture_bank, n=3, seed=1)
    first, second, third = session.items
    answers = [key.typed(first.correct), key.typed(key.wrong(second)), key.typed(third.correct)]
    result = run_quizzes(
        ["practice", "--n", "3", "--seed", "1"],
        "\n".join(answers) + "\n",
        repo_root,
        progress_file,
        fixture_root,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("Correct.") == 2
    assert f"Not quite. The answer is {', '.join(key.typed(second.correct).split(','))}." in out
    assert "Results: 2 of 3 correct (67 %)" in out
    for item in session.items:  # options printed as numbered in the engine's shuffled order
        for number, option in enumerate(item.options, start=1):
            assert f"  {number}. {option.text}" in out
    stored = Progress.load(progress_file)
    assert stored.last_correct(first.question.id) is True
    assert stored.last_correct(second.question.id) is False
    assert stored.sessions[-1]["correct"] == 2


def test_multiple_response_accepts_commas_or_spaces(fixture_bank):
    item = engine.shuffle_options(fixture_bank.question("fx-stream-002"), random.Random(0))
    a, b = sorted(item.correct)
    for text in (f"{a + 1},{b + 1}", f"{a + 1} {b + 1}", f" {b + 1} , {a + 1}\n"):
        chosen, problem = cli.parse_answer(text, item)
        assert problem is None and sorted(chosen) == [a, b]
        assert item.grade(chosen)
    assert cli.parse_answer(f"{a + 1}", item) == (None, "Choose exactly two options (you chose 1).")


def test_invalid_input_re_prompts_with_a_clear_message(
    fixture_root, fixture_bank, repo_root, progress_file, key
):
    session = engine.practice_session(fixture_bank, n=1, seed=4)
    item = session.items[0]
    count = len(item.options)
    lines = ["x", str(count + 1), "", key.typed(item.correct)]
    result = run_quizzes(
        ["practice", "--n", "1", "--seed", "4"],
        "\n".join(lines) + "\n",
        repo_root,
        progress_file,
        fixture_root,
    )
    assert result.returncode == 0, result.stderr
    assert f"'x' is not an option number: type numbers from 1 to {count}." in result.stdout
    assert (
        f"There is no option {count + 1}: the options are numbered 1 to {count}." in result.stdout
    )
    assert "Results: 1 of 1 correct (100 %)" in result.stdout


def test_end_of_input_stops_gracefully_with_the_report_so_far(
    fixture_root, fixture_bank, repo_root, progress_file, key
):
    session = engine.practice_session(fixture_bank, n=4, seed=3)
    result = run_quizzes(
        ["practice", "--n", "4", "--seed", "3"],
        key.typed(session.items[0].correct) + "\n",
        repo_root,
        progress_file,
        fixture_root,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "Stopped early: here is the report so far." in result.stdout
    assert "Results: 1 of 1 correct (100 %)" in result.stdout
    assert "Question 2 of 4" in result.stdout


def test_q_quits_like_end_of_input(fixture_root, repo_root, progress_file):
    result = run_quizzes(["practice", "--n", "2"], "q\n", repo_root, progress_file, fixture_root)
    assert result.returncode == 0
    assert "No questions answered." in result.stdout
    assert not progress_file.exists()


def test_exam_through_stdin_shows_results_only_at_the_end(
    fixture_root, fixture_bank, repo_root, progress_file, key
):
    session = engine.exam_session(fixture_bank, n=3, minutes=30, seed=2)
    answers = [key.typed(session.items[0].correct), key.typed(key.wrong(session.items[1]))]
    result = run_quizzes(
        ["exam", "--n", "3", "--minutes", "30", "--seed", "2"],
        "\n".join(answers) + "\n",  # the third question is left unanswered
        repo_root,
        progress_file,
        fixture_root,
    )
    assert result.returncode == 0, result.stderr
    before_results = result.stdout.split("Exam results")[0]
    assert "Correct." not in before_results and "Not quite" not in before_results
    assert before_results.count("Answer recorded.") == 2
    assert "Exam results: 1 of 3 correct (33 %)" in result.stdout
    assert "1 unanswered, counted as wrong." in result.stdout
    assert "Question by question" in result.stdout
    assert Progress.load(progress_file).last_correct(session.items[2].question.id) is False


class SlowLearner(io.StringIO):
    """stdin whose every line takes `seconds` on the fake clock to type."""

    def __init__(self, text, clock, seconds):
        super().__init__(text)
        self.clock, self.seconds = clock, seconds

    def readline(self, *args):
        self.clock.advance(self.seconds)
        return super().readline(*args)


def test_exam_answer_after_the_deadline_is_not_counted(fixture_root, fixture_bank, clock, key):
    session = engine.exam_session(fixture_bank, n=3, minutes=10, seed=5)
    answers = "\n".join(key.typed(item.correct) for item in session.items) + "\n"
    out = io.StringIO()
    code = cli.main(
        ["exam", "--n", "3", "--minutes", "10", "--seed", "5", "--bank", str(fixture_root)],
        stdin=SlowLearner(answers, clock, 400),
        out=out,
        clock=clock,
    )
    assert code == 0
    text = out.getvalue()
    assert "Time is up: that answer arrived after the deadline and was not counted." in text
    assert "Exam results: 1 of 3 correct (33 %)" in text
    assert "2 unanswered, counted as wrong." in text


def test_review_asks_the_missed_question_first(
    fixture_root, fixture_bank, repo_root, progress_file, key
):
    session = engine.practice_session(fixture_bank, n=2, seed=8)
    missed, right = session.items
    run_quizzes(
        ["practice", "--n", "2", "--seed", "8"],
        f"{key.typed(key.wrong(missed))}\n{key.typed(right.correct)}\n",
        repo_root,
        progress_file,
        fixture_root,
    )
    assert Progress.load(progress_file).last_correct(missed.question.id) is False
    review = engine.review_session(
        fixture_bank,
        Progress.load(progress_file).due_questions(
            question_ids=fixture_bank.question_ids, n=1, seed=0
        ),
        seed=0,
    )
    assert review.items[0].question.id == missed.question.id
    result = run_quizzes(
        ["review", "--n", "1", "--seed", "0"],
        key.typed(review.items[0].correct) + "\n",
        repo_root,
        progress_file,
        fixture_root,
    )
    assert result.returncode == 0, result.stderr
    assert "Question 1 of 1 (review)" in result.stdout
    assert missed.question.stem.splitlines()[0] in result.stdout
    assert "Results: 1 of 1 correct (100 %)" in result.stdout
    assert Progress.load(progress_file).last_correct(missed.question.id) is True


def test_a_bad_bank_exits_with_the_file_and_question_id(editable_bank, capsys):
    editable_bank.edit_question("bank/edge.yaml", "fx-edge-002", lambda q: q.update(choose=2))
    code = cli.main(["practice", "--bank", str(editable_bank.root)], stdin=io.StringIO(""))
    assert code == 2
    assert "quizzes/bank/edge.yaml: question fx-edge-002:" in capsys.readouterr().err


def test_an_unknown_rule_exits_with_a_suggestion(fixture_root, capsys):
    code = cli.main(["practice", "--rule", "stream-frist", "--bank", str(fixture_root)])
    assert code == 2
    assert "Did you mean 'stream-first'" in capsys.readouterr().err


def test_check_reports_coverage_per_rule(fixture_root):
    out = io.StringIO()
    code = cli.main(["check", "--bank", str(fixture_root)], out=out)
    text = out.getvalue()
    assert "7 questions (7 exam set, 0 lab-check), 4 rules: valid." in text
    assert "rule problem-details (rule): 2 questions, needs at least 4" in text
    assert code == 1, "the fixture bank is below the coverage targets"


def test_cheatsheet_command_writes_and_checks_the_file(fixture_root, tmp_path, capsys):
    out_file = tmp_path / "docs" / "cheatsheet.md"
    args = ["cheatsheet", "--bank", str(fixture_root), "--out", str(out_file)]
    assert cli.main(args, out=io.StringIO()) == 0
    assert out_file.read_text().startswith("# Cheat sheet")
    assert cli.main([*args, "--check"], out=io.StringIO()) == 0
    out_file.write_text(out_file.read_text() + "edited by hand\n")
    assert cli.main([*args, "--check"], out=io.StringIO()) == 1
    assert "out of date" in capsys.readouterr().err
    printed = io.StringIO()
    assert cli.main(["cheatsheet", "--bank", str(fixture_root)], out=printed) == 0
    assert printed.getvalue() == out_file.read_text().replace("edited by hand\n", "")


@pytest.mark.parametrize("command", ["practice", "exam", "review", "cheatsheet", "check"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    assert exited.value.code == 0
    assert "--bank" in capsys.readouterr().out
