"""What the widgets put on screen besides the questions: the exam's countdown, the card count.

The browser tests (tests/test_learner_loop_browser.py) look at the layout itself.
"""

from __future__ import annotations

import time

from quizzes import widgets


def wait_for(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_the_exam_countdown_ticks_and_is_gone_when_the_exam_ends(fixture_bank, clock):
    exam = widgets.exam(n=3, minutes=30, seed=2, bank=fixture_bank, clock=clock)
    assert "30 min 0 s left" in exam.header.value
    clock.advance(61)
    assert wait_for(lambda: "28 min 59 s left" in exam.header.value), exam.header.value
    exam.finish.click()
    assert "left" not in exam.header.value and "finished" in exam.header.value
    clock.advance(60)
    assert not wait_for(lambda: "left" in exam.header.value, seconds=1.5)


def test_the_exam_ends_itself_when_time_is_up(fixture_bank, clock):
    exam = widgets.exam(n=3, minutes=1, seed=2, bank=fixture_bank, clock=clock)
    clock.advance(61)
    assert wait_for(lambda: exam.report is not None)
    assert "Time is up" in exam.summary.value and "left" not in exam.header.value


def test_flashcards_say_card_n_of_n_and_the_bar_is_not_empty_on_card_one(fixture_bank):
    cards = widgets.flashcards(bank=fixture_bank)
    count = len(cards.rules)
    assert count > 1
    assert f"Card 1 of {count}" in cards.counter.value
    assert cards.progress.value > cards.progress.min
    cards.next.click()
    assert f"Card 2 of {count}" in cards.counter.value
