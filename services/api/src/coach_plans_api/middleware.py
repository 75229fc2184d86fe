"""One ASGI middleware for every request: id, size limit, rate limit, headers, metrics, log."""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable

import redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coach_plans_api.errors import error_body
from coach_plans_api.observability import Metrics

access_log = logging.getLogger("coach_plans_api.access")
log = logging.getLogger("coach_plans_api")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
RATE_LIMITED_PREFIX = "/api/"


class RateLimiter:
    """Fixed one-minute windows per client address; `limit` 0 turns it off."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self._clock = clock
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def hit(self, client: str) -> float | None:
        """Count one request; return seconds to wait when over the limit, else None."""
        if self.limit <= 0:
            return None
        now = self._clock()
        window = int(now // 60)
        with self._lock:
            if len(self._counts) > 10_000:
                self._counts = {k: v for k, v in self._counts.items() if k[1] == window}
            count = self._counts.get((client, window), 0) + 1
            self._counts[(client, window)] = count
        return None if count <= self.limit else (window + 1) * 60 - now


class RedisRateLimiter(RateLimiter):
    """The same windows counted in Redis, so every API instance shares one budget per client."""

    def __init__(
        self,
        limit: int,
        client: redis.Redis,
        *,
        prefix: str = "coach-plans",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(limit, clock)
        self._redis = client
        self._prefix = f"{prefix}:ratelimit:"

    def hit(self, client: str) -> float | None:
        if self.limit <= 0:
            return None
        now = self._clock()
        window = int(now // 60)
        key = f"{self._prefix}{client}:{window}"
        try:
            pipe = self._redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, 120)
            count = int(pipe.execute()[0])
        except redis.RedisError as exc:
            log.warning("redis unavailable, counting requests in this process: %s", exc)
            return super().hit(client)
        return None if count <= self.limit else (window + 1) * 60 - now


class RequestMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, limiter: RateLimiter, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes
        # Unique per process without a system call per request (uuid4 reads os.urandom).
        self._prefix = uuid.uuid4().hex[:8]
        self._ids = itertools.count(1)

    def _next_id(self) -> str:
        return f"{self._prefix}-{next(self._ids):x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or self._next_id()
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    *SECURITY_HEADERS,
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            refusal = await self._refuse(scope, headers)
            if refusal is not None:
                code, body, extra_headers = refusal
                await _send_json(send_with_headers, code, body, extra_headers)
                return
            bounded = await self._bounded(scope, receive, headers, send_with_headers)
            if bounded is not None:
                await self.app(scope, bounded, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(method=scope["method"], route=route, status=status, seconds=elapsed)
            access_log.info(
                "%s %s%s %d %.1fms id=%s",
                scope["method"],
                scope["path"],
                "?" + scope["query_string"].decode("latin-1") if scope["query_string"] else "",
                status,
                elapsed * 1000,
                request_id,
            )

    async def _refuse(
        self, scope: Scope, headers: dict[bytes, bytes]
    ) -> tuple[int, dict[str, object], list[tuple[bytes, bytes]]] | None:
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return 413, _too_large(self.max_body_bytes), []
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if scope["path"].startswith("/internal/") and content_type and content_type != b"application/json":
            return 415, error_body("unsupported_media_type", "send the body as application/json"), []
        if b"%00" in scope["query_string"] or "\x00" in scope["path"]:
            return 400, error_body("bad_request", "NUL characters are not allowed in the URL"), []
        if scope["path"].startswith(RATE_LIMITED_PREFIX):
            client = scope["client"][0] if scope.get("client") else "unknown"
            wait = self.limiter.hit(client)
            if wait is not None:
                retry = max(1, math.ceil(wait))
                body = error_body("rate_limited", f"too many requests; retry in {retry} s")
                return 429, body, [(b"retry-after", str(retry).encode())]
        return None

    async def _bounded(
        self, scope: Scope, receive: Receive, headers: dict[bytes, bytes], send: Send
    ) -> Receive | None:
        """Bodies without a Content-Length are read here, up to the limit, and replayed."""
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
                await _send_json(send, 413, _too_large(self.max_body_bytes), [])
                return None
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


def _too_large(limit: int) -> dict[str, object]:
    return error_body("payload_too_large", f"request body over {limit // 1024} KiB")


async def _send_json(
    send: Send, status: int, body: dict[str, object], headers: list[tuple[bytes, bytes]]
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
