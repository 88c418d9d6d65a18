"""`python -m reference_impl` (or `python -m labs`): serve this package's gateway.

Options override the GATEWAY_* environment; everything else comes from it (see settings.py).
`python -m course.serve` (`make gateway`) picks the package from LAB_IMPL and runs its `main`.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

from . import app as app_module
from . import workers
from .background import GatewayServer
from .server_bounds import uvicorn_config
from .settings import Settings

OPTION_ENV = {
    "fake_behavior": "GATEWAY_FAKE_BEHAVIOR",
    "fake_tokens_per_second": "GATEWAY_FAKE_TOKENS_PER_SECOND",
    "api_keys": "GATEWAY_API_KEYS",
}


def main(argv: list[str] | None = None) -> int:
    package = __package__ or "reference_impl"
    parser = argparse.ArgumentParser(prog=f"python -m {package}", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 lets the OS pick a free port")
    parser.add_argument(
        "--fake-behavior", help="normal | runaway | stall | fail_midstream | throttled"
    )
    parser.add_argument("--fake-tokens-per-second", help="speed of the fake model")
    parser.add_argument("--api-keys", help="comma-separated keys clients may use")
    parser.add_argument(
        "--demo", action="store_true", help="the demo page's presenter panel (fake model only)"
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the port (limits are per worker unless GATEWAY_REDIS_URL)",
    )
    args = parser.parse_args(argv)
    if args.demo:
        os.environ["GATEWAY_DEMO_CONTROLS"] = "true"
    for option, variable in OPTION_ENV.items():
        if getattr(args, option) is not None:
            os.environ[variable] = str(getattr(args, option))
    try:
        settings = Settings()
    except Exception as error:  # bad settings: say what, not a traceback
        print(f"cannot start the gateway: {error}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("--workers must be 1 or more", file=sys.stderr)
        return 2
    app = app_module.create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as error:
        print(f"cannot listen on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    print(f"Gateway ({package}) on http://{args.host}:{port}  model: {settings.model}", flush=True)
    # Only the built-in course key is shown; a key of your own stays off the terminal (and out
    # of whatever records it).
    default_key = Settings.model_fields["api_keys"].default
    key = settings.api_keys[0] if tuple(settings.api_keys) == default_key else "<your key>"
    print(
        f"  try: curl -N -H 'Authorization: Bearer {key}' "
        f'-H \'Content-Type: application/json\' -d \'{{"question": "What is the idle timeout?", '
        f'"document_id": "api-gateway-websocket-limits"}}\' '
        f"http://{args.host}:{port}/v1/ask/stream",
        flush=True,
    )
    print(f"  contract: http://{args.host}:{port}/docs", flush=True)
    print(f"  demo page: http://{args.host}:{port}/  (API key: {key})", flush=True)
    if args.workers > 1:
        print(f"  {workers.limits_scope(app, args.workers)}", flush=True)
        return workers.serve(
            sock,
            args.workers,
            workers.WorkerApp(app_module.create_app, Settings, GatewayServer),
            args.log_level,
        )
    config = uvicorn_config(app, log_level=args.log_level)
    try:
        GatewayServer(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn has shut down cleanly; Ctrl-C needs no traceback
        print("Gateway stopped (Ctrl-C).", flush=True)
    return 0
