"""The gateway app: the routes of the contract, wired in the order a request flows.

request -> edge checks (edge.py) -> admission (limits.py) -> model stream (model.py)
        -> stream guard (guard.py) -> wire format (wire_sse.py for SSE, JSON for /v1/ask,
           wire_ws.py for the WebSocket chat, whose connections chat.py serves)

A stream's whole life (admission, the guarded model stream, its single close and its bill) is
one `StreamSession` (session.py); the routes here only encode what it yields. An SSE answer is
made by a task of its own into a replay buffer (resumable.py, replay.py), so a client that
lost its connection resumes it with `GET /v1/ask/stream/{request_id}`. Routes read the
app's `Gateway` from `request.app.state`, and every /v1 route starts with the same check,
`api_key`: a known key within its request rate. `create_app` only assembles.

`contract/openapi.yaml` is the contract of the HTTP routes and `contract/asyncapi.yaml` of the
WebSocket chat; this file implements them and a test fails when they disagree on a route.
FastAPI's own generated schema and docs are switched off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, FastAPI, Request, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.routing import Route

from . import access_log, demo_page, edge, server_bounds
from .chat import ChatHub
from .contract.schemas import CONTRACT_PATH, load_contract
from .disconnect import ClientGone, unless_disconnected
from .documents import builtin
from .errors import GatewayError, problem, problem_from, problem_response
from .gateway import Gateway
from .guard import Delta, Finished, end_data
from .model import Model
from .origins import OriginMiddleware
from .replay import build_replay
from .request_id import RequestIdMiddleware, new_request_id
from .resumable import ResumableAnswers
from .session import StreamSession
from .settings import Settings

if TYPE_CHECKING:
    from .telemetry import Telemetry
from .wire_sse import DirectWrite, OpenStreams, WatchedEventSourceResponse

log = logging.getLogger("gateway")
# FastAPI's native telemetry, switched off (see create_app).
NO_FASTAPI_TELEMETRY = {"tracing": False, "metrics": False, "logs": False}
# The status of an answer to a client that has gone (nginx's 499): never reaches anyone.
CLIENT_CLOSED_REQUEST = 499

router = APIRouter()


def gateway_of(connection: HTTPConnection) -> Gateway:
    return connection.app.state.gateway


def request_id_of(connection: HTTPConnection) -> str:
    return connection.scope.get("state", {}).get("request_id") or new_request_id()


async def api_key(request: Request) -> str:
    """The caller's API key, known and within its request rate: the first check of every /v1
    route, before the body is read (a dependency, or called first by a `stream_route`).
    (async: as a dependency, a plain function would run in a thread.)"""
    gateway = gateway_of(request)
    settings = gateway.settings

    async def authenticate() -> str:
        return edge.authenticate(request, settings)

    # Throttled per client address, and never from the URL (auth_guard.py).
    key = await gateway.auth_throttle.authenticate(request, settings.api_keys, authenticate)
    await gateway.admission.check_rate(key)
    return key


async def admitted_stream(request: Request, key: str) -> StreamSession:
    """The ask's edge checks and its admission, in order; nothing here calls the model."""
    gateway = gateway_of(request)
    ask = await edge.read_ask(request, gateway.settings.request_read_timeout_seconds)
    model_request = edge.model_request(ask, gateway.settings)
    received_at = request.scope.get("state", {}).get("received_at")
    return await StreamSession.admit(
        gateway, key, model_request, request_id_of(request), received_at
    )


# --- errors: every one is a problem object from the catalogue ----------------------------------


async def gateway_error(request: Request, error: GatewayError) -> Response:
    gateway_of(request).reject(error.code)
    return problem_response(problem_from(error, request_id_of(request)))


async def http_error(request: Request, error: StarletteHTTPException) -> Response:
    code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "invalid_request")
    detail = {
        "not_found": "No such path; GET /docs lists the API.",
        "method_not_allowed": "This path does not take that method; GET /docs lists the API.",
    }.get(code, "The request was refused.")
    headers = dict(error.headers or {})
    return problem_response(problem(code, detail, request_id_of(request)), headers)


async def unexpected(request: Request, error: Exception) -> Response:
    # Log everything here; tell the client only that it failed and the id to quote.
    log.exception("unhandled error")
    gateway_of(request).reject("internal_error")
    body = problem(
        "internal_error", "The gateway failed; quote the request_id.", request_id_of(request)
    )
    return problem_response(body)


# --- the routes ---------------------------------------------------------------------------------


