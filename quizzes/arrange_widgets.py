"""The notebook widgets for ordering and matching questions: one dropdown per place in the
order, or one dropdown per prompt, each on its own row so long texts wrap instead of overlapping.
`widgets.py` draws single and multiple choice and asks this module for the other two types.

Both widgets have the interface of the choice widgets: `.value` is the response the engine
grades (see `engine.ShuffledQuestion`), settable by tests; `.disabled` locks every dropdown.
An empty dropdown is None in `.value`, so `selection_problem` can say what is still open.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import ipywidgets as widgets

from .engine import QuestionResult, ShuffledQuestion, answer_letter
from .schema import MATCHING, ORDERING

NOT_CHOSEN = "(choose)"

_ROW = widgets.Layout(display="flex", flex_flow="row wrap", align_items="center", width="100%")
_LABEL = widgets.Layout(flex="0 0 auto", width="7em")
_PROMPT = widgets.Layout(flex="1 1 20em", min_width="12em")
# Each dropdown takes a whole line under its label: ipywidgets gives a dropdown a fixed inline
# width (300 px) that a flex basis does not widen, and a long choice was cut in it.
_DROPDOWN = widgets.Layout(flex="1 1 100%", width="100%")


class DropdownRows(widgets.VBox):
    """Rows of (label, dropdown): the label says which place or prompt, the dropdown offers the
    same numbered or lettered list on every row."""

    def __init__(self, labels: Sequence[widgets.Widget], choices: Sequence[tuple[str, int]]):
        options = [(NOT_CHOSEN, None), *choices]
        # index 0: the "(choose)" entry shows, so an empty place reads as one
        self.dropdowns = [
            widgets.Dropdown(options=options, index=0, layout=_DROPDOWN) for _ in labels
        ]
        rows = [
            widgets.Box([label, dropdown], layout=_ROW)
            for label, dropdown in zip(labels, self.dropdowns, strict=True)
        ]
        # The full width of the quiz: a box sized to its content would leave the rows' widths
        # nothing to be a share of.
        super().__init__(children=rows, layout=widgets.Layout(width="100%"))
        self.add_class("rgl-arrange")

    @property
    def value(self) -> tuple[int | None, ...]:
        return tuple(dropdown.value for dropdown in self.dropdowns)

    @value.setter
    def value(self, response: Sequence[int | None]) -> None:
        for dropdown, position in zip(self.dropdowns, response, strict=True):
            if position is None:
                dropdown.index = 0
            else:
                dropdown.value = position

    @property
    def disabled(self) -> bool:
        return all(dropdown.disabled for dropdown in self.dropdowns)

    @disabled.setter
    def disabled(self, disabled: bool) -> None:
        for dropdown in self.dropdowns:
            dropdown.disabled = disabled


def _list_html(entries: Sequence[str], marker) -> str:
    rows = "".join(
        f"<li><b>{marker(i)}.</b> {html.escape(text)}</li>" for i, text in enumerate(entries)
    )
    return f'<ul style="list-style:none;padding-left:0">{rows}</ul>'


class _ListAndRows(widgets.VBox):
    """What to choose from (`.listing`) above the dropdown rows (`.rows`), which hold the value."""

    def __init__(self, listing: widgets.HTML, rows: DropdownRows):
        self.listing, self.rows = listing, rows
        super().__init__([listing, rows])

    @property
    def value(self) -> tuple[int | None, ...]:
        return self.rows.value

    @value.setter
    def value(self, response: Sequence[int | None]) -> None:
        self.rows.value = response

    @property
    def disabled(self) -> bool:
        return self.rows.disabled

    @disabled.setter
    def disabled(self, disabled: bool) -> None:
        self.rows.disabled = disabled


class OrderingChoices(_ListAndRows):
    """The items listed with their numbers, then one dropdown per place: 1st, 2nd, ..."""

    def __init__(self, item: ShuffledQuestion):
        items = item.shown_items
        listing = widgets.HTML(
            "<p>Put these in order, first to last:</p>" + _list_html(items, lambda i: i + 1)
        )
        labels = [widgets.Label(f"Place {n}", layout=_LABEL) for n in range(1, len(items) + 1)]
        rows = DropdownRows(labels, [(f"{i + 1}. {text}", i) for i, text in enumerate(items)])
        super().__init__(listing, rows)


class MatchingChoices(_ListAndRows):
    """The answers listed with their letters, then one row per prompt with its dropdown."""

    def __init__(self, item: ShuffledQuestion):
        answers = item.shown_answers
        listing = widgets.HTML(
            "<p>Match each prompt to an answer. Answers:</p>" + _list_html(answers, answer_letter)
        )
        labels = [
            widgets.HTML(f"<b>{n}.</b> {html.escape(pair.prompt)}", layout=_PROMPT)
            for n, pair in enumerate(item.shown_prompts, start=1)
        ]
        choices = [(f"{answer_letter(i)}. {text}", i) for i, text in enumerate(answers)]
        super().__init__(listing, DropdownRows(labels, choices))


def choices_for(item: ShuffledQuestion) -> OrderingChoices | MatchingChoices | None:
    """The widget for an ordering or matching question; None for single and multiple."""
    if item.question.type == ORDERING:
        return OrderingChoices(item)
    if item.question.type == MATCHING:
        return MatchingChoices(item)
    return None


def response_html(item: ShuffledQuestion, response: Sequence[int]) -> str:
    """A response in words, for the feedback and the exam report: the items in the given order,
    or each prompt with the answer given."""
    if item.question.type == ORDERING:
        steps = "".join(f"<li>{html.escape(item.shown_items[i])}</li>" for i in response)
        return f"<ol>{steps}</ol>"
    rows = "".join(
        f"<li>{html.escape(pair.prompt)} &rarr; <b>{html.escape(item.shown_answers[i])}</b></li>"
        for pair, i in zip(item.shown_prompts, response, strict=True)
    )
    return f"<ul>{rows}</ul>"


def feedback_rows_html(item: ShuffledQuestion, chosen: Sequence[int]) -> str:
    """The right order or the right pairs, each line marked right or wrong for the learner."""
    right = item.correct_response
    if item.question.type == ORDERING:
        rows = []
        for place, position in enumerate(right):
            ok = chosen[place] == position
            mark = "&#10003;" if ok else "&#10007;"
            yours = (
                "" if ok else f" <i>(you put {html.escape(item.shown_items[chosen[place]])})</i>"
            )
            rows.append(f"<li>{mark} {html.escape(item.shown_items[position])}{yours}</li>")
        return f"<p>The right order:</p><ol>{''.join(rows)}</ol>"
    rows = []
    for pair, position, given in zip(item.shown_prompts, right, chosen, strict=True):
        ok = given == position
        mark = "&#10003;" if ok else "&#10007;"
        yours = "" if ok else f" <i>(you chose {html.escape(item.shown_answers[given])})</i>"
        rows.append(
            f"<li>{mark} {html.escape(pair.prompt)} &rarr; "
            f"<b>{html.escape(pair.answer)}</b>{yours}</li>"
        )
    return f"<p>The right pairs:</p><ul>{''.join(rows)}</ul>"


def feedback_html(item: ShuffledQuestion, chosen: Sequence[int], rules_html: str) -> str:
    """Right or wrong, the right order or pairs line by line, why, and the rules behind it."""
    verdict = (
        '<b style="color:#1a7f37">&#10003; Correct.</b>'
        if item.grade(chosen)
        else '<b style="color:#b3261e">&#10007; Not quite.</b>'
    )
    why = html.escape(item.question.explanation)
    rows = feedback_rows_html(item, chosen)
    return f"<p>{verdict}</p>{rows}<p><b>Why:</b> {why}</p><ul>{rules_html}</ul>"


def report_line_html(result: QuestionResult, mark: str, first_line: str) -> str:
    """One line of the exam report: the learner's order or pairs, then the right ones, in words."""
    item = result.item
    yours = response_html(item, result.answer.chosen) if result.answer else "no answer<br>"
    right = response_html(item, item.correct_response)
    why = html.escape(item.question.explanation)
    return f"<li>{mark} {first_line}<br>Your answer: {yours}Correct: {right}{why}</li>"
