"""Health, metrics and the self-hosted API docs."""

from __future__ import annotations

import secrets
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from coach_plans_api import __version__
from coach_plans_api.routes.deps import StateDep
from coach_plans_api.schemas import HealthOut, MetricsOut

router = APIRouter(tags=["operations"])
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/static/docs"
# Lets a supervisor (scripts/run-dev.sh) tell its own API from another one on the same port.
INSTANCE_ID = secrets.token_hex(8)


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "The database cannot be read"}},
    summary="Liveness and readiness",
    operation_id="health",
)
async def health(state: StateDep) -> JSONResponse:
    """The storage probe's last verdict (at most `PROBE_INTERVAL` old): no query per request."""
    storage = state.service.health()
    body = HealthOut(
        status="healthy" if storage.ok else "unhealthy",
        bot_connected=storage.bot_connected,
        database_connected=storage.ok,
        plans_count=storage.plans if storage.ok else None,
        uptime_seconds=round(state.metrics.uptime(), 3),
        version=__version__,
        instance_id=INSTANCE_ID,
        reason=storage.reason,
    )
    return JSONResponse(body.model_dump(), status_code=200 if storage.ok else 503)


@router.get(
    "/metrics",
    response_model=MetricsOut,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    summary="Prometheus text, or a JSON summary with Accept: application/json",
    operation_id="metrics",
)
async def metrics(request: Request, state: StateDep) -> Response:
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(state.metrics.summary().model_dump())
    body = await run_in_threadpool(state.metrics.prometheus)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/docs", include_in_schema=False, operation_id="swagger_ui")
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Coach Plans API",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
    )


@router.get("/redoc", include_in_schema=False, operation_id="redoc")
async def redoc() -> HTMLResponse:
    return get_redoc_html(
        openapi_url="/openapi.json",
        title="Coach Plans API",
        redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )
