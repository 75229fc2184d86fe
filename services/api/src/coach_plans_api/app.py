"""`create_app()`: the FastAPI application; its resources live in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import redis
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from coach_plans_api import __version__
from coach_plans_api.cache import Cache, ReadCache, RedisReadCache, redis_options
from coach_plans_api.charts import ChartArchiver, ChartStore
from coach_plans_api.config import Settings, load_settings
from coach_plans_api.db import Database
from coach_plans_api.errors import StorageUnavailable, install_handlers
from coach_plans_api.events import EventBroker
from coach_plans_api.middleware import (
    BodyLimit,
    HeadAsGet,
    RateLimit,
    RateLimiter,
    RequestChecks,
    RequestContext,
    RequestMetrics,
    SecurityHeaders,
)
from coach_plans_api.observability import Metrics
from coach_plans_api.routes import charts, dashboard, internal, legacy, ops, v1
from coach_plans_api.routes.deps import AppState
from coach_plans_api.schemas import ErrorOut, PlanEvent
from coach_plans_api.service import PlanService
from coach_plans_api.storage import StorageMonitor

log = logging.getLogger("coach_plans_api")
# Threads for the database reads that leave the event loop. On SQLite a read is CPU work that
# takes the GIL at every row: more threads only fight the loop for it (docs/performance.md). On
# PostgreSQL a thread mostly waits for the server with the GIL released: 8 served the database
# path 5-12 % faster than 4, and 12 or 16 no faster than 4.
SQLITE_DB_THREADS = 4
POSTGRES_DB_THREADS = 8

DESCRIPTION = """Coaches' daily trading plans, captured from Discord and served to TradingAgents.

Public endpoints need no authentication and are rate limited; `/internal/` endpoints are for the
bot and need `Authorization: Bearer <INTERNAL_API_TOKEN>`. Errors are always
`{"error": "<code>", "detail": "<message>"}`."""


@asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[AppState]:
    """Open the database, Redis, HTTP client, event broker and archiver; close them all after."""
    async with AsyncExitStack() as stack:
        db = Database(settings.sqlalchemy_url)
        storage = StorageMonitor(db, bot_stale_seconds=settings.bot_stale_seconds)
        # Its file handles go last: closing one releases the SQLite locks of the connections.
        stack.callback(storage.close)
        stack.callback(db.dispose)
        storage.start()
        stack.callback(storage.stop)
        cache: Cache
        if settings.redis_url:
            shared = redis.Redis.from_url(settings.redis_url, **redis_options())
            stack.callback(shared.close)
            cache = shared_cache = RedisReadCache(
                shared,
                ttl=settings.cache_ttl_seconds,
                prefix=settings.redis_prefix,
                max_size=settings.max_cache_size,
                max_bytes=settings.cache_max_bytes,
            )
            stack.callback(shared_cache.close)
        else:
            cache = ReadCache(
                ttl=settings.cache_ttl_seconds,
                max_size=settings.max_cache_size,
                max_bytes=settings.cache_max_bytes,
            )
        # A commit by any process (CLI, another replica) clears the cache before the next read.
        cache.follow(storage.data_version)
        limiter = RateLimiter(
            settings.rate_limit_per_minute, redis_url=settings.redis_url, prefix=settings.redis_prefix
        )
        stack.callback(limiter.close)
        events = EventBroker(settings.redis_url, prefix=settings.redis_prefix)
        http = httpx.AsyncClient(headers={"User-Agent": f"coach-plans/{__version__}"})
        stack.push_async_callback(http.aclose)
        store = ChartStore(settings.chart_store_dir)
        archiver = ChartArchiver(
            db=db, store=store, settings=settings, http=http, on_archived=cache.invalidate
        )

        def on_change(changes: list[PlanEvent]) -> None:
            cache.invalidate()
            events.publish(changes)

        def on_unknown_outcome() -> None:
            cache.invalidate()
            events.resync()

        service = PlanService(
            db=db,
            settings=settings,
            on_change=on_change,
            on_pending_charts=archiver.wake,
            on_unknown_outcome=on_unknown_outcome,
            storage=storage,
        )

        def plans_count() -> float:
            try:
                return service.plans_count()
            except StorageUnavailable:
                return math.nan

        threads = SQLITE_DB_THREADS if db.is_sqlite else POSTGRES_DB_THREADS
        db_threads = ThreadPoolExecutor(threads, thread_name_prefix="db-read")
        stack.callback(db_threads.shutdown, wait=False)

        async def missed_events(after: int) -> list[PlanEvent]:
            return await asyncio.get_running_loop().run_in_executor(db_threads, service.events_after, after)

        async def newest_event() -> int | None:
            return await asyncio.get_running_loop().run_in_executor(db_threads, service.newest_event_id)

        await events.start(missed=missed_events, latest=newest_event)
        stack.push_async_callback(events.stop)
        if settings.chart_archiver:
            task = asyncio.create_task(archiver.run(), name="chart-archiver")
            stack.push_async_callback(_cancel, task)
        yield AppState(
            settings=settings,
            service=service,
            cache=cache,
            metrics=Metrics(plans_count),
            events=events,
            charts=store,
            archiver=archiver,
            limiter=limiter,
            db_threads=db_threads,
        )


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the database must already be migrated (`coach-plans-api migrate`)."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info(
            "Coach Plans API %s on %s (mock mode: %s, instance %s)",
            __version__,
            settings.sqlalchemy_url.render_as_string(hide_password=True),
            settings.mock_mode,
            ops.INSTANCE_ID,
        )
        async with open_resources(settings) as core:
            # Lifespans may overlap (a test client inside another): the outer one's resources
            # are in use again when the inner one ends.
            outer = getattr(app.state, "core", None)
            app.state.core = core
            try:
                yield
            finally:
                app.state.core = outer

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
    install_handlers(app)
    app.router.routes.append(internal.FastPut())  # before every other route: the bot's writes
    for router in (legacy.router, v1.router, internal.router, charts.router, ops.router, dashboard.router):
        app.include_router(router)
    app.mount(ops.ASSETS_URL, StaticFiles(directory=ops.DOCS_ASSETS), name="docs-assets")
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "HEAD"])
    # Added innermost first: a request meets them in the reverse order.
    app.add_middleware(HeadAsGet)
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RateLimit)
    app.add_middleware(RequestChecks, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(ops.HealthFirst)
    app.add_middleware(RequestMetrics)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestContext)
    return app