def stream_route(path: str, method: str):
    """Register a stream route (its session's whole life is in session.py) as Starlette's own
    `Route`, which FastAPI serves as it does its own routes.

    A deliberate choice, for time to first token: FastAPI's request handling (its dependency
    solving, exit stacks and operation context) took 70-97 us per request on the course VM,
    against 10.5 us for Starlette's (2026-11-29, in process, one POST route among eight), and
    `make bench` holds what the gateway adds before the first token to 0.3 ms. So these
    routes take the request and call `api_key` themselves, first, as the others' dependency
    does.
    """

    def register(endpoint):
        router.routes.append(Route(path, endpoint, methods=[method]))
        return endpoint

    return register


@cache
def contract_text() -> str:
    return CONTRACT_PATH.read_text(encoding="utf-8")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    metrics = gateway_of(request).metrics
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/openapi.yaml")
async def contract() -> Response:
    return Response(contract_text(), media_type="application/yaml")


@router.get("/docs")
async def docs() -> HTMLResponse:
    from .contract.docs_page import render_docs_html

    return HTMLResponse(render_docs_html(load_contract()))


@router.get("/v1/documents", dependencies=[Depends(api_key)])
async def documents() -> JSONResponse:
    listing = [{"id": d.id, "title": d.title, "tokens": d.tokens} for d in builtin().values()]
    return JSONResponse({"documents": listing})


@stream_route("/v1/ask", "POST")
async def ask(request: Request) -> Response:
    """The whole answer as one JSON body: the baseline the streaming endpoint is measured
    against. The user waits in silence until the last token."""
    key = await api_key(request)
    session = await admitted_stream(request, key)
    try:
        async with request.app.state.sse_streams.until_shutdown(session.fail):
            # A client that leaves while it waits stops the model and frees its slot at once.
            text, end = await unless_disconnected(whole_answer(session), request.receive)
    except GatewayError as error:
        return problem_response(problem_from(error, session.request_id))
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED_REQUEST)  # nobody reads it
    finally:
        await session.close()
    return JSONResponse(
        {
            "request_id": session.request_id,
            "model": session.gateway.model.name,
            "answer": text,
            **end_data(end),
        }
    )


async def whole_answer(session: StreamSession) -> tuple[str, Finished]:
    text: list[str] = []
    async for item in session.items:
        if isinstance(item, Delta):
            text.append(item.text)
        else:
            end: Finished = item
    return "".join(text), end


@stream_route("/v1/ask/stream", "POST")
async def ask_stream(request: Request) -> Response:
    """The answer as SSE. It is made by a task of its own into the replay buffer, and this
    response is its first reader, so a client that loses the connection can resume it
    (`resume_stream`) without a second model call (resumable.py)."""
    key = await api_key(request)
    session = await admitted_stream(request, key)
    try:
        async with request.app.state.sse_streams.until_shutdown(session.fail):
            # Before the status is committed; a client that leaves meanwhile frees its slot now.
            first = await unless_disconnected(session.first(), request.receive)
    except GatewayError as error:
        return problem_response(problem_from(error, session.request_id))
    except ClientGone:  # session.first() closed the session as it was cancelled
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    answers: ResumableAnswers = request.app.state.answers
    try:
        await answers.start(session, first, key)
    except GatewayError as error:  # the replay buffer's store is down
        await session.close(session.fail(error).code)
        return problem_response(problem_from(error, session.request_id))
    return answer_events(request, session.request_id, after=0)


@stream_route("/v1/ask/stream/{request_id}", "GET")
async def resume_stream(request: Request) -> Response:
    """Resume an answer after the last event id the client saw (`Last-Event-ID`, or `?after=`):
    the events after it, then the rest live if it is still streaming, up to its one terminal
    event. A resume is not a model call: it reserves no tokens and takes no stream slot, but
    it needs the key that started the answer and counts against the key's request rate like
    any request (`api_key`). Another key's answer is 404, as an unknown one."""
    key = await api_key(request)
    request_id = request.path_params["request_id"]
    after = resume_point(request)
    answers: ResumableAnswers = request.app.state.answers
    state = await answers.state(request_id, key)
    if state is None:
        raise GatewayError("not_found", "No answer with this id for this API key.")
    if state == "expired":
        retention = gateway_of(request).settings.stream_retention_seconds
        raise GatewayError(
            "stream_expired",
            f"This answer can no longer be resumed: its events are kept {retention:g} s after "
            "it ends, and an answer nobody reads is stopped. Ask again.",
        )
    if state == "done" and await answers.has_everything(request_id, after):
        # Nothing follows the terminal event: 204 also tells an EventSource to stop
        # reconnecting, where an empty stream would have it come back again and again.
        return Response(status_code=204, headers={"X-Request-Id": request_id})
    return answer_events(request, request_id, after)


