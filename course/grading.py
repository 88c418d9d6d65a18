"""A pytest plugin that lets one suite grade either implementation.

- `--impl=reference|labs` (default: the LAB_IMPL environment variable, else `reference`) sets the
  one switch in `course.impl`, for this process and every process a test starts.
- `@pytest.mark.lab("04")` marks a test that grades lab 04; `@pytest.mark.lab("01", task=2)`
  names the Lab Task it grades (as the lab's notebook numbers them).
- `--lab=04` (or `--lab=all`) runs only lab tests and prints a scoreboard, one row per Lab Task,
  then the first failure of each task not done, in a few plain lines, and nothing else
  (`--lab-report=FILE` also writes that report to FILE).
- `--skeleton-must-fail` turns the run around: it is run against a freshly generated skeleton,
  where every lab test must fail. A lab test that passes there proves nothing about the learner's
  code, so it is reported by name and fails the run.
"""

from __future__ import annotations

import os
from collections import defaultdict
from types import ModuleType

import pytest

from course import catalog
from course import impl as impl_switch


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("course", "Realtime GenAI API Labs grading")
    group.addoption(
        "--impl",
        choices=sorted(impl_switch.PACKAGES),
        default=None,
        help="which implementation the tests exercise (default: $LAB_IMPL, else reference)",
    )
    group.addoption(
        "--lab",
        default=None,
        metavar="NN|all",
        help="run only the tests of lab NN (or of every lab) and print a scoreboard",
    )
    group.addoption(
        "--lab-report",
        default=None,
        metavar="FILE",
        help="with --lab: also write the scoreboard and first failures to FILE",
    )
    group.addoption(
        "--skeleton-must-fail",
        action="store_true",
        help="pass only if every lab test fails (run against an untouched labs/ skeleton)",
    )


def pytest_configure(config: pytest.Config) -> None:
    chosen = config.getoption("--impl") or impl_switch.current()
    impl_switch.select(chosen)
    lab = config.getoption("--lab")
    if lab and lab != "all":
        try:
            config.option.lab = catalog.normalise(lab)
        except ValueError as error:
            raise pytest.UsageError(str(error)) from error
    config.pluginmanager.register(Grader(config), "course-grader")


def lab_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("lab")
    if marker is None:
        return None
    if len(marker.args) != 1:
        raise pytest.UsageError(f"{item.nodeid}: use @pytest.mark.lab('NN') with one lab number")
    try:
        return catalog.normalise(marker.args[0])
    except ValueError as error:
        raise pytest.UsageError(f"{item.nodeid}: {error}") from error


def task_of(item: pytest.Item) -> int | None:
    """The Lab Task a lab test grades (`task=` on its marker), or None for the whole lab."""
    marker = item.get_closest_marker("lab")
    task = marker.kwargs.get("task") if marker is not None else None
    return int(task) if task is not None else None


FAILURE_LINES = 4  # a few plain lines per failure: what was expected, what came back
LINE_WIDTH = 160


def plain_failure(excinfo: pytest.ExceptionInfo) -> list[str]:
    """The exception in a few lines, without the traceback or pytest's `E` and `+` clutter."""
    lines = [line.rstrip() for line in excinfo.exconly().splitlines() if line.strip()]
    lines = [line for line in lines if not line.lstrip().startswith("+  where")]
    short = [
        line if len(line) <= LINE_WIDTH else line[: LINE_WIDTH - 3] + "..."
        for line in lines[:FAILURE_LINES]
    ]
    if len(lines) > FAILURE_LINES:
        short.append("...")
    return short


