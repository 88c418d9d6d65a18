"""The demo page: a browser client of the gateway's own API, served at `/`.

The page (`demo/index.html`, `demo/demo.css`, `demo/demo.js`: no build step, no framework, no
CDN) is a client like any other: it asks with the API key typed into it, streams answers over
SSE or the WebSocket chat and shows every problem object by its `code`. Loading it needs no key;
every call it makes does.

The presenter panel (`PUT /demo/fake-model`) switches the fake model's behaviour so a stakeholder
sees each limit fire. It exists only when the gateway was started with `GATEWAY_DEMO_CONTROLS`
(`python -m reference_impl --demo`) and runs the fake model; otherwise the route answers 404
like any path the gateway does not serve, and the page shows no panel.
"""

from __future__ import annotations

from functools import cache
from html import escape
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import edge
from .errors import GatewayError
from .settings import FakeBehavior, Settings

PAGE_DIR = Path(__file__).parent / "demo"
ASSETS = {"demo.css": "text/css", "demo.js": "text/javascript"}

router = APIRouter()


@cache
def page_template() -> str:
    return (PAGE_DIR / "index.html").read_text(encoding="utf-8")


def course_key(settings: Settings) -> str | None:
    """The key to show a person: only the course's built-in default, which is no secret."""
    default = Settings.model_fields["api_keys"].default
    return default[0] if tuple(settings.api_keys) == tuple(default) else None


def demo_model(request: Request):
    """The model the presenter panel may switch, or None when the panel is off."""
    gateway = request.app.state.gateway
    if not gateway.settings.demo_controls or gateway.settings.model != "fake":
        return None
    return gateway.model if hasattr(gateway.model, "set_behavior") else None


@router.get("/", response_class=HTMLResponse)
async def demo_page(request: Request) -> HTMLResponse:
    settings = request.app.state.gateway.settings
    model = demo_model(request)
    panel = (
        f'data-fake-behavior="{escape(model.behavior)}" '
        f'data-fake-tokens-per-second="{model.tokens_per_second:g}"'
        if model is not None
        else ""
    )
    html = (
        page_template()
        .replace("{{default_key}}", escape(course_key(settings) or ""))
        .replace("{{demo_controls}}", "on" if model is not None else "off")
        .replace("{{fake_model}}", panel)
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/demo/assets/{asset}")
async def demo_asset(asset: str) -> FileResponse:
    if asset not in ASSETS:
        raise GatewayError("not_found", "No such path; GET /docs lists the API.")
    return FileResponse(PAGE_DIR / asset, media_type=ASSETS[asset])


class FakeModelSetting(BaseModel):
    model_config = ConfigDict(extra="forbid")

    behavior: FakeBehavior
    tokens_per_second: Annotated[float, Field(gt=0, le=1000)]


@router.put("/demo/fake-model")
async def switch_fake_model(request: Request) -> JSONResponse:
    # The key first, as on every route that needs one: a caller without a key learns nothing.
    edge.authenticate(request, request.app.state.gateway.settings)
    model = demo_model(request)
    if model is None:
        raise GatewayError("not_found", "No such path; GET /docs lists the API.")
    try:
        setting = FakeModelSetting.model_validate_json(await request.body())
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise GatewayError("invalid_request", f"{where}: {first['msg']}") from None
    model.set_behavior(setting.behavior, setting.tokens_per_second)
    return JSONResponse(setting.model_dump(), headers={"Cache-Control": "no-store"})