def resume_point(request: Request) -> int:
    """The last event id the client has: `Last-Event-ID` (what EventSource sends), else
    `?after=`, else 0 (from the start)."""
    given = request.headers.get("last-event-id")
    if given is None:
        given = request.query_params.get("after", "0")
    # ASCII digits only (str.isdigit takes other scripts' digits too), and a sane length.
    if not (given.isascii() and given.isdigit() and len(given) <= 12):
        raise GatewayError(
            "invalid_request", "Last-Event-ID (or after) must be a whole number: an event id."
        )
    return int(given)


def answer_events(request: Request, request_id: str, after: int) -> Response:
    """An answer's events after `after`, read from the replay buffer, as an SSE response."""
    settings = gateway_of(request).settings
    answers: ResumableAnswers = request.app.state.answers

    async def reader_left(stopped_because: str) -> None:
        answers.reader_left(request_id, stopped_because)

    direct = DirectWrite()  # while the reader waits, the answer's maker sends its events
    return WatchedEventSourceResponse(
        answers.buffer.read(request_id, after, direct),
        direct=direct,
        request_id=request_id,
        on_close=reader_left,
        ping=settings.ping_seconds,
        send_timeout=settings.send_timeout_seconds,
        open_streams=request.app.state.sse_streams,
    )


@router.post("/v1/chat/tickets", status_code=201)
async def chat_ticket(request: Request, key: str = Depends(api_key)) -> JSONResponse:
    """A single-use ticket that opens one chat connection from a browser, within seconds."""
    issued = await gateway_of(request).admission.issue_ticket(key)
    body = {
        "ticket": issued.ticket,
        "expires_in_seconds": gateway_of(request).settings.ws_ticket_seconds,
        "url": f"/v1/chat?ticket={issued.ticket}",
    }
    return JSONResponse(body, status_code=201, headers={"Cache-Control": "no-store"})


@router.websocket("/v1/chat")
async def chat(websocket: WebSocket) -> None:
    await websocket.app.state.chat.serve(websocket)


# --- the app ------------------------------------------------------------------------------------


def create_app(
    settings: Settings | None = None, model: Model | None = None, telemetry: Telemetry | None = None
) -> FastAPI:
    """A gateway app; settings default to the GATEWAY_* environment, the model to the settings,
    telemetry to GATEWAY_TELEMETRY (off)."""
    gateway = Gateway.from_settings(settings or Settings(), model, telemetry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        # After the server has stopped: stop the answers still being made, then close the
        # Redis connections, if any.
        await app.state.answers.aclose()
        await gateway.admission.aclose()

    app = FastAPI(
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry (an HTTP span per request, from the global providers)
        # comes with the gateway's: off by default, it then costs one check per request.
        telemetry=None if gateway.telemetry is not None else NO_FASTAPI_TELEMETRY,
        title="Realtime GenAI API Labs gateway",
        # The routes themselves, not include_router's lazy wrapper, so `app.routes` lists each
        # one and the contract tests can compare them with the contract.
        # The demo page (GET /) and its presenter switch come with the gateway.
        routes=[*router.routes, *demo_page.router.routes],
        openapi_url=None,  # the contract is contract/openapi.yaml, served above
        docs_url=None,
        redoc_url=None,
    )
    app.state.gateway = gateway
    app.state.chat = hub = ChatHub(gateway)
    # Resumable SSE answers: in this worker's memory, or in Redis with GATEWAY_REDIS_URL.
    app.state.answers = answers = ResumableAnswers(
        build_replay(gateway.settings), gateway.settings.resume_grace_seconds
    )
    app.state.sse_streams = sse_streams = OpenStreams(gateway.settings.shutdown_grace_seconds)

    async def shutdown_streams() -> None:
        # uvicorn closes every WebSocket with 1012, and sse-starlette cuts every SSE stream, as
        # the server stops; background.GatewayServer runs this first, so each open answer gets
        # an `error` shutting_down before that (written by the answer, read by its readers).
        await asyncio.gather(hub.shutdown(), sse_streams.shutdown(answers.shutdown))

    app.state.shutdown_streams = shutdown_streams
    # Options that belong to the server, not the app (its bounds on connections, headers,
    # WebSocket messages and shutdown); server_bounds.uvicorn_config applies them everywhere.
    app.state.uvicorn_options = server_bounds.uvicorn_options(gateway.settings, gateway.reject)
    # Outermost last: every request gets its id first, then the body size is checked.
    app.add_middleware(
        edge.BodySizeLimitMiddleware, settings=gateway.settings, on_reject=gateway.reject
    )
    # A foreign browser Origin is refused before the body is read (origins.py).
    app.add_middleware(
        OriginMiddleware,
        allowed_origins=gateway.settings.allowed_origins,
        on_reject=gateway.reject,
    )
    app.add_middleware(RequestIdMiddleware)
    access_log.install()  # no query string's values in uvicorn's log lines
    app.add_exception_handler(GatewayError, gateway_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
    return app
