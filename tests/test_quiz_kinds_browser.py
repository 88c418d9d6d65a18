"""Ordering and matching questions in a real JupyterLab, answered through the page: one
dropdown row per place or prompt, readable at narrow and wide widths, with the right order
shown after a wrong answer.

The questions come from the fixture bank tests/quiz_engine/fixtures/kinds (notebook "05" holds
one ordering and one matching question). Screenshots: test-artifacts/test_quiz_kinds_browser/.
"""

from __future__ import annotations

import json
import re

import jupyterlab
import pytest
import yaml
from browser import needs_chromium, screenshot
from jupyterlab import NOTEBOOK

pytestmark = [needs_chromium]

KINDS = "tests/quiz_engine/fixtures/kinds"
QUESTIONS = {
    q["id"]: q
    for q in yaml.safe_load(
        (jupyterlab.ROOT / KINDS / "bank" / "kinds.yaml").read_text(encoding="utf-8")
    )["questions"]
}
RIGHT_ORDER = [item["text"] for item in QUESTIONS["kx-order-001"]["items"]]
PAIRS = {pair["prompt"]: pair["answer"] for pair in QUESTIONS["kx-match-001"]["pairs"]}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    running, process = jupyterlab.start(tmp_path_factory.mktemp("jupyterlab"), {})
    try:
        yield running
    finally:
        jupyterlab.stop(process)


def notebook(bank: str) -> dict:
    """Two practice quizzes over the same three questions (one ordering, one matching): one
    answered wrong, one right."""
    sources = [
        f"from quizzes import quiz\n\nquiz(bank={bank!r}, notebook='05', seed=1)",
        f"quiz(bank={bank!r}, notebook='05', seed=1)",
    ]
    return {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": source,
            }
            for source in sources
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def row_problems(page, quiz_index: int) -> list[str]:
    """Rows, labels or dropdowns that overlap one another, stick out of the quiz, clip their
    text, or a dropdown too narrow to show its longest choice."""
    return page.evaluate(
        """([index, notebook]) => {
            const quiz = document.querySelectorAll(notebook + ' .rgl-quiz')[index];
            const frame = quiz.getBoundingClientRect();
            const rows = [...quiz.querySelectorAll('.rgl-arrange > .widget-box')];
            const problems = [];
            if (rows.length < 2) problems.push(`only ${rows.length} rows`);
            const parts = [];
            rows.forEach((row, r) => {
                const label = row.children[0], select = row.querySelector('select');
                parts.push([`row ${r}`, row], [`label ${r}`, label], [`dropdown ${r}`, select]);
                if (label.scrollWidth > label.clientWidth + 1
                        || label.scrollHeight > label.clientHeight + 1)
                    problems.push(`label ${r} clipped: ${label.textContent}`);
                const ctx = document.createElement('canvas').getContext('2d');
                ctx.font = getComputedStyle(select).font;
                const longest = Math.max(...[...select.options].map(
                    o => ctx.measureText(o.textContent).width));
                // the arrow takes about 24 px of the box
                if (select.clientWidth - 24 < longest)
                    problems.push(`dropdown ${r} ${select.clientWidth}px < ${longest}px text`);
            });
            const boxes = parts.map(([name, el]) => [name, el.getBoundingClientRect()]);
            boxes.forEach(([name, b]) => {
                if (b.width < 1 || b.height < 1) problems.push(`${name} not visible`);
                if (b.left < frame.left - 1 || b.right > frame.right + 1)
                    problems.push(`${name} sticks out of the quiz`);
            });
            const rowBoxes = boxes.filter(([n]) => n.startsWith('row'));
            const inner = boxes.filter(([n]) => !n.startsWith('row'));
            const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1
                && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
            for (const group of [rowBoxes, inner])
                group.forEach(([n, a], i) => group.slice(i + 1).forEach(([m, b]) => {
                    if (overlap(a, b)) problems.push(`${n} overlaps ${m}`);
                }));
            return problems;
        }""",
        [quiz_index, NOTEBOOK],
    )


def check_rows_at_two_widths(page, quiz, quiz_index: int, name: str) -> None:
    for width in (700, 1000, 1600):
        page.set_viewport_size({"width": width, "height": 1000})
        quiz.scroll_into_view_if_needed()
        screenshot(page, f"{name}-{width}px", full_page=False)
        problems = row_problems(page, quiz_index)
        assert not problems, f"{name} at {width} px: {problems}"
    page.set_viewport_size({"width": 1000, "height": 1000})


def is_ordering(quiz) -> bool:
    return quiz.locator(".rgl-arrange .widget-label", has_text=re.compile(r"^Place 1$")).count() > 0


