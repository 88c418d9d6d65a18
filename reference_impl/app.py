"""The gateway app: the routes of the contract, wired in the order a request flows.

request -> edge checks (edge.py) -> admission (limits.py) -> model stream (model.py)
        -> stream guard (guard.py) -> wire format (wire_sse.py for SSE, JSON for /v1/ask,
           wire_ws.py for the WebSocket chat, whose connections chat.py serves)

`contract/openapi.yaml` is the contract of the HTTP routes and `contract/asyncapi.yaml` of the
WebSocket chat; this file implements them and a test fails when they disagree on a route.
FastAPI's own generated schema and docs are switched off.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import cached_property

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import demo_page, edge
from .chat import ChatHub
from .contract.schemas import CONTRACT_PATH, load_contract
from .documents import builtin
from .errors import GatewayError, problem, problem_from, problem_response
from .guard import Delta, Finished, Limits, Progress, guard_stream
from .limits import Admission, Ticket
from .metrics import Metrics
from .model import ModelRequest, build_model
from .settings import Settings
from .wire_sse import (
    PingComment,
    StreamOutcome,
    WatchedEventSourceResponse,
    end_data,
    first_item,
    sse_body,
)

log = logging.getLogger("gateway")
# Pings and the 200 are ours to decide; these headers stop proxies from buffering the stream.
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
# Stream endings counted in gateway_stream_cancellations_total{reason}.
EARLY_ENDINGS = frozenset(
    {"client_disconnect", "send_timeout", "stream_timeout", "idle_timeout", "model_error"}
)


@dataclass
class Gateway:
    """Everything one app instance owns: its settings, model, limits and metrics."""

    settings: Settings
    model: object
    metrics: Metrics
    admission: Admission

    @cached_property
    def contract_text(self) -> str:
        return CONTRACT_PATH.read_text(encoding="utf-8")

    def limits(self, max_tokens: int) -> Limits:
        s = self.settings
        return Limits(
            max_tokens=max_tokens,
            first_token_timeout=s.first_token_timeout_seconds,
            idle_timeout=s.idle_timeout_seconds,
            max_stream_seconds=s.max_stream_seconds,
        )

    def count_generated(self, progress: Progress) -> None:
        """Tell the cost meter about the tokens generated since it was last told. The guard
        calls this every 32 tokens (a metric update takes a lock) and settle() at the end."""
        new = progress.generated - progress.counted
        if new:
            self.metrics.tokens_generated.labels(model=self.model.name).inc(new)
            progress.counted = progress.generated

    def reject(self, code: str) -> None:
        self.metrics.rejections.labels(code=code).inc()

    def settle(self, ticket: Ticket, progress: Progress, outcome: StreamOutcome, started: float):
        """Bill what the model generated and free the slot; runs once, however the stream ended."""
        ticket.release(progress.input_tokens + progress.generated)
        m, s = self.metrics, self.settings
        self.count_generated(progress)
        m.streams_active.dec()
        m.tokens_delivered.inc(progress.delivered)
        m.cost_dollars.inc(
            progress.input_tokens / 1000 * s.price_per_1k_input_tokens
            + progress.generated / 1000 * s.price_per_1k_output_tokens
        )
        if outcome.error is not None:
            self.reject(outcome.error.code)
        if outcome.reason in EARLY_ENDINGS:
            m.cancellations.labels(reason=outcome.reason).inc()
        m.stream_duration.observe(time.perf_counter() - started)


def request_id_of(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id") or edge.new_request_id()


def create_app(settings: Settings | None = None, model: object | None = None) -> FastAPI:
    """A gateway app; settings default to the GATEWAY_* environment, the model to the settings."""
    settings = settings or Settings()
    gateway = Gateway(
        settings=settings,
        model=model or build_model(settings),
        metrics=Metrics(),
        admission=Admission(settings),
    )
    app = FastAPI(
        title="Realtime GenAI API Labs gateway",
        openapi_url=None,  # the contract is contract/openapi.yaml, served below
        docs_url=None,
        redoc_url=None,
    )
    app.state.gateway = gateway
    app.include_router(demo_page.router)  # GET / (the demo page) and its presenter panel
    app.add_middleware(edge.EdgeMiddleware, settings=settings, on_reject=gateway.reject)

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, error: GatewayError) -> Response:
        gateway.reject(error.code)
        return problem_response(problem_from(error, request_id_of(request)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(
            error.status_code, "invalid_request"
        )
        detail = {
            "not_found": "No such path; GET /docs lists the API.",
            "method_not_allowed": "This path does not take that method; GET /docs lists the API.",
        }.get(code, "The request was refused.")
        headers = dict(error.headers or {})
        return problem_response(problem(code, detail, request_id_of(request)), headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        # Log everything here; tell the client only that it failed and the id to quote.
        log.exception("unhandled error")
        gateway.reject("internal_error")
        body = problem(
            "internal_error", "The gateway failed; quote the request_id.", request_id_of(request)
        )
        return problem_response(body)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(gateway.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/openapi.yaml")
    async def contract() -> Response:
        return Response(gateway.contract_text, media_type="application/yaml")

    @app.get("/docs")
    async def docs() -> HTMLResponse:
        from .contract.docs_page import render_docs_html

        return HTMLResponse(render_docs_html(load_contract()))

    @app.get("/v1/documents")
    async def documents(request: Request) -> JSONResponse:
        key = edge.authenticate(request, settings)
        gateway.admission.check_rate(key)
        listing = [{"id": d.id, "title": d.title, "tokens": d.tokens} for d in builtin().values()]
        return JSONResponse({"documents": listing})

    async def admit(request: Request) -> tuple[ModelRequest, Ticket]:
        """Every edge check and the admission, in order; nothing here calls the model."""
        key = edge.authenticate(request, settings)
        gateway.admission.check_rate(key)
        ask = await edge.read_ask(request)
        model_request = edge.model_request(ask, settings)
        ticket = gateway.admission.admit(key, model_request.prompt_tokens, model_request.max_tokens)
        gateway.metrics.model_requests.labels(model=gateway.model.name).inc()
        gateway.metrics.streams_active.inc()
        return model_request, ticket

    def open_stream(model_request: ModelRequest, progress: Progress, started: float):
        return guard_stream(
            gateway.model,
            model_request,
            gateway.limits(model_request.max_tokens),
            progress,
            started_at=started,
            on_generated=lambda: gateway.count_generated(progress),
        )

    @app.post("/v1/ask")
    async def ask(request: Request) -> Response:
        """The whole answer as one JSON body: the baseline the streaming endpoint is measured
        against. The user waits in silence until the last token."""
        started = time.perf_counter()
        model_request, ticket = await admit(request)
        request_id = request_id_of(request)
        progress, outcome = Progress(), StreamOutcome()
        items = open_stream(model_request, progress, started)
        text = []
        try:
            async for item in items:
                if isinstance(item, Delta):
                    if not text:
                        gateway.metrics.ttft.observe(progress.first_token_at - started)
                    text.append(item.text)
                elif isinstance(item, Finished):
                    outcome.reason, outcome.finished = item.stop_reason, item
        except GatewayError as error:
            outcome.reason, outcome.error = error.code, error
            return problem_response(problem_from(error, request_id))
        finally:
            await items.aclose()
            gateway.settle(ticket, progress, outcome, started)
        return JSONResponse(
            {
                "request_id": request_id,
                "model": gateway.model.name,
                "answer": "".join(text),
                **end_data(outcome.finished),
            }
        )

    @app.post("/v1/ask/stream")
    async def ask_stream(request: Request) -> Response:
        started = time.perf_counter()
        model_request, ticket = await admit(request)
        request_id = request_id_of(request)
        progress, outcome = Progress(), StreamOutcome()
        items = open_stream(model_request, progress, started)
        try:
            first = await first_item(items)
        except BaseException as error:
            await items.aclose()
            if isinstance(error, GatewayError):
                outcome.reason, outcome.error = error.code, error
                gateway.settle(ticket, progress, outcome, started)
                return problem_response(problem_from(error, request_id))
            gateway.settle(ticket, progress, outcome, started)
            raise
        if progress.first_token_at is not None:
            gateway.metrics.ttft.observe(progress.first_token_at - started)
        start_data = {
            "request_id": request_id,
            "model": gateway.model.name,
            "limits": settings.limits_in_force(model_request.max_tokens),
        }

        async def close() -> None:
            # Client gone, send timeout, shutdown or a normal end: stop the model now and bill
            # what it generated (the bill and the slot even if closing the model fails).
            try:
                await items.aclose()
            finally:
                gateway.settle(ticket, progress, outcome, started)

        return WatchedEventSourceResponse(
            sse_body(first, items, start_data, request_id, outcome),
            outcome=outcome,
            on_close=close,
            headers={**STREAM_HEADERS, "X-Request-Id": request_id},
            ping=settings.ping_seconds,
            ping_message_factory=PingComment,
            send_timeout=settings.send_timeout_seconds,
        )

    hub = ChatHub(gateway)
    # uvicorn closes every WebSocket with 1012 as it stops, before the lifespan shutdown runs;
    # BackgroundServer.stop calls this first, so each open answer gets an `error` before that.
    app.state.before_server_stop = hub.before_server_stop
    # The same, for a server that calls it on its own loop (cli.GatewayServer).
    app.state.shutdown_streams = hub.shutdown
    # Options that belong to the server, not the app; BackgroundServer and the CLI apply them.
    app.state.uvicorn_options = {"ws_per_message_deflate": settings.ws_per_message_deflate}

    @app.post("/v1/chat/tickets", status_code=201)
    async def chat_ticket(request: Request) -> JSONResponse:
        """A single-use ticket that opens one chat connection from a browser, within seconds."""
        key = edge.authenticate(request, settings)
        gateway.admission.check_rate(key)
        issued = hub.tickets.issue(key)
        body = {
            "ticket": issued.ticket,
            "expires_in_seconds": settings.ws_ticket_seconds,
            "url": f"/v1/chat?ticket={issued.ticket}",
        }
        return JSONResponse(body, status_code=201, headers={"Cache-Control": "no-store"})

    @app.websocket("/v1/chat")
    async def chat(websocket: WebSocket) -> None:
        await hub.serve(websocket)

    return app
