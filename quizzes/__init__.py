"""Quizzes for Realtime GenAI API Labs.

In a notebook:

    from quizzes import quiz, exam, review, flashcards, show_cheatsheet
    quiz(notebook="03")

In a terminal: `python -m quizzes practice --notebook 03` (see `python -m quizzes --help`).
The widget functions are imported on first use, so the terminal quiz does not load ipywidgets.
"""

_WIDGET_FUNCTIONS = {"quiz", "exam", "review", "flashcards", "show_cheatsheet"}

__all__ = sorted(_WIDGET_FUNCTIONS)


def __getattr__(name: str):
    if name in _WIDGET_FUNCTIONS:
        from . import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module 'quizzes' has no attribute {name!r}")
