"""Health, metrics and the self-hosted API docs."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import deque
from pathlib import Path
from types import SimpleNamespace
from weakref import WeakKeyDictionary

import fastapi_offline
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from coach_plans_api import __version__
from coach_plans_api.routes.deps import AppState, StateDep
from coach_plans_api.schemas import HealthOut, MetricsOut

router = APIRouter(tags=["operations"])
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/static/docs"
# Lets a supervisor (scripts/run-dev.sh) tell its own API from another one on the same port.
INSTANCE_ID = secrets.token_hex(8)
HEALTH_PATH = "/health"
_BODY_HEADERS = (b"content-length", b"transfer-encoding")
_HEALTH_ROUTE = SimpleNamespace(path=HEALTH_PATH)  # all RequestMetrics reads of a route
TURNS_PER_PASS = 2  # requests given a turn per pass of the event loop (`Turns`)


@router.get(
    HEALTH_PATH,
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "The database cannot be read"}},
    summary="Liveness and readiness",
    operation_id="health",
)
async def health(state: StateDep) -> Response:
    """The storage probe's last verdict (at most `PROBE_INTERVAL` old): no query per request."""
    status, body = health_answer(state)
    return Response(body, status_code=status, media_type="application/json")


def health_answer(state: AppState) -> tuple[int, bytes]:
    """The status and JSON body (a `HealthOut`) of /health, built without a model: it is asked
    for several times a second by every monitor."""
    storage = state.service.health()
    body = {
        "status": "healthy" if storage.ok else "unhealthy",
        "bot_connected": storage.bot_connected,
        "database_connected": storage.ok,
        "plans_count": storage.plans if storage.ok else None,
        "uptime_seconds": state.metrics.uptime(),
        "version": __version__,
        "instance_id": INSTANCE_ID,
        "reason": storage.reason,
    }
    return 200 if storage.ok else 503, json.dumps(body, separators=(",", ":")).encode()


class Turns:
    """Gives at most `per_pass` turns to start per pass of the event loop; the other requests
    wait for theirs, in order (a waiting request's turn starts it in the next pass).

    A read on SQLite runs to its end without yielding, so a saturated loop ran every request
    that had arrived (32 under 32 clients: tens of milliseconds) before it read the sockets
    again, and a health check waited behind all of them. Taking turns keeps each pass short,
    so a check, which does not wait, is answered within a pass or two; the other requests wait
    as long as before, in this queue instead of the loop's."""

    def __init__(self, per_pass: int) -> None:
        self.per_pass = per_pass
        self.started = 0  # in this pass
        self.waiting: deque[asyncio.Future[None]] = deque()
        self.pass_ends = False  # a call to `_next_pass` is scheduled

    async def take(self) -> None:
        if not self.pass_ends:
            self.pass_ends = True
            asyncio.get_running_loop().call_soon(self._next_pass)
        if self.started < self.per_pass and not self.waiting:
            self.started += 1
            return
        turn = asyncio.get_running_loop().create_future()
        self.waiting.append(turn)
        await turn

    def _next_pass(self) -> None:
        """Runs once a pass while requests come or wait: starts the next few waiting."""
        self.started = 0
        while self.waiting and self.started < self.per_pass:
            turn = self.waiting.popleft()
            if not turn.done():  # a cancelled request gives its turn up
                turn.set_result(None)
                self.started += 1
        if self.waiting or self.started:
            asyncio.get_running_loop().call_soon(self._next_pass)
        else:
            self.pass_ends = False


class HealthFirst:
    """Answers a plain `GET`/`HEAD /health` at once, ahead of the other requests' turns (`Turns`),
    the guards, the router and dependency injection (two thirds of a routed request's cost;
    docs/performance.md). Placed inside the request id, security headers and metrics
    middleware, so the answer looks as a routed one does; a query string or a body takes the
    routed path and its checks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Per event loop: a test client may run each request on a loop of its own.
        self.turns: WeakKeyDictionary[asyncio.AbstractEventLoop, Turns] = WeakKeyDictionary()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != HEALTH_PATH
            or scope["method"] not in ("GET", "HEAD")
            or scope["query_string"]
            or any(name in _BODY_HEADERS for name, _ in scope["headers"])
        ):
            if scope["type"] == "http":
                loop = asyncio.get_running_loop()
                turns = self.turns.get(loop)
                if turns is None:
                    turns = self.turns[loop] = Turns(TURNS_PER_PASS)
                await turns.take()
            await self.app(scope, receive, send)
            return
        status, body = health_answer(scope["app"].state.core)
        scope["route"] = _HEALTH_ROUTE  # the metrics count it under its route, as a routed one
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


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
