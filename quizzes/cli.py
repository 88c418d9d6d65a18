"""The quizzes in a terminal: `python -m quizzes practice|exam|review|cheatsheet|check`.

Same engine as the notebook widgets. Options are numbered 1..N and answers are typed as
numbers ("2", or "1,3" / "1 3" for multiple response); an ordering question is answered with
the item numbers in the right order ("3 1 2"), a matching question with a number and a letter
per prompt ("1b 2a 3c"). So a session can be driven through stdin. A wrong entry re-prompts;
`q` or end of input stops with the report so far.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from . import coverage, engine
from .cheatsheet import render_markdown, write_markdown
from .engine import (
    Bank,
    BankError,
    Report,
    Session,
    ShuffledQuestion,
    TimeUpError,
    answer_letter,
    typed_response,
)
from .progress import PROGRESS_ENV, Progress
from .schema import MATCHING, ORDERING, QUESTION_SETS, choose_phrase

QUIT_WORDS = {"q", "quit", "exit"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m quizzes",
        description="Realtime GenAI API Labs quizzes in the terminal.",
        epilog=f"Progress is kept in ${PROGRESS_ENV} if set, else "
        "~/.realtime-genai-labs/quiz-progress.json.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def with_bank(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
        command.add_argument(
            "--bank",
            metavar="DIR",
            help="directory holding rules.yaml and bank/ (default: the course's quizzes)",
        )
        return command

    practice = with_bank(commands.add_parser("practice", help="questions with feedback"))
    practice.add_argument("--rule", help="only questions on this rule id")
    practice.add_argument("--notebook", help="only questions for this notebook, e.g. 03")
    practice.add_argument("--skill", help="only questions on this exam skill, e.g. 2.4.2 or 2.4")
    practice.add_argument("--n", type=int, help="at most this many questions")
    practice.add_argument("--seed", type=int, help="same seed, same questions and option order")
    practice.add_argument(
        "--set",
        dest="question_set",
        choices=QUESTION_SETS,
        help="only the exam set, or only the lab-check set on this course's gateway "
        "(default: both)",
    )

    exam = with_bank(
        commands.add_parser("exam", help="the exam set, timed, no feedback until the end")
    )
    exam.add_argument("--n", type=int, default=20)
    exam.add_argument("--minutes", type=float, default=30)
    exam.add_argument("--seed", type=int)

    review = with_bank(commands.add_parser("review", help="the questions due for review"))
    review.add_argument("--n", type=int, default=10)
    review.add_argument("--seed", type=int)

    cheatsheet = with_bank(commands.add_parser("cheatsheet", help="the Markdown cheat sheet"))
    cheatsheet.add_argument("--out", metavar="FILE", help="write here instead of printing")
    cheatsheet.add_argument(
        "--check", action="store_true", help="with --out: fail if the file is out of date"
    )

    with_bank(
        commands.add_parser(
            "check",
            help="validate the bank; show coverage per skill statement, topic and rule; "
            "fail below the targets",
        )
    )
    return parser


# --- Asking and answering --------------------------------------------------------------------


def parse_answer(text: str, item: ShuffledQuestion) -> tuple[tuple[int, ...] | None, str | None]:
    """What the learner typed -> (the response, None), or (None, what to tell the learner).
    Options: "2", "1,3", "1 3". Ordering: "3 1 2" (or "312" when there are fewer than ten
    items). Matching: "1b 2a 3c"."""
    tokens = [token for token in re.split(r"[,\s]+", text.strip()) if token]
    if item.question.type == MATCHING:
        return _parse_matching(tokens, item)
    count = item.size
    if item.question.type == ORDERING and len(tokens) == 1 and count < 10:
        tokens = list(tokens[0]) if len(tokens[0]) == count else tokens
    what = "an item" if item.question.type == ORDERING else "an option"
    for token in tokens:
        if not token.isdigit():
            return None, f"{token!r} is not {what} number: type numbers from 1 to {count}."
    chosen = tuple(int(token) - 1 for token in tokens)
    problem = item.selection_problem(chosen)
    return (None, problem) if problem else (chosen, None)


def _parse_matching(tokens: list[str], item: ShuffledQuestion) -> tuple:
    prompts = len(item.prompt_order)
    last = answer_letter(item.size - 1)
    response: list[int | None] = [None] * prompts
    for token in tokens:
        match = re.fullmatch(r"(\d+)([a-zA-Z])", token)
        if not match:
            return None, f"{token!r} is not a prompt number and an answer letter, like 1b."
        number, letter = int(match[1]), match[2].lower()
        if not 1 <= number <= prompts:
            return None, f"There is no prompt {number}: the prompts are numbered 1 to {prompts}."
        if response[number - 1] is not None:
            return None, f"Prompt {number} is matched twice."
        position = ord(letter) - ord("a")
        if not 0 <= position < item.size:
            return None, f"There is no answer {letter}: the answers are a to {last}."
        response[number - 1] = position
    problem = item.selection_problem(response)
    return (None, problem) if problem else (tuple(response), None)


def _prompt(item: ShuffledQuestion) -> str:
    count = item.size
    if item.question.type == ORDERING:
        example = " ".join(str(n) for n in range(count, 0, -1))
        return f"Your order, first to last (item numbers, e.g. {example}): "
    if item.question.type == MATCHING:
        return "Your matches (a prompt number and an answer letter each, e.g. 1b 2a): "
    if item.question.is_multiple:
        phrase = choose_phrase(item.question.choose)
        return f"Your answers, choose {phrase} (numbers 1-{count}, e.g. 1,3): "
    return f"Your answer (1-{count}): "


def _ask(item: ShuffledQuestion, stdin: TextIO, out: TextIO) -> tuple[int, ...] | None:
    """Read until a complete answer; None when the learner quits or input ends."""
    while True:
        out.write(_prompt(item))
        out.flush()
        line = stdin.readline()
        if not line:
            out.write("\n")
            return None
        if not stdin.isatty():  # piped input is not echoed: echo it so the transcript reads well
            out.write(line if line.endswith("\n") else line + "\n")
        if line.strip().lower() in QUIT_WORDS:
            return None
        chosen, problem = parse_answer(line, item)
        if chosen is not None:
            return chosen
        out.write(f"{problem} (Type q to stop.)\n")


def _question_text(item: ShuffledQuestion, number: int, count: int, mode: str) -> str:
    question = item.question
    lines = ["", f"Question {number} of {count} ({mode})", question.stem]
    if question.exhibit:
        lines += ["", *(f"    | {line}" for line in question.exhibit.splitlines()), ""]
    if question.type == ORDERING:
        lines.append("Put these in order, first to last:")
        lines += [f"  {i}. {text}" for i, text in enumerate(item.shown_items, start=1)]
    elif question.type == MATCHING:
        lines.append("Match each prompt to an answer:")
        lines += [f"  {i}. {pair.prompt}" for i, pair in enumerate(item.shown_prompts, start=1)]
        lines.append("Answers:")
        lines += [f"  {answer_letter(i)}. {text}" for i, text in enumerate(item.shown_answers)]
    else:
        lines += [f"  {i}. {option.text}" for i, option in enumerate(item.options, start=1)]
    return "\n".join(lines) + "\n"


def _numbers(positions) -> str:
    return ", ".join(str(i + 1) for i in sorted(positions))


def _ordering_feedback(item: ShuffledQuestion, chosen) -> list[str]:
    """The right order, each item with the place the learner gave it."""
    lines = ["The right order:"]
    for place, position in enumerate(item.correct_response, start=1):
        yours = list(chosen).index(position) + 1
        mark = "" if yours == place else f" (you put it at {yours})"
        lines.append(f"  {place}. {item.shown_items[position]}{mark}")
    return lines


def _matching_feedback(item: ShuffledQuestion, chosen) -> list[str]:
    """Each prompt with its right answer, and the learner's answer where it differs."""
    lines = ["The right pairs:"]
    for n, (pair, right, yours) in enumerate(
        zip(item.shown_prompts, item.correct_response, chosen, strict=True), start=1
    ):
        mark = "" if yours == right else f" (you chose {answer_letter(yours)})"
        lines.append(f"  {n}. {pair.prompt} -> {answer_letter(right)}. {pair.answer}{mark}")
    return lines


