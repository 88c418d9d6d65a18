"""A real JupyterLab for the browser tests, started as a learner starts it: `make lab`.

It serves a temporary copy of the course (so a test may write into `labs/` and the checkout is
never touched), on a free port, with a token, as root when the tests run as root, and with the
project's `.venv` (so its kernel is the project's Python). `Lab` drives it the way a learner
does: open a file or a notebook, Run All, read what the cells show.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parent.parent
NOT_COPIED = shutil.ignore_patterns(
    ".venv", ".git", "test-artifacts", "__pycache__", ".*_cache", ".lab-backups", "*.egg-info"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Lab:
    url: str
    token: str
    root: Path  # the course copy JupyterLab serves
    log: Path

    def link(self, path: str = "") -> str:
        """The page for `path`, in a new empty workspace: no tabs restored from an earlier test
        (JupyterLab keeps hidden tabs in the page, and their cells would match too)."""
        workspace = f"/lab/workspaces/t{secrets.token_hex(4)}"
        where = f"{workspace}/tree/{path}" if path else workspace
        return f"{self.url}{where}?token={self.token}"

    def put_file(self, path: str, text: str) -> None:
        """Save a file through JupyterLab's contents API, as its editor does."""
        response = httpx.put(
            f"{self.url}/api/contents/{path}",
            params={"token": self.token},
            json={"type": "file", "format": "text", "content": text},
            timeout=30,
        )
        response.raise_for_status()


def start(
    tmp: Path, env: dict[str, str], start_timeout: float = 90
) -> tuple[Lab, subprocess.Popen]:
    copy = tmp / "course"
    shutil.copytree(ROOT, copy, ignore=NOT_COPIED, symlinks=True)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    token, port = secrets.token_hex(16), free_port()
    args = f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token}"
    log = tmp / "jupyterlab.log"
    environment = {
        **os.environ,
        # The kernel imports the copy's course, labs and quizzes, not the checkout's.
        "PYTHONPATH": str(copy),
        "QUIZ_PROGRESS_FILE": str(tmp / "quiz-progress.json"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        **env,
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "lab", f"ARGS={args}"],
            cwd=copy,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    lab = Lab(f"http://127.0.0.1:{port}", token, copy, log)
    deadline = time.monotonic() + start_timeout
    while True:
        try:
            if httpx.get(f"{lab.url}/api/status", params={"token": token}, timeout=5).is_success:
                return lab, process
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise AssertionError("JupyterLab did not start:\n" + log.read_text()[-3000:])
        time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


# --- driving the page -----------------------------------------------------------------------------

# The notebook on show: JupyterLab keeps the other open tabs in the page, hidden.
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"


def open_notebook(page, lab: Lab, path: str) -> None:
    page.goto(lab.link(path))
    page.locator(f"{NOTEBOOK} .jp-Cell").first.wait_for(timeout=60_000)
    wait_idle(page)


def wait_idle(page, timeout: float = 120_000) -> None:
    """The kernel has started and is idle (the notebook toolbar's status)."""
    page.wait_for_function(
        """() => {
            const status = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) '
                + '.jp-Notebook-ExecutionIndicator');
            return status && status.getAttribute('data-status') === 'idle';
        }""",
        timeout=timeout,
    )


def run_all(page, timeout: float = 180_000) -> list[str]:
    """Run > Run All Cells, wait until nothing is queued and the kernel is idle; returns each
    code cell's prompt ("[3]:" ran, "[ ]:" did not).

    A kernel that is still connecting when the notebook opens can drop the queued cells (they go
    back to "[ ]" with no output): then Run All is pressed once more, as a learner would."""
    for _run in range(2):
        shown = _run_all_once(page, timeout)
        if all(re.fullmatch(r"\[\d+\]:", prompt) for prompt in shown):
            break
        if any(text.strip() for text in outputs(page)[1:]):
            break  # the cells stopped at an error: the caller sees it
    return shown


def _run_all_once(page, timeout: float) -> list[str]:
    for _attempt in range(3):
        page.locator(f"{NOTEBOOK} .jp-Cell").first.click()  # the notebook is the current widget
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        item = page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$"))
        item.hover()
        item.click()
        try:  # a click that lands while the menu is still opening does nothing: try again
            page.wait_for_function(
                """() => [...document.querySelectorAll(
                    NOTEBOOK + ' .jp-CodeCell .jp-InputArea-prompt')]
                    .some(p => /\\[[\\d*]+\\]/.test(p.textContent))""".replace(
                    "() =>", "(NOTEBOOK) =>"
                ),
                arg=NOTEBOOK,
                timeout=15_000,
            )
            break
        except PlaywrightTimeout:
            continue
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll(
                NOTEBOOK + ' .jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent);
            return prompts.length > 0 && !prompts.some(p => p.includes('*'))
                && prompts.some(p => /\\[\\d+\\]/.test(p));
        }""".replace("() =>", "(NOTEBOOK) =>"),
        arg=NOTEBOOK,
        timeout=timeout,
    )
    wait_idle(page, timeout)
    return prompts(page)


def prompts(page) -> list[str]:
    return page.evaluate(
        """(NOTEBOOK) => [...document.querySelectorAll(
            NOTEBOOK + ' .jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent)""",
        NOTEBOOK,
    )


def outputs(page) -> list[str]:
    """The text each code cell shows, in order (one string per cell). textContent, not
    innerText: JupyterLab skips rendering the cells out of view, and innerText is empty there."""
    return page.evaluate(
        """(NOTEBOOK) => [...document.querySelectorAll(NOTEBOOK + ' .jp-CodeCell')].map(cell =>
            [...cell.querySelectorAll('.jp-OutputArea-output')]
                .map(o => o.textContent).join('\\n'))
        """,
        NOTEBOOK,
    )


def run_cell(page, index: int) -> None:
    """Click code cell `index` and press Shift+Enter, as a learner re-runs one cell."""
    cell = page.locator(f"{NOTEBOOK} .jp-CodeCell").nth(index)
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")


def cell_count(notebook: Path) -> int:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return sum(1 for cell in cells if cell["cell_type"] == "code")
