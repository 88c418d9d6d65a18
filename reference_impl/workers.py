"""Several worker processes serving one port: `python -m reference_impl --workers N`.

The command line binds the socket once; each worker is a spawned process (not a fork) with its
own event loop and its own app, built from the same GATEWAY_* environment, and the kernel hands
each new connection to one of them. What is in a worker's memory is that worker's alone: its
limits too, unless they are kept in Redis (shared_limits.py), which the command line says.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn

from .server_bounds import uvicorn_config


@dataclass(frozen=True)
class WorkerApp:
    """How a worker builds and serves its app. Functions and classes travel to a spawned
    process by name, so the workers serve the same package as the command line."""

    create_app: Callable[[Any], Any]
    settings: type
    server: type[uvicorn.Server]


def limits_scope(app, workers: int) -> str:
    """One line on what N workers do to the limits, from the admission the app really uses."""
    if getattr(app.state.gateway.admission, "scope", "per_worker") == "shared":
        return f"limits: shared by the {workers} workers in Redis (GATEWAY_REDIS_URL)"
    return (
        f"limits: PER WORKER: each of the {workers} workers keeps its own rate, token budget and "
        f"stream slots, so together they let up to {workers} times the traffic through, and a "
        "dropped stream resumes only if the resume reaches the worker streaming it; set "
        "GATEWAY_REDIS_URL to share them"
    )


def serve(sock: socket.socket, workers: int, worker_app: WorkerApp, log_level: str) -> int:
    """Run `workers` processes on the bound socket until SIGTERM or SIGINT, then stop them all."""
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=serve_one, args=(sock, worker_app, log_level), name=f"worker-{n}")
        for n in range(workers)
    ]
    for process in processes:
        process.start()

    def stop(signum, frame) -> None:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: each worker's server shuts down cleanly

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for process in processes:
        process.join()
    return 0 if all(p.exitcode in (0, -signal.SIGTERM) for p in processes) else 1


def serve_one(sock: socket.socket, worker_app: WorkerApp, log_level: str) -> None:
    """One worker process: its own app, settings read from the environment it inherited."""
    app = worker_app.create_app(worker_app.settings())
    config = uvicorn_config(app, log_level=log_level)
    worker_app.server(config).run(sockets=[sock])
