"""`python -m reference_impl`: serve the gateway of the implementation LAB_IMPL selects.

Options override the GATEWAY_* environment; everything else comes from it (see settings.py).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

import uvicorn

from course import impl as impl_switch

OPTION_ENV = {
    "fake_behavior": "GATEWAY_FAKE_BEHAVIOR",
    "fake_tokens_per_second": "GATEWAY_FAKE_TOKENS_PER_SECOND",
    "api_keys": "GATEWAY_API_KEYS",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reference_impl", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 lets the OS pick a free port")
    parser.add_argument("--impl", choices=sorted(impl_switch.PACKAGES), help="default: $LAB_IMPL")
    parser.add_argument(
        "--fake-behavior", help="normal | runaway | stall | fail_midstream | throttled"
    )
    parser.add_argument("--fake-tokens-per-second", help="speed of the fake model")
    parser.add_argument("--api-keys", help="comma-separated keys clients may use")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    for option, variable in OPTION_ENV.items():
        if getattr(args, option) is not None:
            os.environ[variable] = str(getattr(args, option))
    if args.impl:
        impl_switch.select(args.impl)
    try:
        name = impl_switch.current()
        app_module = impl_switch.load("app")
        settings_module = impl_switch.load("settings")
        settings = settings_module.Settings()
    except Exception as error:  # bad settings or LAB_IMPL: say what, not a traceback
        print(f"cannot start the gateway: {error}", file=sys.stderr)
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
    print(f"Gateway ({name}) on http://{args.host}:{port}  model: {settings.model}", flush=True)
    print(
        f"  try: curl -N -H 'Authorization: Bearer {settings.api_keys[0]}' "
        f'-H \'Content-Type: application/json\' -d \'{{"question": "What is the idle timeout?", '
        f'"document_id": "api-gateway-websocket-limits"}}\' '
        f"http://{args.host}:{port}/v1/ask/stream",
        flush=True,
    )
    print(f"  contract: http://{args.host}:{port}/docs", flush=True)
    config = uvicorn.Config(app, log_level=args.log_level, **app.state.uvicorn_options)
    try:
        GatewayServer(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn has shut down cleanly; Ctrl-C needs no traceback
        print("Gateway stopped (Ctrl-C).", flush=True)
    return 0


class GatewayServer(uvicorn.Server):
    """uvicorn, but open chat answers get an `error` before their sockets close with 1012.

    uvicorn closes every WebSocket as it shuts down, before the app's lifespan shutdown, so
    the gateway is told first, on the server's own loop.
    """

    async def shutdown(self, sockets=None) -> None:
        shutdown_streams = getattr(self.config.app.state, "shutdown_streams", None)
        if shutdown_streams is not None:
            await shutdown_streams()
        await super().shutdown(sockets)
