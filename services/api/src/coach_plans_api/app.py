"""`create_app()`: the FastAPI application with its state, middleware and routers."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import redis
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from coach_plans_api import __version__
from coach_plans_api.cache import Cache, ReadCache, RedisReadCache
from coach_plans_api.charts import ChartArchiver, ChartStore
from coach_plans_api.config import Settings, load_settings
from coach_plans_api.db import Database
from coach_plans_api.errors import StorageUnavailable, install_handlers
from coach_plans_api.events import EventBroker
from coach_plans_api.middleware import RateLimiter, RedisRateLimiter, RequestMiddleware
from coach_plans_api.observability import Metrics
from coach_plans_api.routes import charts, dashboard, internal, legacy, ops, v1
from coach_plans_api.routes.deps import AppState
from coach_plans_api.schemas import ErrorOut, PlanEvent
from coach_plans_api.service import PlanService

log = logging.getLogger("coach_plans_api")
DB_THREADS = 4

DESCRIPTION = """Coaches' daily trading plans, captured from Discord and served to TradingAgents.

Public endpoints need no authentication and are rate limited; `/internal/` endpoints are for the
bot and need `Authorization: Bearer <INTERNAL_API_TOKEN>`. Errors are always
`{"error": "<code>", "detail": "<message>"}`."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the database must already be migrated (`coach-plans-api migrate`)."""
    settings = settings or load_settings()
    db = Database(settings.sqlalchemy_url)
    shared = redis.Redis.from_url(settings.redis_url, socket_timeout=1) if settings.redis_url else None
    cache: Cache
    limiter: RateLimiter
    if shared is not None:
        cache = RedisReadCache(
            shared,
            ttl=settings.cache_ttl_seconds,
            prefix=settings.redis_prefix,
            max_size=settings.max_cache_size,
            max_bytes=settings.cache_max_bytes,
        )
        limiter = RedisRateLimiter(settings.rate_limit_per_minute, shared, prefix=settings.redis_prefix)
    else:
        cache = ReadCache(
            ttl=settings.cache_ttl_seconds,
            max_size=settings.max_cache_size,
            max_bytes=settings.cache_max_bytes,
        )
        limiter = RateLimiter(settings.rate_limit_per_minute)
    events = EventBroker(settings.redis_url, prefix=settings.redis_prefix)
    store = ChartStore(settings.chart_store_dir)
    archiver = ChartArchiver(
        db=db,
        store=store,
        settings=settings,
        http=httpx.Client(follow_redirects=True, headers={"User-Agent": f"coach-plans/{__version__}"}),
        on_archived=cache.invalidate,
    )

    def on_change(changes: list[PlanEvent]) -> None:
        cache.invalidate()
        events.publish(changes)
        archiver.wake()

    service = PlanService(db=db, settings=settings, on_change=on_change)
    # A commit by any process (CLI, another replica) clears the cache before the next read.
    cache.follow(service.storage.data_version)

    def plans_count() -> float:
        try:
            return service.plans_count()
        except StorageUnavailable:
            return math.nan

    metrics = Metrics(plans_count)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        log.info(
            "Coach Plans API %s on %s (mock mode: %s)",
            __version__,
            settings.sqlalchemy_url.render_as_string(hide_password=True),
            settings.mock_mode,
        )
        service.storage.start()
        await events.start()
        if settings.chart_archiver:
            archiver.start()
        yield
        archiver.stop()
        archiver.http.close()
        await events.stop()
        service.storage.stop()
        db.dispose()
        service.storage.close()
        if shared is not None:
            shared.close()

    app = FastAPI(
        title="Coach Plans API",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        responses={
            422: {"model": ErrorOut, "description": "Invalid request"},
            429: {"model": ErrorOut, "description": "Rate limited; see Retry-After"},
            503: {"model": ErrorOut, "description": "The database is unavailable"},
        },
    )
    app.state.core = AppState(
        settings=settings,
        service=service,
        cache=cache,
        metrics=metrics,
        events=events,
        charts=store,
        db_threads=anyio.CapacityLimiter(DB_THREADS),
    )
    install_handlers(app)
    for router in (legacy.router, v1.router, internal.router, charts.router, ops.router, dashboard.router):
        app.include_router(router)
    app.mount(ops.ASSETS_URL, StaticFiles(directory=ops.DOCS_ASSETS), name="docs-assets")
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET"])
    app.add_middleware(
        RequestMiddleware,
        metrics=metrics,
        limiter=limiter,
        max_body_bytes=settings.max_body_bytes,
    )
    return app
