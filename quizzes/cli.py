"""The quizzes in a terminal: `python -m quizzes practice|exam|review|cheatsheet|check`.

Same engine as the notebook widgets. Options are numbered 1..N and answers are typed as
numbers ("2", or "1,3" / "1 3" for multiple response), so a session can be driven through
stdin. A wrong entry re-prompts; `q` or end of input stops with the report so far.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from . import engine
from .cheatsheet import render_markdown, write_markdown
from .engine import Bank, BankError, Report, Session, ShuffledQuestion, TimeUpError
from .progress import PROGRESS_ENV, Progress
from .schema import MIN_QUESTIONS_PER_KIND, choose_phrase

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

    exam = with_bank(commands.add_parser("exam", help="timed, no feedback until the end"))
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

    with_bank(commands.add_parser("check", help="validate the bank and show coverage per rule"))
    return parser


# --- Asking and answering --------------------------------------------------------------------


def parse_answer(text: str, item: ShuffledQuestion) -> tuple[tuple[int, ...] | None, str | None]:
    """Typed option numbers ("2", "1,3", "1 3") -> (0-based positions, None), or
    (None, what to tell the learner)."""
    count = len(item.options)
    tokens = [token for token in re.split(r"[,\s]+", text.strip()) if token]
    for token in tokens:
        if not token.isdigit():
            return None, f"{token!r} is not an option number: type numbers from 1 to {count}."
    chosen = tuple(int(token) - 1 for token in tokens)
    problem = item.selection_problem(chosen)
    return (None, problem) if problem else (chosen, None)


def _prompt(item: ShuffledQuestion) -> str:
    count = len(item.options)
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
    lines += [f"  {i}. {option.text}" for i, option in enumerate(item.options, start=1)]
    return "\n".join(lines) + "\n"


def _numbers(positions) -> str:
    return ", ".join(str(i + 1) for i in sorted(positions))


def feedback_text(item: ShuffledQuestion, chosen, bank: Bank) -> str:
    correct = item.grade(chosen)
    lines = ["Correct." if correct else f"Not quite. The answer is {_numbers(item.correct)}."]
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
    for heading, tallies in (("By rule", report.by_rule), ("By skill", report.by_skill)):
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
            yours = _numbers(result.answer.chosen) if result.answer else "no answer"
            mark = "right" if result.correct else "wrong"
            lines.append(
                f"  {number}. {item.question.id}: {mark} (yours: {yours}; correct: "
                f"{_numbers(item.correct)}). {item.question.explanation}"
            )
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
    """`check`: the bank is valid if we got here; now show how many questions name each rule
    and fail if any rule is below its coverage target."""
    counts = bank.questions_per_rule()
    out.write(f"{len(bank.questions)} questions, {len(bank.rules)} rules: valid.\n")
    short = 0
    for rule_id, count in counts.items():
        kind = bank.rules[rule_id].kind
        wanted = MIN_QUESTIONS_PER_KIND[kind]
        flag = "" if count >= wanted else f"  <- needs {wanted}"
        short += bool(flag)
        out.write(f"  {kind:<5} {rule_id:<40} {count:>3}{flag}\n")
    return 1 if short else 0


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
                bank, args.rule, args.skill, args.notebook, args.n, args.seed
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
