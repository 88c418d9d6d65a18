"""Live cells run the learner's finished labs, and the solution for each lab task not done yet.

With `LAB_IMPL=labs`, a notebook's live cells import the learner's `labs/`. An untouched lab task
raises `NotImplementedError`, which used to stop a live demo with a server traceback, whatever
lab the notebook was about. In a notebook kernel (never under pytest: grading stays strict)
`labs` modules are compiled from the learner's file with every lab block wrapped like this:

    try:
        <the learner's block, on its own line numbers>
    except Exception as error:
        if not <an unfinished task, or a bug in the learner's block>: raise
        <the solution's region, from reference_impl/>

and the cell says so in one line: "lab 04 not done yet: the reference `check_max_tokens` runs".
The errors a task raises by design (`GatewayError`, `SSEFieldError`, ...) go through unchanged.
The blocks are found by their markers (`course.regions`), so this follows whatever regions
`tools/make_labs.py` cuts.

A learner edits `labs/` while the kernel runs: `refresh()` reloads the edited modules (and the
modules holding their old classes or functions) before each cell, so an edit takes effect
without a kernel restart.
"""

from __future__ import annotations

import ast
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from course.regions import BEGIN_LAB, BEGIN_SOLUTION, END_LAB, END_SOLUTION, spans

PACKAGE = "labs"
REFERENCE = "reference_impl"
SWITCH = "LAB_LIVE_FALLBACK"  # set to 0 to see the learner's own errors unchanged
HANDLE = "_lab_live"  # the name this module has inside a compiled lab module
ERROR = "_lab_live_error"

_said: set[tuple] = set()  # the one-line notes already printed for the current code
_loaded: dict[str, float] = {}  # lab module -> modification time of the file it was built from


def wanted() -> bool:
    """True in a notebook kernel, unless LAB_LIVE_FALLBACK=0."""
    if os.environ.get(SWITCH, "1").strip().lower() in {"0", "off", "no", "false"}:
        return False
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def install() -> None:
    """Compile `labs` modules with the fallback from now on, and refresh them before each cell."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None and refresh not in shell.events.callbacks["pre_run_cell"]:
        shell.events.register("pre_run_cell", refresh)


# --- telling the learner -----------------------------------------------------------------------


def _say_once(key: tuple, line: str) -> None:
    if key not in _said:
        _said.add(key)
        print(line, file=sys.stdout, flush=True)


def _learner_bug(error: BaseException) -> bool:
    """A built-in error from the learner's block (TypeError, KeyError, ...), not one the task
    raises on purpose and not the end of an iteration or a network failure."""
    return type(error).__module__ == "builtins" and not isinstance(
        error, StopIteration | StopAsyncIteration | OSError | NotImplementedError
    )


def falls_back(lab: str, title: str, where: str, path: str, error: BaseException) -> bool:
    """Called by a compiled lab block that raised: True runs the solution's region instead."""
    if isinstance(error, NotImplementedError):
        _say_once((lab, where, "todo"), f"lab {lab} not done yet: the reference `{where}` runs")
        return True
    if not _learner_bug(error):
        return False
    trace, line = error.__traceback__, None
    while trace is not None:  # the deepest line of the learner's file, where it went wrong
        if trace.tb_frame.f_code.co_filename == path:
            line = trace.tb_lineno
        trace = trace.tb_next
    at = f" at {Path(path).parent.name}/{Path(path).name}:{line}" if line else ""
    _say_once(
        (lab, where, type(error).__name__),
        f"lab {lab} ({title}): your `{where}` raised {type(error).__name__}: {error}{at}; "
        f"the reference runs instead, and `check_lab({lab!r})` shows what is expected",
    )
    return True


# --- compiling a lab module with its fallbacks ---------------------------------------------------

_BODIES = ("body", "orelse", "finalbody")


def _statement_lists(tree: ast.AST):
    for node in ast.walk(tree):
        for field in _BODIES:
            value = getattr(node, field, None)
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                yield value
        for case in getattr(node, "handlers", []) + getattr(node, "cases", []):
            yield case.body


def _between(tree: ast.AST, first: int, last: int) -> tuple[list, int, int] | None:
    """The statement list and slice holding the statements on lines first+1 .. last-1."""
    for statements in _statement_lists(tree):
        inside = [i for i, s in enumerate(statements) if first < s.lineno and s.end_lineno < last]
        if inside:
            return statements, inside[0], inside[-1] + 1
    return None


def _enclosing(tree: ast.AST, line: int) -> str:
    """The dotted name of the function (or method) that holds `line`."""
    names: list[str] = []
    node = tree
    while True:
        for child in ast.iter_child_nodes(node):
            span = (getattr(child, "lineno", None), getattr(child, "end_lineno", None))
            if span[0] is not None and span[0] <= line <= span[1]:
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    names.append(child.name)
                node = child
                break
        else:
            return ".".join(names) or "<module>"


def _at_line(nodes: list[ast.stmt], line: int) -> list[ast.stmt]:
    """The solution's statements, placed on the learner's BEGIN line (their own lines would
    point into the wrong file)."""
    for statement in nodes:
        for node in ast.walk(statement):
            if "lineno" in node._attributes:
                node.lineno = node.end_lineno = line
                node.end_col_offset = node.col_offset
    return nodes


