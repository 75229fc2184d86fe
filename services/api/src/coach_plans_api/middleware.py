"""The request pipeline around the routes, one concern per middleware.

Outermost first: `RequestContext` (request id, access log), `SecurityHeaders`, `RequestMetrics`,
`RequestChecks` (URL and headers), `RateLimit`, `BodyLimit`, `HeadAsGet`. A middleware that
refuses a request raises a `PlanError`, answered through `errors.error_response` like any
route's error.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import time
import uuid
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import anyio
import redis
from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coach_plans_api.cache import Breaker, redis_options
from coach_plans_api.errors import (
    BadRequest,
    PayloadTooLarge,
    PlanError,
    RateLimited,
    UnsupportedMediaType,
    error_response,
)

if TYPE_CHECKING:
    from coach_plans_api.routes.deps import AppState

access_log = logging.getLogger("coach_plans_api.access")
log = logging.getLogger("coach_plans_api")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
# Not rate limited: probes and scrapes, the bot's authenticated writes, and static files that
# never touch the database (archived charts, the docs UI's assets).
UNLIMITED_PATHS = frozenset({"/health", "/metrics"})
UNLIMITED_PREFIXES = ("/internal/", "/charts/", "/static/")
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def is_rate_limited(path: str) -> bool:
    return path not in UNLIMITED_PATHS and not path.startswith(UNLIMITED_PREFIXES)


def _core(scope: Scope) -> AppState:
    state: AppState = scope["app"].state.core
    return state


class RateLimiter:
    """A moving one-minute window per client (the `limits` library); `per_minute` 0 turns it off.

    With Redis every instance shares one budget per client; while Redis is unreachable each
    process counts on its own rather than refusing or letting everything through. Every request
    counts on the event loop, so Redis calls wait at most `REDIS_TIMEOUT`, and after a failure
    Redis is left alone for `REDIS_BACKOFF` (counting in the process meanwhile).
    """

    def __init__(self, per_minute: int, *, redis_url: str | None = None, prefix: str = "coach-plans") -> None:
        self.item = RateLimitItemPerMinute(per_minute) if per_minute > 0 else None
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._pool: redis.ConnectionPool | None = None
        self._storage: Storage | None = None
        self._shared: MovingWindowRateLimiter | None = None
        self._breaker = Breaker()
        if redis_url and self.item is not None:
            # A pool of our own: `limits` passes only plain options on, not redis-py's `retry`.
            self._pool = redis.ConnectionPool.from_url(redis_url, **redis_options())
            self._storage = RedisStorage(
                redis_url, connection_pool=self._pool, key_prefix=f"{prefix}:ratelimit", wrap_exceptions=True
            )
            self._shared = MovingWindowRateLimiter(self._storage)

    def hit(self, client: str) -> int | None:
        """Count one request; the seconds to wait when over the limit, else None."""
        if self.item is None:
            return None
        if self._shared is not None and not self._breaker.open:
            try:
                if self._shared.hit(self.item, client):
                    return None
                return _wait(self._shared.get_window_stats(self.item, client).reset_time)
            except StorageError as exc:
                self._breaker.trip()
                log.warning(
                    "redis unavailable, counting requests in this process for %.0f s: %s",
                    self._breaker.backoff,
                    exc.storage_error,
                )
        if self._local.hit(self.item, client):
            return None
        return _wait(self._local.get_window_stats(self.item, client).reset_time)

    def close(self) -> None:
        if isinstance(self._storage, RedisStorage):
            self._storage.storage.close()
        if self._pool is not None:
            self._pool.disconnect()


def _wait(reset_at: float) -> int:
    return max(1, math.ceil(reset_at - time.time()))


class RequestContext:
    """Gives each request an id (the caller's `X-Request-ID` when it is plain), logs one line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Unique per process without a system call per request (uuid4 reads os.urandom).
        self._prefix = uuid.uuid4().hex[:8]
        self._ids = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"]
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode("latin-1")
        request_id = given if _SAFE_REQUEST_ID.fullmatch(given) else f"{self._prefix}-{next(self._ids):x}"
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            query = scope["query_string"].decode("latin-1")
            # Client-controlled text: the log formatters escape control characters in it.
            access_log.info(
                "%s %s%s %d %.1fms id=%s",
                method,
                scope["path"],
                "?" + query if query else "",
                status,
                (time.perf_counter() - started) * 1000,
                request_id,
            )


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestMetrics:
    """Counts and times every answer per route (the route template, never the raw path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"]
        status = 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            _core(scope).metrics.observe(
                method=method, route=route, status=status, seconds=time.perf_counter() - started
            )


class Guard:
    """A check before the app; the `PlanError` it raises is answered through the one mapping."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            receive = await self.check(scope, receive)
        except PlanError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def check(self, scope: Scope, receive: Receive) -> Receive:
        """Raise a PlanError to refuse the request; return the `receive` the app should use."""
        raise NotImplementedError


class RequestChecks(Guard):
    """The URL and headers: NUL characters, repeated query parameters, declared size, media type."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        super().__init__(app)
        self.max_body_bytes = max_body_bytes

    async def check(self, scope: Scope, receive: Receive) -> Receive:
        query = scope["query_string"]
        if b"%00" in query or "\x00" in scope["path"]:
            raise BadRequest("NUL characters are not allowed in the URL")
        if query:
            names = [name for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise BadRequest(f"query parameter {repeated[0]!r} is repeated; give each parameter once")
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            raise too_large(self.max_body_bytes)
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if scope["path"].startswith("/internal/") and content_type and content_type != b"application/json":
            raise UnsupportedMediaType("send the body as application/json")
        return receive


class RateLimit(Guard):
    async def check(self, scope: Scope, receive: Receive) -> Receive:
        if is_rate_limited(scope["path"]):
            client = scope["client"][0] if scope.get("client") else "unknown"
            wait = _core(scope).limiter.hit(client)
            if wait is not None:
                raise RateLimited(wait)
        return receive


class BodyLimit(Guard):
    """Bodies without a Content-Length are read here, up to the limit, and replayed to the app."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        super().__init__(app)
        self.max_body_bytes = max_body_bytes

    async def check(self, scope: Scope, receive: Receive) -> Receive:
        headers = dict(scope["headers"])
        if b"content-length" in headers or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return receive
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return receive
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise too_large(self.max_body_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        return replay


class HeadAsGet:
    """HEAD is answered as GET without the body (the old Flask server did; monitors rely on it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        # A copy: the server must still see HEAD (it then expects no body).
        inner = {**scope, "method": "GET"}
        with anyio.CancelScope() as cancel:

            async def send_headers_only(message: Message) -> None:
                if message["type"] != "http.response.body":
                    await send(message)
                    return
                if not cancel.cancel_called:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    # A streamed body (an event stream, a file) is not produced any further.
                    cancel.cancel()

            await self.app(inner, receive, send_headers_only)
        if "route" in inner:  # for the metrics, as a GET would have it
            scope["route"] = inner["route"]


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body over {limit // 1024} KiB")