def choose(select, ends_with: str) -> None:
    """Pick the option whose text ends with `ends_with` ("3. The model ..." or "B. Idle ...")."""
    options = select.locator("option").all_text_contents()
    # ipywidgets writes the spaces of a dropdown choice as no-break spaces
    found = [o for o in options if o.replace("\xa0", " ").endswith(ends_with)]
    assert len(found) == 1, f"{ends_with!r} among {options}"
    label = found[0]
    select.select_option(label=label)


def answer_ordering(quiz, order: list[str]) -> None:
    selects = quiz.locator(".rgl-arrange select")
    for place, text in enumerate(order):
        choose(selects.nth(place), text)


def answer_matching(quiz, right: bool) -> None:
    rows = quiz.locator(".rgl-arrange > .widget-box")
    answers = list(PAIRS.values())
    for index in range(rows.count()):
        prompt = rows.nth(index).locator(".widget-html-content").text_content()
        answer = next(a for p, a in PAIRS.items() if prompt.endswith(p))
        if not right:
            answer = answers[(answers.index(answer) + 1) % len(answers)]
        choose(rows.nth(index).locator("select"), answer)


def submit_and_read(quiz) -> str:
    quiz.get_by_role("button", name="Submit").click()
    feedback = quiz.locator(".widget-html-content", has_text=re.compile("Correct|Not quite"))
    feedback.wait_for(timeout=30_000)
    return feedback.text_content()


@pytest.mark.timeout(180)
def test_ordering_and_matching_answer_through_dropdown_rows(page, lab):
    lab.put_file("kinds_in_the_browser.ipynb", json.dumps(notebook(str(lab.root / KINDS))))
    jupyterlab.open_notebook(page, lab, "kinds_in_the_browser.ipynb")
    jupyterlab.run_all(page)
    prompts = jupyterlab.prompts(page)
    assert all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), jupyterlab.outputs(page)
    quizzes = page.locator(f"{NOTEBOOK} .rgl-quiz")
    assert quizzes.count() == 2

    seen: set[str] = set()
    for question in range(3):
        for index, right in ((0, False), (1, True)):
            quiz = quizzes.nth(index)
            quiz.scroll_into_view_if_needed()
            if quiz.locator(".rgl-arrange select").count() == 0:  # the bank's single-choice one
                quiz.locator(".widget-radio-box input").first.click()
                submit_and_read(quiz)
                kind = "single"
            elif is_ordering(quiz):
                kind = "ordering"
                labels = [  # a dropdown's own label is there too, empty and hidden
                    text
                    for text in quiz.locator(".rgl-arrange .widget-label").all_text_contents()
                    if text
                ]
                assert labels == [f"Place {n}" for n in range(1, len(RIGHT_ORDER) + 1)]
                selects = quiz.locator(".rgl-arrange select")
                assert [
                    selects.nth(i).evaluate("s => s.options[s.selectedIndex].textContent")
                    for i in range(selects.count())
                ] == ["(choose)"] * len(RIGHT_ORDER)
                if not right:
                    check_rows_at_two_widths(page, quiz, index, "ordering-rows")
                answer_ordering(quiz, RIGHT_ORDER if right else RIGHT_ORDER[::-1])
                text = submit_and_read(quiz)
                if right:
                    assert "Correct." in text and "\u2717" not in text, text
                else:
                    assert "Not quite." in text and "The right order:" in text, text
                    assert "\u2717" in text
                    lines = quiz.locator(".widget-html-content ol li").all_text_contents()
                    assert len(lines) == len(RIGHT_ORDER), lines
                    assert [
                        line[2 : 2 + len(item)]
                        for line, item in zip(lines, RIGHT_ORDER, strict=True)
                    ] == (RIGHT_ORDER), lines
            else:
                kind = "matching"
                rows = quiz.locator(".rgl-arrange > .widget-box")
                assert rows.count() == len(PAIRS)
                shown = rows.locator(".widget-html-content").all_text_contents()
                assert sorted(re.sub(r"^\d+\.\s*", "", s) for s in shown) == sorted(PAIRS)
                if not right:
                    check_rows_at_two_widths(page, quiz, index, "matching-rows")
                answer_matching(quiz, right)
                text = submit_and_read(quiz)
                if right:
                    assert "Correct." in text and "\u2717" not in text, text
                else:
                    assert "Not quite." in text and "The right pairs:" in text, text
                    for prompt, answer in PAIRS.items():
                        assert f"{prompt} \u2192 {answer}" in text, text
            if kind != "single":
                screenshot(page, f"{kind}-{'right' if right else 'wrong'}", full_page=False)
            seen.add(kind)
            if question < 2:
                quiz.get_by_role("button", name=re.compile("^(Next|See results)$")).click()
    assert {"ordering", "matching"} <= seen
