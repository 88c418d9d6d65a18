"""The one switch between `reference_impl` (the solutions) and `labs` (the learner's copy).

Everything that runs course code (pytest, the notebooks, `python -m course.serve`) asks this
module which package to use, so an instructor flips the whole course with one word:

    LAB_IMPL=labs make check        # grade the learner's code
    LAB_IMPL=reference make lab     # demonstrate with the solutions

`labs` is generated from `reference_impl` with the solution regions cut out, so both packages
have the same module tree and either can be imported in place of the other.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

ENV_VAR = "LAB_IMPL"
PACKAGES = {"reference": "reference_impl", "labs": "labs"}
DEFAULT = "reference"


class ImplementationError(ValueError):
    """LAB_IMPL names something that is neither `reference` nor `labs`."""


def current() -> str:
    """The implementation in force: the value of LAB_IMPL, or `reference` when it is unset."""
    value = os.environ.get(ENV_VAR, "").strip().lower() or DEFAULT
    if value not in PACKAGES:
        raise ImplementationError(
            f"{ENV_VAR}={os.environ.get(ENV_VAR)!r} is not one of {sorted(PACKAGES)}; "
            f"use {ENV_VAR}=reference for the solutions or {ENV_VAR}=labs for your own code."
        )
    return value


def select(name: str) -> None:
    """Switch the implementation for this process and every process it starts."""
    if name not in PACKAGES:
        raise ImplementationError(
            f"unknown implementation {name!r}; choose from {sorted(PACKAGES)}"
        )
    os.environ[ENV_VAR] = name


def package_name(name: str | None = None) -> str:
    """The importable package behind an implementation name (default: the current one)."""
    return PACKAGES[name or current()]


def load(module: str = "", name: str | None = None) -> ModuleType:
    """Import `module` (for example "sse" or "gateway.app") from the current implementation.

    In a notebook kernel, `labs` comes with the live fallback of `course.live`; pytest (grading)
    never gets it.
    """
    package = package_name(name)
    if package == PACKAGES["labs"]:
        from course import live

        if live.wanted():  # a notebook kernel: unfinished lab tasks run the solution, and say so
            live.install()
            live.refresh()
    return importlib.import_module(f"{package}.{module}" if module else package)
