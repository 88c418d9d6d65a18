"""Shared fixtures. The grading switch (--impl, lab markers, scoreboard) is `course.grading`."""

pytest_plugins = ["course.grading"]
