"""Logging set-up and the request metrics."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from coach_plans_api.config import Settings
from coach_plans_api.schemas import MetricsOut
from coach_plans_common import configure_logging as common_logging


def _password(url: str | None) -> str | None:
    return urlsplit(url).password if url else None


def configure_logging(settings: Settings) -> None:
    """The log format both services share; the internal token and URL passwords masked."""
    common_logging(
        level=settings.log_level,
        log_format=settings.log_format,
        log_file=settings.log_file,
        secrets=[
            settings.internal_api_token,
            _password(settings.database_url),
            _password(settings.redis_url),
        ],
    )
    # Our own access log replaces uvicorn's (it has the duration and the route).
    logging.getLogger("uvicorn.access").disabled = True


class Metrics:
    """Prometheus series plus the plain totals behind the JSON summary."""

    def __init__(self, plans_count: Callable[[], float]) -> None:
        self.started = time.monotonic()
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "coach_plans_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "coach_plans_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self._errors = Counter(
            "coach_plans_http_errors_total",
            "HTTP 5xx answers",
            ["route", "status"],
            registry=self.registry,
        )
        self._cache = Counter(
            "coach_plans_cache_total", "read cache lookups", ["result"], registry=self.registry
        )
        self._bot_outbox = Gauge(
            "coach_plans_bot_outbox_entries",
            "the bot's outbox entries by state, as its last heartbeat reported them",
            ["bot_id", "state"],
            registry=self.registry,
        )
        plans = Gauge("coach_plans_plans_stored", "live plans stored", registry=self.registry)
        plans.set_function(plans_count)
        frozen = Gauge(
            "coach_plans_gc_frozen_objects",
            "objects kept out of the garbage collector's full collections since startup",
            registry=self.registry,
        )
        frozen.set_function(gc.get_freeze_count)
        self._lock = threading.Lock()
        self.total = 0
        self.errors = 0
        self.seconds = 0.0
        self.hits = 0
        self.misses = 0

    def uptime(self) -> float:
        """Seconds since start, to the millisecond (both /health paths report it)."""
        return round(time.monotonic() - self.started, 3)

    def observe(self, *, method: str, route: str, status: int, seconds: float) -> None:
        self._requests.labels(method, route, str(status)).inc()
        self._latency.labels(method, route).observe(seconds)
        is_error = status >= 500
        if is_error:
            self._errors.labels(route, str(status)).inc()
        with self._lock:
            self.total += 1
            self.errors += is_error
            self.seconds += seconds

    def cache_lookup(self, *, hit: bool) -> None:
        self._cache.labels("hit" if hit else "miss").inc()
        with self._lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1

    def bot_outbox(self, *, bot_id: str, pending: int | None, dead: int | None) -> None:
        """Record the outbox counts a bot heartbeat carried (older bots send none)."""
        for state, count in (("pending", pending), ("dead", dead)):
            if count is not None:
                self._bot_outbox.labels(bot_id, state).set(count)

    def prometheus(self) -> bytes:
        return generate_latest(self.registry)

    def summary(self) -> MetricsOut:
        with self._lock:
            lookups = self.hits + self.misses
            return MetricsOut(
                total_requests=self.total,
                error_count=self.errors,
                error_rate=self.errors / self.total if self.total else 0.0,
                cache_hit_rate=self.hits / lookups if lookups else 0.0,
                average_response_time_ms=1000 * self.seconds / self.total if self.total else 0.0,
                uptime_seconds=self.uptime(),
            )
