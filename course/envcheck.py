"""Check that this Python environment can run the course; every failure says how to fix it.

Run it first, from notebooks/00_start_here.ipynb or a terminal:

    .venv/bin/python -m course.envcheck
"""

from __future__ import annotations

import html
import importlib
import os
import socket
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from course import impl as impl_switch

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "realtime-genai-api-labs"

# (distribution, import name, major version we need or None)
PACKAGES = [
    ("jupyterlab", "jupyterlab", 4),
    ("ipykernel", "ipykernel", None),
    ("ipywidgets", "ipywidgets", 8),
    ("jupyterlab_widgets", "jupyterlab_widgets", 3),
    ("fastapi", "fastapi", None),
    ("uvicorn", "uvicorn", None),
    ("sse-starlette", "sse_starlette", None),
    ("websockets", "websockets", None),
    ("httpx", "httpx", None),
    ("httpx-sse", "httpx_sse", None),
    ("pydantic-settings", "pydantic_settings", None),
    ("prometheus-client", "prometheus_client", None),
    ("boto3", "boto3", None),
    ("moto", "moto", 5),
    ("PyYAML", "yaml", None),
    ("matplotlib", "matplotlib", None),  # the figures (course/plots.py)
]

SETUP_FIX = "From the repository folder run `make lab` (it creates .venv and installs everything)."


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    ok = sys.version_info >= (3, 11)
    return Check(
        "Python 3.11 or newer",
        ok,
        f"Python {version} at {sys.executable}",
        "" if ok else "Install Python 3.11+, then `make clean lab` to rebuild .venv with it.",
    )


def check_packages() -> list[Check]:
    checks = []
    for distribution, module, major in PACKAGES:
        try:
            version = metadata.version(distribution)
            importlib.import_module(module)
        except (metadata.PackageNotFoundError, ImportError) as error:
            checks.append(Check(f"package {distribution}", False, f"missing ({error})", SETUP_FIX))
            continue
        ok = major is None or int(version.split(".")[0]) == major
        fix = (
            ""
            if ok
            else f"{distribution} {major}.x is needed: `make clean lab` reinstalls the pins."
        )
        checks.append(Check(f"package {distribution}", ok, version, fix))
    return checks


def check_kernel_is_project_environment() -> Check:
    """The kernel must be the interpreter the project is installed in, importing this repo."""
    try:
        metadata.version(PROJECT)
        package = impl_switch.load("", "reference")
    except (metadata.PackageNotFoundError, ImportError):
        return Check(
            "kernel is the project's environment",
            False,
            f"this kernel runs {sys.executable}, where the project is not installed",
            "Start JupyterLab with `make lab`, or pick the kernel of .venv (Kernel > Change "
            "Kernel); conda users: `conda activate realtime-genai-labs` before `jupyter lab`.",
        )
    where = Path(package.__file__).resolve().parent.parent
    ok = where == ROOT
    return Check(
        "kernel is the project's environment",
        ok,
        f"{sys.executable} imports the course from {where}",
        ""
        if ok
        else f"This kernel imports another copy of the course ({where}); use this "
        f"repository's .venv: `make lab` from {ROOT}.",
    )


def check_lab_switch() -> Check:
    try:
        name = impl_switch.current()
    except impl_switch.ImplementationError as error:
        return Check("LAB_IMPL switch", False, str(error), "Unset LAB_IMPL or set it to labs.")
    source = os.environ.get(impl_switch.ENV_VAR)
    how = f"LAB_IMPL={source}" if source else "LAB_IMPL unset, so the default"
    return Check("LAB_IMPL switch", True, f"{name} ({how})")


def check_loopback_port_zero() -> Check:
    """Notebooks run servers on 127.0.0.1 with a port the OS picks; that must be allowed."""
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    except OSError as error:
        return Check(
            "loopback server sockets",
            False,
            str(error),
            "Something blocks local sockets (a firewall or sandbox); allow 127.0.0.1.",
        )
    return Check("loopback server sockets", True, f"127.0.0.1 gave free port {port}")


def run_checks() -> list[Check]:
    return [
        check_python(),
        check_kernel_is_project_environment(),
        *check_packages(),
        check_lab_switch(),
        check_loopback_port_zero(),
    ]


def report_text(checks: list[Check]) -> str:
    lines = []
    for check in checks:
        lines.append(f"[{'ok' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
        if not check.ok:
            lines.append(f"       fix: {check.fix}")
    failed = sum(not check.ok for check in checks)
    lines.append(
        "All checks passed." if not failed else f"{failed} check(s) failed: fix them first."
    )
    return "\n".join(lines)


# Each row says its result in words on a coloured background: no emoji, so it reads the same
# on a machine without an emoji font (where the old ticks were empty boxes).
ROW_COLOURS = {True: ("ok", "#1a7f37", "#e6f4ea"), False: ("FIX", "#b3261e", "#fce8e6")}


def report_html(checks: list[Check]) -> str:
    rows = []
    for check in checks:
        word, ink, paper = ROW_COLOURS[check.ok]
        rows.append(
            f'<tr style="background:{paper}"><td style="color:{ink};font-weight:bold">{word}</td>'
            f"<td>{html.escape(check.name)}</td><td>{html.escape(check.detail)}</td>"
            f"<td>{html.escape(check.fix)}</td></tr>"
        )
    return (
        "<table><thead><tr><th></th><th>check</th><th>found</th><th>how to fix</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def main() -> int:
    checks = run_checks()
    print(report_text(checks))
    return 0 if all(check.ok for check in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
