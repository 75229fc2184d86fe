"""Dependencies shared by the routers: app state, service, internal auth, cached reads."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from coach_plans_api.cache import Cache
from coach_plans_api.charts import ChartArchiver, ChartStore
from coach_plans_api.config import Settings
from coach_plans_api.errors import StorageUnavailable, Unauthorized
from coach_plans_api.events import EventBroker
from coach_plans_api.middleware import RateLimiter
from coach_plans_api.observability import Metrics
from coach_plans_api.service import PlanService

log = logging.getLogger("coach_plans_api.cache")
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class AppState:
    """What the routes and middleware use; built and closed by the app's lifespan."""

    settings: Settings
    service: PlanService
    cache: Cache
    metrics: Metrics
    events: EventBroker
    charts: ChartStore
    archiver: ChartArchiver
    limiter: RateLimiter
    # Database reads run on a few threads: dozens of threads contending for the GIL made a
    # cache miss several times slower under load (see docs/performance.md).
    db_threads: ThreadPoolExecutor


T = TypeVar("T")


async def on_db_thread(state: AppState, call: Callable[..., T], *args: object) -> T:
    """`call(*args)` on one of the database threads, in the request's context (its id in logs).
    A plain executor: anyio's `to_thread` cost twice its CPU per hop (about 170 against 80 µs with
    32 requests at once)."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(state.db_threads, context.run, call, *args)


# Dependencies are `async def` on purpose: FastAPI runs a plain `def` one in the thread pool,
# a thread hop per request that the profile showed costing a fifth of a cached read.
async def get_state(request: Request) -> AppState:
    return app_state(request)


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.core
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_service(state: StateDep) -> PlanService:
    return state.service


ServiceDep = Annotated[PlanService, Depends(get_service)]

_bearer = HTTPBearer(auto_error=False, description="INTERNAL_API_TOKEN shared with the bot")


async def require_internal_token(
    state: StateDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    if credentials is None or not token_matches(state, credentials.credentials):
        raise Unauthorized("missing or wrong internal API token")


def token_matches(state: AppState, given: str) -> bool:
    """`given` is the internal API token (never an empty one). Compared in constant time, so the
    token cannot be guessed byte by byte from response times."""
    expected = state.settings.internal_api_token or ""
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


# The longest page a `lookup` may read (a page of 51 plans: about 1 ms to read and map).
LOOP_PAGE = 100


async def cached_json(
    request: Request, state: AppState, key: str, produce: Callable[[], bytes], *, lookup: bool = False
) -> Response:
    """Answer a read from the cache, else from `produce`, with ETag.

    A `lookup` on SQLite runs right here: a read bounded by an index (one plan, one day, or a page
    of at most `LOOP_PAGE` plans walked in index order), which takes less time than handing it to
    a worker thread and back. A thread fights the event loop for the GIL at every row it reads,
    which made every request slower (see docs/performance.md). Other reads (search, filters
    without an index to walk, long pages, PostgreSQL's round trips) run on the database threads.
    """
    entry = state.cache.get(key)
    state.metrics.cache_lookup(hit=entry is not None)
    if entry is not None:
        return respond(request, body=entry.body, etag=entry.etag)
    generation = state.cache.generation
    try:
        if lookup and state.service.db.is_sqlite:
            body = produce()
        else:
            body = await on_db_thread(state, produce)
    except StorageUnavailable:
        stale = state.cache.get(key, allow_stale=True)
        if stale is None:
            raise
        log.warning("database unavailable; serving %s from cache", key)
        return respond(request, body=stale.body, etag=stale.etag)
    etag = etag_of(body)
    state.cache.put(key, body=body, etag=etag, generation=generation)
    return respond(request, body=body, etag=etag)


def not_modified(request: Request, etag: str) -> bool:
    """`If-None-Match` names this representation's tag (weakly compared: `W/"…"` matches too),
    or is `*`, which any existing representation matches."""
    header = request.headers.get("if-none-match", "")
    return header.strip() == "*" or etag in header


def respond(request: Request, *, body: bytes, etag: str) -> Response:
    if not_modified(request, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type=JSON, headers={"ETag": etag})
