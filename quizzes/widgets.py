"""Quizzes inside a notebook, as ipywidgets 8: one-liners for practice, exam, review and
flashcards.

    from quizzes import quiz, exam, review, flashcards
    quiz(notebook="03")        # practice: five of the notebook's questions, feedback after each
    quiz(notebook="03", n=None)  # every question of the notebook
    exam(n=20, minutes=30)     # exam mode (exam set only): no feedback until the end
    review()                   # the questions spaced review (FSRS) says are due
    flashcards()               # the rules' memory hooks, one card at a time

All grading is done by `engine.py`; this module only draws it. Each widget exposes its parts
(`.choices`, `.submit`, `.next`, `.finish`, `.feedback`, `.progress`, `.summary`) so tests can
drive it without a browser: set `.choices.value`, call `.submit.click()`.
"""

from __future__ import annotations

import html
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import ipywidgets as widgets

from . import arrange_widgets, engine
from .cheatsheet import cheatsheet_html
from .engine import Bank, Report, Rule, Session, ShuffledQuestion, TimeUpError
from .progress import Progress

LETTERS = "ABCDEFGHIJ"
KIND_LABELS = {"rule": "Rule", "trap": "Exam trap", "fact": "AWS fact"}

# ipywidgets 8 draws each option in a fixed 300 px box of one line's height: exam options are
# sentences, so they wrapped into a narrow column and, as checkboxes, ran over one another. Here
# every option is one full-width row: the box first, then the text, wrapping under itself.
_STYLE = widgets.HTML(
    "<style>"
    ".rgl-quiz .widget-radio, .rgl-quiz .widget-radio-box, .rgl-quiz .widget-checkbox "
    "{width: auto; max-width: 100%; height: auto; min-height: 0; align-self: stretch;"
    " box-sizing: border-box;}"
    ".rgl-quiz .widget-radio-box label, .rgl-quiz .widget-checkbox .widget-label-basic "
    "{display: flex; align-items: flex-start; gap: 0.5em; flex: 1 1 auto; min-width: 0;"
    " width: auto; height: auto; white-space: normal; overflow: visible; line-height: 1.4;"
    " margin: 0 0 6px 0;}"
    ".rgl-quiz .widget-radio-box label input, .rgl-quiz .widget-checkbox input "
    "{flex: none; align-self: flex-start; order: -1; margin: 0.2em 0 0 0;}"
    ".rgl-quiz .widget-checkbox .widget-label-basic span "
    "{white-space: normal; overflow: visible; text-overflow: clip;}"
    ".rgl-quiz .widget-html, .rgl-quiz .widget-html-content "
    "{width: auto; height: auto; line-height: 1.5;}"
    ".rgl-quiz pre {background: #f6f8fa; padding: 6px; overflow-x: auto;}"
    ".rgl-quiz table {border-collapse: collapse;} "
    ".rgl-quiz th, .rgl-quiz td {border: 1px solid #ccc; padding: 2px 8px; text-align: left;}"
    ".rgl-quiz td + td {white-space: nowrap;}"
    "</style>"
)
_FULL_WIDTH = {"width": "100%"}


def _bank(bank: Bank | str | Path | None) -> Bank:
    return bank if isinstance(bank, Bank) else engine.load_bank(bank)


def _progress(progress: Progress | str | Path | None) -> Progress:
    return progress if isinstance(progress, Progress) else Progress.load(progress)


def _label(position: int, text: str) -> str:
    return f"{LETTERS[position]}. {text}"


def _letters(positions) -> str:
    return ", ".join(LETTERS[i] for i in sorted(positions))


class CheckboxGroup(widgets.VBox):
    """One checkbox per option of a multiple-response question. `.value` is the tuple of the
    chosen positions (0-based), settable like RadioButtons' value."""

    def __init__(self, labels: Sequence[str]):
        self.boxes = [
            widgets.Checkbox(value=False, description=label, indent=False) for label in labels
        ]
        super().__init__(children=self.boxes, layout=widgets.Layout(**_FULL_WIDTH))

    @property
    def value(self) -> tuple[int, ...]:
        return tuple(i for i, box in enumerate(self.boxes) if box.value)

    @value.setter
    def value(self, chosen) -> None:
        chosen = {chosen} if isinstance(chosen, int) else set(chosen)
        for i, box in enumerate(self.boxes):
            box.value = i in chosen

    @property
    def disabled(self) -> bool:
        return all(box.disabled for box in self.boxes)

    @disabled.setter
    def disabled(self, disabled: bool) -> None:
        for box in self.boxes:
            box.disabled = disabled