def feedback_text(item: ShuffledQuestion, chosen, bank: Bank) -> str:
    correct = item.grade(chosen)
    right = typed_response(item, item.correct_response)
    lines = ["Correct." if correct else f"Not quite. The answer is {right}."]
    if item.question.type == ORDERING:
        lines += _ordering_feedback(item, chosen)
    elif item.question.type == MATCHING:
        lines += _matching_feedback(item, chosen)
    for i, option in enumerate(item.options):
        mark = "right" if option.correct else "wrong"
        yours = ", your choice" if i in set(chosen) else ""
        lines.append(f"  {i + 1}. ({mark}{yours}) {option.feedback}")
    lines.append(f"Why: {item.question.explanation}")
    for rule_id in item.question.rules:
        rule = bank.rules[rule_id]
        lines.append(f"Rule [{rule_id}]: {rule.rule} ({rule.hook}) See notebook {rule.notebook}.")
    return "\n".join(lines) + "\n"


def report_text(report: Report, note: str = "") -> str:
    """The end-of-session report: percent overall, per rule and per skill, weakest first."""
    overall = report.overall
    title = "Exam results" if report.mode == engine.EXAM else "Results"
    lines = ["", note] if note else [""]
    if not overall.total:
        return "\n".join([*lines, "No questions answered."]) + "\n"
    lines.append(f"{title}: {overall.correct} of {overall.total} correct ({overall.percent} %)")
    if report.unanswered:
        lines.append(f"{report.unanswered} unanswered, counted as wrong.")
    tables = (("By rule", report.by_rule), ("By skill", report.by_skill))
    for heading, tallies in (*tables, ("By topic", report.by_topic)):
        if tallies:
            lines += ["", f"{heading} (weakest first)"]
            width = max(len(key) for key in tallies)
            lines += [
                f"  {key:<{width}}  {t.correct:>3}/{t.total:<3} {t.percent:>3} %"
                for key, t in tallies.items()
            ]
    if report.mode == engine.EXAM and report.results:
        lines += ["", "Question by question"]
        for number, result in enumerate(report.results, start=1):
            item = result.item
            yours = typed_response(item, result.answer.chosen) if result.answer else "no answer"
            mark = "right" if result.correct else "wrong"
            lines.append(
                f"  {number}. {item.question.id}: {mark} (yours: {yours}; correct: "
                f"{typed_response(item, item.correct_response)}). {item.question.explanation}"
            )
            if not result.correct and item.question.type == ORDERING:
                lines += [
                    f"     {place}. {text}"
                    for place, text in enumerate(item.question.items, start=1)
                ]
            elif not result.correct and item.question.type == MATCHING:
                lines += [f"     {pair.prompt} -> {pair.answer}" for pair in item.question.pairs]
    return "\n".join(lines) + "\n"