class Grader:
    """Selects lab tests, records each one's outcome, and prints the scoreboard."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.wanted = config.getoption("--lab")
        self.skeleton = config.getoption("--skeleton-must-fail")
        self.lab_of_test: dict[str, str] = {}
        self.task_of_test: dict[str, int | None] = {}
        # lab -> test id -> "passed" | "failed" | "skipped"
        self.results: dict[str, dict[str, str]] = defaultdict(dict)
        self.failures: dict[str, list[str]] = {}  # test id -> its failure, in plain lines
        if (self.wanted is not None or self.skeleton) and config.option.tbstyle == "auto":
            # The report is the scoreboard (or the skeleton check's one line): no tracebacks,
            # no "short test summary" repeating every failure. An explicit --tb still gets them.
            config.option.tbstyle = "no"
            config.option.reportchars = ""

    def pytest_report_header(self) -> list[str]:
        package = impl_switch.load()
        lines = [f"implementation: {impl_switch.current()} ({os.path.dirname(package.__file__)})"]
        if self.skeleton:
            lines.append("mode: skeleton-must-fail (every lab test must fail here)")
        return lines

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        only_labs = self.wanted is not None or self.skeleton
        keep, drop = [], []
        for item in items:
            lab = lab_of(item)
            if lab is not None:
                self.lab_of_test[item.nodeid] = lab
                self.task_of_test[item.nodeid] = task_of(item)
            selected = lab is not None and self.wanted in (None, "all", lab)
            (keep if selected or not only_labs else drop).append(item)
        if drop:
            self.config.hook.pytest_deselected(items=drop)
            items[:] = keep

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        report = outcome.get_result()
        if report.failed and item.nodeid in self.lab_of_test and call.excinfo is not None:
            self.failures.setdefault(item.nodeid, plain_failure(call.excinfo))

    def pytest_report_teststatus(self, report: pytest.TestReport):
        if (self.wanted is not None or self.skeleton) and report.nodeid in self.lab_of_test:
            # No progress letter per test: the scoreboard follows.
            if report.when == "call" or report.failed or report.skipped:
                return report.outcome, "", report.outcome.upper()
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        lab = self.lab_of_test.get(report.nodeid)
        if lab is None:
            return
        tests = self.results[lab]
        # Passed means the call passed and no phase failed; a failing setup or teardown fails it.
        if report.failed:
            tests[report.nodeid] = "failed"
        elif report.skipped:
            tests.setdefault(report.nodeid, "skipped")
        elif report.when == "call":
            tests.setdefault(report.nodeid, "passed")

    def scoreboard(self) -> list[str]:
        """One row per Lab Task, then the first failure of each task not done."""
        labs = catalog.labs()
        package = impl_switch.load()
        lines = [
            "Lab scoreboard",
            "==============",
            f"implementation: {impl_switch.current()} ({os.path.dirname(package.__file__)})",
        ]
        total_passed = total = 0
        first_failures: list[str] = []
        for number in sorted(self.results):
            tests = self.results[number]
            passed = sum(1 for outcome in tests.values() if outcome == "passed")
            total_passed += passed
            total += len(tests)
            status = "done" if passed == len(tests) else "to do"
            lines.append(
                f"Lab {number} {labs[number].title}: {passed}/{len(tests)} checks passed ({status})"
            )
            by_task: dict[int | None, list[str]] = defaultdict(list)
            for nodeid in tests:
                by_task[self.task_of_test.get(nodeid)].append(nodeid)
            titles = catalog.tasks(number)
            if set(by_task) == {None} and len(titles) == 1:
                by_task = {next(iter(titles)): by_task[None]}  # a one-task lab: that task
            for task in sorted(by_task, key=lambda t: (t is None, t or 0)):
                ids = by_task[task]  # in the order they ran
                done = sum(1 for nodeid in ids if tests[nodeid] == "passed")
                name = f"Task {task}: {titles.get(task, '')}".rstrip(": ") if task else "Whole lab"
                mark = "done " if done == len(ids) else "to do"
                lines.append(f"  {mark}  {name} ({done}/{len(ids)})")
                failed = [nodeid for nodeid in ids if nodeid in self.failures]
                if done != len(ids) and failed:
                    first = failed[0]
                    test = first.split("::", 1)[-1]
                    label = f"Task {task}" if task else "whole-lab check"
                    first_failures.append(f"Lab {number} {label} ({test}):")
                    first_failures.extend(f"    {line}" for line in self.failures[first])
        lines.append(f"Total: {total_passed}/{total} checks passed")
        if first_failures:
            lines += ["", "First failure of each task to do:", *first_failures]
        return lines

    def passing_on_skeleton(self) -> list[str]:
        return sorted(
            nodeid
            for tests in self.results.values()
            for nodeid, outcome in tests.items()
            if outcome != "failed"
        )

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.skeleton:
            terminalreporter.write_sep("=", "skeleton check")
            passing = self.passing_on_skeleton()
            if passing:
                terminalreporter.write_line(
                    "These lab tests do not fail on the untouched skeleton, so they cannot tell a "
                    "learner's solution from no solution. Make each exercise the lab's code:"
                )
                for nodeid in passing:
                    terminalreporter.write_line(f"  {nodeid}")
            else:
                count = sum(len(tests) for tests in self.results.values())
                terminalreporter.write_line(
                    f"all {count} lab tests fail on the skeleton, as they must"
                )
            return
        if self.results and (self.wanted is not None or impl_switch.current() == "labs"):
            lines = self.scoreboard()
            terminalreporter.write_line("")
            for line in lines:
                terminalreporter.write_line(line)
            report = self.config.getoption("--lab-report")
            if report:
                with open(report, "w", encoding="utf-8") as out:
                    out.write("\n".join(lines) + "\n")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.skeleton:
            return
        if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            return  # interrupted, usage error or nothing collected: keep pytest's own code
        if not self.results:
            session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
        elif self.passing_on_skeleton():
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        else:
            session.exitstatus = pytest.ExitCode.OK


class Implementation:
    """What tests use to reach the code under test: `impl.sse`, `impl.load("gateway.app")`."""

    @property
    def name(self) -> str:
        return impl_switch.current()

    def load(self, module: str) -> ModuleType:
        return impl_switch.load(module)

    def __getattr__(self, module: str) -> ModuleType:
        if module.startswith("_"):
            raise AttributeError(module)
        return impl_switch.load(module)


@pytest.fixture(scope="session")
def impl() -> Implementation:
    """The implementation under test, chosen by --impl / LAB_IMPL."""
    return Implementation()
