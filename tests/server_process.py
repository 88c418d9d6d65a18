"""A real `python -m reference_impl` on loopback, its log captured: for the tests of what the
server process itself does (its bounds, SIGTERM, many clients at once)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "proc-key"


class ServerProcess:
    """`python -m reference_impl --port 0` with GATEWAY_* `settings`; `log` is all it wrote."""

    def __init__(self, **settings: object) -> None:
        env = {**os.environ, "GATEWAY_API_KEYS": API_KEY}
        env.update({f"GATEWAY_{name.upper()}": str(value) for name, value in settings.items()})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reference_impl", "--port", "0", "--log-level", "warning"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        first = self.process.stdout.readline()
        match = re.match(r"Gateway \(reference_impl\) on (http://127\.0\.0\.1:(\d+))", first)
        assert match, first
        self.url, self.port = match.group(1), int(match.group(2))
        self.lines: list[str] = [first]
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 30
        while True:  # the port is printed just before uvicorn starts serving
            try:
                if httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.05)

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    @property
    def pid(self) -> int:
        return self.process.pid

    def metric(self, name: str, **labels: str) -> float:
        """One value of the server's /metrics (0 when the series does not exist yet)."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        wanted = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
        for line in text.splitlines():
            series, _, value = line.rpartition(" ")
            if series == name or (labels and series == name + wanted):
                return float(value)
        return 0.0

    def wait_for_metric(self, name: str, value: float, timeout: float = 20.0, **labels) -> None:
        deadline = time.monotonic() + timeout
        while self.metric(name, **labels) != value:
            assert time.monotonic() < deadline, f"{name}{labels} stayed {self.metric(name)}"
            time.sleep(0.05)

    def peak_memory_bytes(self) -> int:
        """The process's peak resident memory so far (VmHWM)."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)

    def stop(self) -> str:
        """SIGTERM, wait (killing it if it will not go), and return its whole log."""
        self.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.reader.join(5)
        return self.log