def _choices_for(item: ShuffledQuestion) -> widgets.RadioButtons | CheckboxGroup:
    if (arranged := arrange_widgets.choices_for(item)) is not None:  # ordering, matching
        return arranged
    labels = [_label(i, option.text) for i, option in enumerate(item.options)]
    if item.question.is_multiple:
        return CheckboxGroup(labels)
    # index=None: nothing preselected, so a careless Submit is not graded as option A.
    return widgets.RadioButtons(options=[(label, i) for i, label in enumerate(labels)], index=None)


def _chosen(choices) -> tuple[int, ...]:
    value = choices.value
    if value is None:
        return ()
    return (value,) if isinstance(value, int) else tuple(value)


def _paragraphs(text: str) -> str:
    """YAML block text as HTML: a blank line starts a paragraph, a single newline is only the
    author's line wrap."""
    paragraphs = [" ".join(block.split()) for block in text.split("\n\n") if block.strip()]
    return "".join(f"<p>{html.escape(paragraph)}</p>" for paragraph in paragraphs)


def _question_html(item: ShuffledQuestion, number: int, count: int) -> str:
    question = item.question
    parts = [f"<p><b>Question {number} of {count}</b></p>"]
    parts.append(_paragraphs(question.stem))
    if question.exhibit:
        parts.append(f"<pre>{html.escape(question.exhibit)}</pre>")
    return "".join(parts)


def _rule_line(rule: Rule) -> str:
    lab = f", lab {rule.lab}" if rule.lab else ""
    # A trap's text already starts "Trap: ..."; do not label it twice.
    label = "" if rule.rule.lower().startswith("trap") else f"<b>{KIND_LABELS[rule.kind]}:</b> "
    return (
        f"<li>{label}{html.escape(rule.rule)} "
        f"<i>{html.escape(rule.hook)}</i> <small>(notebook {rule.notebook}{lab})</small></li>"
    )


def feedback_html(item: ShuffledQuestion, chosen, bank: Bank) -> str:
    """Right or wrong, why each option is right or wrong, and the rule behind the answer."""
    correct = item.grade(chosen)
    if not item.question.is_choice:  # ordering, matching: the right order or pairs instead
        rules = "".join(_rule_line(bank.rules[r]) for r in item.question.rules)
        return arrange_widgets.feedback_html(item, chosen, rules)
    verdict = (
        '<b style="color:#1a7f37">&#10003; Correct.</b>'
        if correct
        else '<b style="color:#b3261e">&#10007; Not quite.</b> '
        f"The answer is {_letters(item.correct)}."
    )
    rows = []
    for i, option in enumerate(item.options):
        mark = "&#10003;" if option.correct else "&#10007;"
        yours = " <i>(your choice)</i>" if i in set(chosen) else ""
        rows.append(f"<li>{mark} <b>{LETTERS[i]}</b>{yours}: {html.escape(option.feedback)}</li>")
    rules = "".join(_rule_line(bank.rules[r]) for r in item.question.rules)
    return (
        f"<p>{verdict}</p><ul>{''.join(rows)}</ul>"
        f"<p><b>Why:</b> {html.escape(item.question.explanation)}</p><ul>{rules}</ul>"
    )


