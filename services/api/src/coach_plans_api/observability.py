"""Logging set-up (text or JSON lines, rotating file) and the request metrics."""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.handlers
import re
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from coach_plans_api.config import Settings
from coach_plans_api.schemas import MetricsOut

LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5


# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: anything a log reader
# could take for the end of a line. A client controls paths, queries, headers and ids.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Shorter strings are not secrets we accept (outside mock mode the token has 32+ characters);
# masking them would mask ordinary text.
MIN_REDACTED_LENGTH = 16


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` on one line: every control character shown as its escape (a newline as `\\x0a`)."""
    return _CONTROL.sub(_escaped, text)


class SafeMessage:
    """The one place a log message is made safe: secrets masked, control characters escaped."""

    def __init__(self, secrets: list[str]) -> None:
        self._secrets = [s for s in secrets if len(s) >= MIN_REDACTED_LENGTH]

    def __call__(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        for secret in self._secrets:
            if secret in message:
                message = message.replace(secret, "***")
        return escape_controls(message)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message`, the message on one line (a traceback may follow)."""

    def __init__(self, safe: SafeMessage) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._safe = safe

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = self._safe(record)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; nothing in it can break the line."""

    def __init__(self, safe: SafeMessage) -> None:
        super().__init__()
        self._safe = safe

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": self._safe(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        line = json.dumps(entry, ensure_ascii=False)
        # json.dumps leaves these as they are; some readers split lines on them.
        return line.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def configure_logging(settings: Settings) -> None:
    safe = SafeMessage([settings.internal_api_token or ""])
    formatter: logging.Formatter = (
        JsonFormatter(safe) if settings.log_format == "json" else TextFormatter(safe)
    )
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if settings.log_file:
        settings.log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                settings.log_file,
                maxBytes=LOG_FILE_BYTES,
                backupCount=LOG_FILE_BACKUPS,
                encoding="utf-8",
            )
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(settings.log_level)
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
        self._lock = threading.Lock()
        self.total = 0
        self.errors = 0
        self.seconds = 0.0
        self.hits = 0
        self.misses = 0

    def uptime(self) -> float:
        return time.monotonic() - self.started

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