def _save(progress: Progress, write: Callable, *args) -> None:
    """Run one progress write (`progress.record_answer`, ...); if the disk refuses, say so on
    stderr and keep the session going."""
    try:
        write(*args)
    except OSError as error:
        print(f"warning: progress not saved to {progress.path}: {error}", file=sys.stderr)


def run_session(
    session: Session, bank: Bank, progress: Progress, stdin: TextIO, out: TextIO
) -> Report:
    """Ask every question in turn, then print and save the report."""
    note = ""
    count = len(session.items)
    while (item := session.current) is not None:
        out.write(_question_text(item, session.position + 1, count, session.mode))
        chosen = _ask(item, stdin, out)
        if chosen is None:
            note = "Stopped early: here is the report so far."
            break
        try:
            answer = session.submit(chosen)
        except TimeUpError:
            note = "Time is up: that answer arrived after the deadline and was not counted."
            break
        if session.shows_feedback:
            out.write(feedback_text(item, chosen, bank))
            _save(progress, progress.record_answer, answer.question_id, answer.correct)
        else:
            left = session.seconds_left() or 0
            out.write(f"Answer recorded. {int(left // 60)} min {int(left % 60)} s left.\n")
        session.next()
    if not note and session.time_up():
        note = "Time is up."
    report = session.finish()
    if report.mode == engine.EXAM:  # only now may the answers count, unanswered as misses
        for result in report.results:
            _save(progress, progress.record_answer, result.item.question.id, result.correct)
    if report.overall.total:
        _save(progress, progress.record_session, report)
    out.write(report_text(report, note))
    if report.overall.total:
        out.write(f"Progress file: {progress.path}\n")
    return report


# --- Commands --------------------------------------------------------------------------------


def _coverage_report(bank: Bank, out: TextIO) -> int:
    """`check`: the bank is valid if we got here; now show its coverage per skill statement,
    topic and rule, and fail (exit 1) naming every target it misses."""
    measured = coverage.measure(bank)
    out.write(coverage.coverage_text(bank, measured))
    return 0 if measured.meets_targets else 1


def _cheatsheet(args: argparse.Namespace, out: TextIO) -> int:
    """`cheatsheet`: print the Markdown, write it to --out, or --check that file is current."""
    rules = engine.load_rules(args.bank)
    if not args.out:
        out.write(render_markdown(rules))
        return 0
    if args.check:
        path = Path(args.out)
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != render_markdown(rules):
            print(f"{args.out} is out of date: run make cheatsheet", file=sys.stderr)
            return 1
        out.write(f"{args.out} is up to date.\n")
        return 0
    changed = write_markdown(args.out, rules)
    out.write(f"{'Wrote' if changed else 'Unchanged:'} {args.out}\n")
    return 0


def main(
    argv: list[str] | None = None,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Entry point of `python -m quizzes`; returns the exit code (2: bad bank or bad filter)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "check", False) and not args.out:
        parser.error("--check needs --out FILE: the file to compare")
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    try:
        if args.command == "cheatsheet":
            return _cheatsheet(args, out)
        bank = engine.load_bank(args.bank)
        if args.command == "check":
            return _coverage_report(bank, out)
        progress = Progress.load()
        if args.command == "practice":
            session = engine.practice_session(
                bank, args.rule, args.skill, args.notebook, args.n, args.seed, args.question_set
            )
        elif args.command == "exam":
            session = engine.exam_session(bank, args.n, args.minutes, args.seed, clock)
        else:
            due = progress.due_questions(question_ids=bank.question_ids, n=args.n, seed=args.seed)
            session = engine.review_session(bank, due, seed=args.seed)
    except (BankError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    run_session(session, bank, progress, stdin, out)
    return 0