def _tally_table(heading: str, tallies: dict, describe: Callable[[str], str]) -> str:
    rows = "".join(
        f"<tr><td>{describe(key)}</td><td>{t.correct} / {t.total}</td><td>{t.percent} %</td></tr>"
        for key, t in tallies.items()
    )
    return (
        f"<table><thead><tr><th>{heading}</th><th>Correct</th><th>%</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def summary_html(report: Report, bank: Bank, note: str = "") -> str:
    """The end-of-session page: overall percent, then per rule and per skill, weakest first.
    Percent only: the exam's scaled score cannot be derived from a practice set."""
    overall = report.overall
    note = f"<p><b>{html.escape(note)}</b></p>" if note else ""
    if not overall.total:
        return f"<h3>No questions answered.</h3>{note}"
    title = "Exam results" if report.mode == engine.EXAM else "Results"
    parts = [
        f"<h3>{title}: {overall.correct} of {overall.total} correct ({overall.percent} %)</h3>",
        note,
    ]
    if report.unanswered:
        parts.append(f"<p>{report.unanswered} unanswered, counted as wrong.</p>")

    def describe_rule(rule_id: str) -> str:
        rule = bank.rules[rule_id]
        return (
            f"<b>{html.escape(rule_id)}</b>: {html.escape(rule.rule)} "
            f"<small>(notebook {rule.notebook})</small>"
        )

    parts.append(_tally_table("Rule", report.by_rule, describe_rule))
    parts.append("<br>")
    parts.append(_tally_table("Skill", report.by_skill, html.escape))
    if report.by_topic:
        parts += ["<br>", _tally_table("Topic", report.by_topic, html.escape)]
    if report.mode == engine.EXAM:
        # No feedback during the exam; here is all of it.
        review = []
        for result in report.results:
            item = result.item
            mark = "&#10003;" if result.correct else "&#10007;"
            first_line = html.escape(textwrap.shorten(item.question.stem, 120, placeholder=" ..."))
            if not item.question.is_choice:  # ordering, matching: in words, not letters
                review.append(arrange_widgets.report_line_html(result, mark, first_line))
                continue
            yours = _letters(result.answer.chosen) if result.answer else "no answer"
            review.append(
                f"<li>{mark} {first_line} <br>Your answer: {yours}; correct: "
                f"{_letters(item.correct)}. {html.escape(item.question.explanation)}</li>"
            )
        parts.append(f"<h4>Question by question</h4><ol>{''.join(review)}</ol>")
    return "".join(parts)


class QuizWidget(widgets.VBox):
    """A session drawn as widgets: question, choices, Submit, Next, feedback, progress bar and,
    at the end, the summary. Answers are saved to the progress file as they are graded
    (practice, review) or when the exam ends (so nothing hints at the result before)."""

    def __init__(self, session: Session, bank: Bank, progress: Progress):
        self.session = session
        self.bank = bank
        self.learner_progress = progress
        self.report: Report | None = None
        count = len(session.items)
        self.header = widgets.HTML()
        self.progress = widgets.IntProgress(value=0, min=0, max=count, description="Answered")
        self.question = widgets.HTML()
        self.choices: widgets.RadioButtons | CheckboxGroup = widgets.RadioButtons(options=[])
        self.choices_area = widgets.Box([self.choices], layout=widgets.Layout(**_FULL_WIDTH))
        self.submit = widgets.Button(description="Submit", button_style="primary")
        self.next = widgets.Button(description="Next")
        # Stop early and see the results; on the exam the questions left count as wrong.
        finish = "Finish exam" if session.mode == engine.EXAM else "Finish"
        self.finish = widgets.Button(description=finish, button_style="warning")
        self.feedback = widgets.HTML()
        self.summary = widgets.HTML()
        self.submit.on_click(lambda _: self._on_submit())
        self.next.on_click(lambda _: self._on_next())
        self.finish.on_click(lambda _: self._end())
        self.question_area = widgets.VBox(
            [
                self.question,
                self.choices_area,
                widgets.HBox([self.submit, self.next, self.finish]),
                self.feedback,
            ]
        )
        super().__init__([_STYLE, self.header, self.progress, self.question_area, self.summary])
        self.add_class("rgl-quiz")
        self._ending = threading.Lock()
        self._ended = threading.Event()
        self._show(session.current)
        if session.seconds_left() is not None:
            # The exam's clock runs in the kernel: redraw the countdown every second, and end
            # the exam when it reaches zero even if the learner clicks nothing.
            threading.Thread(target=self._tick, name="exam-countdown", daemon=True).start()

    # --- drawing ---

    def _header_html(self) -> str:
        mode = {"practice": "Practice", "exam": "Exam", "review": "Review"}[self.session.mode]
        left = self.session.seconds_left()
        if left is None:
            return f"<b>{mode}</b>"
        ends = (datetime.now() + timedelta(seconds=left)).strftime("%H:%M")
        return (
            f"<b>{mode}</b>: {int(left // 60)} min {int(left % 60)} s left (ends at {ends}). "
            "No feedback until the end, as on the exam."
        )

    def _tick(self) -> None:
        while not self._ended.wait(1.0):
            if self.session.time_up():
                self._end()
                return
            self.header.value = self._header_html()

    def _show(self, item: ShuffledQuestion | None) -> None:
        if item is None:
            self._end()
            return
        number, count = self.session.position + 1, len(self.session.items)
        self.header.value = self._header_html()
        self.question.value = _question_html(item, number, count)
        self.choices = _choices_for(item)
        self.choices_area.children = [self.choices]
        self.submit.disabled = False
        # Practice waits for an answer; the exam lets you skip (a skipped question is wrong).
        self.next.disabled = self.session.shows_feedback
        self.next.description = "See results" if number == count else "Next"
        self.feedback.value = ""

    def _save(self, action: Callable[[], object]) -> str:
        """Run a progress write; on failure return a message instead of ending the quiz (a
        full disk should not cost the learner the session on screen)."""
        try:
            action()
        except OSError as error:
            path = html.escape(str(self.learner_progress.path))
            return f"<p><b>Progress could not be saved to {path}:</b> {html.escape(str(error))}</p>"
        return ""

    # --- events ---

    def _on_submit(self) -> None:
        item = self.session.current
        if item is None:
            return
        chosen = _chosen(self.choices)
        problem = item.selection_problem(chosen)
        if problem:
            self.feedback.value = f"<p><b>{html.escape(problem)}</b></p>"
            return
        try:
            answer = self.session.submit(chosen)
        except TimeUpError:
            self._end("Time is up: that answer arrived after the deadline and was not counted.")
            return
        self.progress.value = len(self.session.answers)
        self.choices.disabled = True
        self.submit.disabled = True
        self.next.disabled = False
        if self.session.shows_feedback:
            saved = self._save(
                lambda: self.learner_progress.record_answer(answer.question_id, answer.correct)
            )
            self.feedback.value = feedback_html(item, chosen, self.bank) + saved
        else:
            self.feedback.value = "<p>Answer recorded.</p>"
            self.header.value = self._header_html()

    def _on_next(self) -> None:
        if self.report is not None:
            return
        self._show(self.session.next())

    def _end(self, note: str = "") -> None:
        with self._ending:  # the countdown and a click may both end the session
            if self.report is not None:
                return
            if not note and self.session.time_up():
                note = "Time is up."
            self.report = report = self.session.finish()
            self._ended.set()
        mode = {"practice": "Practice", "exam": "Exam", "review": "Review"}[self.session.mode]
        self.header.value = f"<b>{mode}</b>: finished."  # no countdown left on screen
        self.question_area.layout.display = "none"
        self.summary.value = summary_html(report, self.bank, note)

        def record() -> None:
            if report.mode == engine.EXAM:
                for result in report.results:  # unanswered count as misses: review them soon
                    self.learner_progress.record_answer(result.item.question.id, result.correct)
            if report.overall.total:
                self.learner_progress.record_session(report)

        self.summary.value += self._save(record)


class FlashcardWidget(widgets.VBox):
    """One card per rule: the front shows the memory hook, Flip shows the rule and why."""

    def __init__(self, rules: Sequence[Rule]):
        self.rules = list(rules)
        self.position = 0
        self.showing_back = False
        self.card = widgets.HTML()
        self.flip = widgets.Button(description="Flip", button_style="primary")
        self.previous = widgets.Button(description="Previous")
        self.next = widgets.Button(description="Next")
        self.counter = widgets.HTML()
        # From 0, so card 1 of N already fills 1/N of the bar.
        self.progress = widgets.IntProgress(value=1, min=0, max=len(self.rules))
        self.flip.on_click(lambda _: self._turn())
        self.previous.on_click(lambda _: self._go(-1))
        self.next.on_click(lambda _: self._go(+1))
        buttons = widgets.HBox([self.previous, self.flip, self.next])
        super().__init__([_STYLE, widgets.HBox([self.counter, self.progress]), self.card, buttons])
        self.add_class("rgl-quiz")
        self._draw()

    @property
    def rule(self) -> Rule:
        return self.rules[self.position]

    def _draw(self) -> None:
        rule = self.rule
        kind = html.escape(KIND_LABELS[rule.kind])
        if self.showing_back:
            lab = f", lab {rule.lab}" if rule.lab else ""
            sources = (
                f"<p><small>Sources: {html.escape(', '.join(rule.sources))}</small></p>"
                if rule.sources
                else ""
            )
            self.card.value = (
                f"<p><small>{kind} &middot; {html.escape(rule.id)}</small></p>"
                f"<h4>{html.escape(rule.rule)}</h4><p>{html.escape(rule.why)}</p>"
                f"<p><small>Notebook {rule.notebook}{lab}; skills "
                f"{html.escape(', '.join(rule.skills))}</small></p>{sources}"
            )
        else:
            self.card.value = (
                f"<p><small>{kind}</small></p><h4><i>{html.escape(rule.hook)}</i></h4>"
                "<p>What is the rule behind it? Say it, then flip.</p>"
            )
        self.progress.value = self.position + 1
        self.counter.value = f"<b>Card {self.position + 1} of {len(self.rules)}</b>"
        self.previous.disabled = self.position == 0
        self.next.disabled = self.position == len(self.rules) - 1

    def _turn(self) -> None:
        self.showing_back = not self.showing_back
        self._draw()

    def _go(self, step: int) -> None:
        self.position = min(max(self.position + step, 0), len(self.rules) - 1)
        self.showing_back = False
        self._draw()


# --- One-liners ------------------------------------------------------------------------------


# A notebook's quiz cell asks this many questions; the full set is in notebook 09's exam and
# review, or here with n=None.
QUIZ_SAMPLE = 5


def quiz(
    rule: str | None = None,
    notebook: str | int | None = None,
    skill: str | None = None,
    n: int | None = QUIZ_SAMPLE,
    seed: int | None = None,
    *,
    question_set: str | None = None,
    bank: Bank | str | Path | None = None,
    progress: Progress | str | Path | None = None,
    now: datetime | None = None,
) -> QuizWidget:
    """Practice: questions on a rule, a skill or a notebook, with feedback after each.

    `n` questions (default five, `n=None` for all), a rotating sample: questions due for review
    come first, then ones never answered, then the ones due soonest, so each run of the cell
    moves on through the set. `question_set="lab-check"` asks only the questions on this
    course's gateway, `"exam"` only exam-style ones (default: both)."""
    bank = _bank(bank)
    progress = _progress(progress)
    if n is None:
        session = engine.practice_session(
            bank, rule, skill, notebook, None, seed, question_set=question_set
        )
        return QuizWidget(session, bank, progress)
    matching = bank.select(rule, skill, notebook, seed=seed, question_set=question_set)
    picked = progress.rotation([q.id for q in matching], n, now=now, seed=seed)
    return QuizWidget(engine.session_of(bank, picked, engine.PRACTICE, seed), bank, progress)


def exam(
    n: int = 20,
    minutes: float = 30,
    seed: int | None = None,
    *,
    bank: Bank | str | Path | None = None,
    progress: Progress | str | Path | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> QuizWidget:
    """Exam mode: `n` questions from the whole bank in `minutes`, results at the end."""
    bank = _bank(bank)
    session = engine.exam_session(bank, n=n, minutes=minutes, seed=seed, clock=clock)
    return QuizWidget(session, bank, _progress(progress))


def review(
    n: int = 10,
    *,
    seed: int | None = None,
    bank: Bank | str | Path | None = None,
    progress: Progress | str | Path | None = None,
    now: datetime | None = None,
) -> QuizWidget:
    """Review: the questions due for spaced review (missed ones first), then new ones."""
    bank = _bank(bank)
    progress = _progress(progress)
    due = progress.due_questions(now, question_ids=bank.question_ids, n=n, seed=seed)
    return QuizWidget(engine.review_session(bank, due, seed=seed), bank, progress)


def flashcards(
    rule: str | None = None,
    *,
    kind: str | None = None,
    bank: Bank | str | Path | None = None,
) -> FlashcardWidget:
    """Flashcards over the rules' memory hooks: all of them, one `rule` id, or one `kind`
    (rule, trap or fact)."""
    rulebook = bank.rulebook if isinstance(bank, Bank) else engine.load_rules(bank)
    rules = list(rulebook.rules.values())
    if rule is not None:
        if rule not in rulebook.rules:
            raise ValueError(engine.unknown_name_message("rule", rule, rulebook.rules))
        rules = [rulebook.rules[rule]]
    if kind is not None:
        rules = [r for r in rules if r.kind == kind]
        if not rules:
            raise ValueError(f"No rules of kind {kind!r}: kinds are rule, trap and fact.")
    return FlashcardWidget(rules)


def show_cheatsheet(bank: Bank | str | Path | None = None) -> widgets.HTML:
    """The cheat sheet, drawn in the notebook."""
    rules = bank.rulebook if isinstance(bank, Bank) else engine.load_rules(bank)
    return widgets.HTML(cheatsheet_html(rules))