def hybrid(learner_source: str, reference_source: str, path: str) -> ast.Module:
    """The learner's module with every lab block falling back to the matching solution region."""
    tree = ast.parse(learner_source, path)
    blocks = spans(learner_source.splitlines(), BEGIN_LAB, END_LAB)
    regions = spans(reference_source.splitlines(), BEGIN_SOLUTION, END_SOLUTION)
    if not blocks or [b["lab"] for b in blocks] != [r["lab"] for r in regions]:
        return tree  # markers moved or deleted: the file runs as it is written
    reference = ast.parse(reference_source)
    # From the last block up, so the statement indexes of earlier blocks stay valid.
    for block, region in reversed(list(zip(blocks, regions, strict=True))):
        mine = _between(tree, block["begin"], block["end"])
        solution = _between(reference, region["begin"], region["end"])
        if mine is None or solution is None:
            continue
        statements, start, stop = mine
        ref_statements, ref_start, ref_stop = solution
        line = block["begin"]
        check = ast.parse(
            f"if not {HANDLE}.falls_back({block['lab']!r}, {block['title']!r}, "
            f"{_enclosing(tree, line)!r}, {path!r}, {ERROR}):\n    raise\n"
        ).body
        wrapped = ast.Try(
            body=statements[start:stop],
            handlers=[
                ast.ExceptHandler(
                    type=ast.Name("Exception", ast.Load()),
                    name=ERROR,
                    body=_at_line(check + ref_statements[ref_start:ref_stop], line),
                )
            ],
            orelse=[],
            finalbody=[],
        )
        column = statements[start].col_offset
        statements[start:stop] = [wrapped]
        for node in (wrapped, wrapped.handlers[0], wrapped.handlers[0].type):
            node.lineno = node.end_lineno = line
            node.col_offset = node.end_col_offset = column
    return ast.fix_missing_locations(tree)


class _Loader(importlib.machinery.SourceFileLoader):
    """Loads a `labs` module from its source every time (never a cached .pyc), with fallbacks."""

    def get_code(self, fullname: str):
        path = self.get_filename(fullname)
        source = self.get_data(path).decode("utf-8")
        reference = _reference_file(fullname, path)
        tree = (
            hybrid(source, reference.read_text(encoding="utf-8"), path)
            if reference is not None and reference.exists()
            else ast.parse(source, path)
        )
        _loaded[fullname] = os.stat(path).st_mtime
        return compile(tree, path, "exec", dont_inherit=True)

    def exec_module(self, module: ModuleType) -> None:
        module.__dict__[HANDLE] = sys.modules[__name__]
        super().exec_module(module)


def _reference_file(fullname: str, path: str) -> Path | None:
    """reference_impl's file for a lab module: the same path in the other package."""
    spec = importlib.util.find_spec(REFERENCE)
    if spec is None or not spec.submodule_search_locations:
        return None
    parts = fullname.split(".")[1:]
    if Path(path).name == "__init__.py":
        relative = Path(*parts, "__init__.py")
    else:
        relative = Path(*parts[:-1], parts[-1] + ".py")
    return Path(spec.submodule_search_locations[0]) / relative


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path=None, target=None):
        if fullname != PACKAGE and not fullname.startswith(PACKAGE + "."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not (spec.origin or "").endswith(".py"):
            return spec
        spec.loader = _Loader(fullname, spec.origin)
        return spec


# --- taking edits into account -------------------------------------------------------------------


def _lab_modules() -> dict[str, ModuleType]:
    return {
        name: module
        for name, module in list(sys.modules.items())
        if (name == PACKAGE or name.startswith(PACKAGE + ".")) and getattr(module, "__file__", None)
    }


def _stale(module: ModuleType) -> bool:
    """True when the module holds a class or function its home module has since replaced."""
    for value in list(vars(module).values()):
        home = sys.modules.get(getattr(value, "__module__", None) or "")
        name = getattr(value, "__name__", None)
        if (
            home is not None
            and home is not module
            and home.__name__.startswith(PACKAGE + ".")
            and isinstance(name, str)
            and getattr(home, name, value) is not value
        ):
            return True
    return False


def refresh(*_: object) -> list[str]:
    """Reload the lab modules edited since they were loaded, then those still holding their old
    objects. Returns the names reloaded. Runs before each cell once `install()` was called."""
    modules = _lab_modules()
    edited = [
        name
        for name, module in modules.items()
        if name in _loaded
        and os.path.exists(module.__file__)
        and os.stat(module.__file__).st_mtime != _loaded[name]
    ]
    reloaded: list[str] = []
    if edited:
        _said.clear()  # new code: its notes may be said again
    for name in edited:
        importlib.reload(modules[name])
        reloaded.append(name)
    for _ in range(len(modules)):  # until nothing holds an old object (a chain at most this long)
        stale = [name for name, module in modules.items() if reloaded and _stale(module)]
        if not stale:
            break
        for name in stale:
            importlib.reload(modules[name])
            reloaded.append(name)
    return reloaded
