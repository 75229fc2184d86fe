"""What the sync and async clients share: URLs, caching, retry policy, error mapping."""

from __future__ import annotations

import calendar
import contextlib
import datetime as dt
import email.utils
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from httpx_sse import ServerSentEvent

from ._cache import CacheEntry, TTLCache
from ._errors import (
    APIError,
    BadRequestError,
    ClientClosedError,
    CoachPlansError,
    ConnectionError,
    InvalidResponseError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TimeoutError,
)
from ._models import ModelError, Plan, PlanEvent

logger = logging.getLogger("coach_plans_client")

T = TypeVar("T")

DEFAULT_BASE_URL = "http://localhost:5000"
DEFAULT_TIMEOUT = 10.0
# The most a response may hold once decoded: far above any real answer (a page of 200 plans is
# a few hundred KB), far below what a decompression bomb would take.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
DEFAULT_PLAN_TIMEZONE = "America/New_York"
MAX_PAGE_SIZE = 200  # the API's upper bound for ``limit``
MAX_SEARCH_PAGE_SIZE = 100  # the same for a search
SEARCH_PATH = "/api/v1/search"
MAX_URL_LENGTH = 65_536  # httpx refuses longer URLs (and so longer queries)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})
EVENTS_PATH = "/api/v1/events"
# The API sends a keep-alive comment every 15 s: a minute of silence means a dead connection.
EVENTS_TIMEOUT = httpx.Timeout(DEFAULT_TIMEOUT, read=60.0)
DEFAULT_RECONNECT_DELAY = 3.0  # seconds, until the server's `retry:` field says otherwise
# The most a server's `retry:` field may ask for: a larger value is read as this many seconds.
MAX_RECONNECT_DELAY = 60.0
Params = Mapping[str, str | int | dt.date | None]
CacheKey = tuple[str, tuple[tuple[str, str], ...]]


_DELAY_SECONDS = re.compile(r"\d+(\.\d+)?")


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date).

    None for anything else ("soon", "-5", "inf", a date that does not exist). An HTTP date
    without a zone, or with ``-0000``, is read as GMT, as RFC 9110 dates always are.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        wait = (when - (now or dt.datetime.now(dt.timezone.utc))).total_seconds()
    # Python 3.10 raises TypeError for text that is no date at all, later versions ValueError.
    except (TypeError, ValueError, OverflowError):
        return None
    return max(0.0, wait)


def plan_zone(name: str) -> dt.tzinfo:
    """The market time zone by IANA name; UTC (with a warning) when this machine lacks it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # Windows without the tzdata package has no IANA database; a wrong "today" near
        # midnight beats refusing to start.
        logger.warning("unknown time zone %r, using UTC for today's date", name)
        return dt.timezone.utc


class NoSuchDay(ValueError):
    """A well-formed ``YYYY-MM-DD`` that names no day of the calendar (``2026-02-30``)."""


_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def json_of(data: str | bytes) -> Any:
    """JSON from an event's text or a response's bytes (their encoding detected, as httpx's
    ``Response.json`` does); ValueError for anything else (a UnicodeDecodeError is one), nesting
    deeper than Python's parser goes included (it raises RecursionError there)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def request_url(url: str, query: Mapping[str, str]) -> str:
    """The URL a request is for, as its errors name it.

    ValueError when the query cannot be part of a URL (longer than httpx allows, a lone
    surrogate); ``url`` alone when httpx refuses the URL itself, which the request then reports.
    """
    try:
        httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return url
    try:
        return str(httpx.URL(url, params=query))
    except httpx.InvalidURL as exc:
        if "too long" in str(exc):
            raise ValueError(
                f"the request's URL would be longer than httpx's {MAX_URL_LENGTH:,} characters"
            ) from None
        raise ValueError(f"the request's parameters cannot be sent in a URL: {exc}") from None


def as_date(value: str | dt.date) -> dt.date:
    """A date from ``YYYY-MM-DD`` or a date/datetime; ValueError otherwise.

    A well-formed day that the calendar lacks (``2026-02-30``) is named as such, not as a
    format error.
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = value.strip()
    match = _ISO_DATE.fullmatch(text)
    if match is None:
        raise ValueError(f"not an ISO date (YYYY-MM-DD): {value!r}")
    year, month, day = (int(part) for part in match.groups())
    try:
        return dt.date(year, month, day)
    except ValueError:
        pass
    if year < 1 or not 1 <= month <= 12:
        raise NoSuchDay(f"{text} does not exist: months run from 01 to 12, years from 0001")
    last = calendar.monthrange(year, month)[1]
    raise NoSuchDay(f"{text} does not exist: {calendar.month_name[month]} {year} has {last} days")


def normalise_ticker(ticker: str) -> str:
    """``$nvda`` -> ``NVDA`` (the API does the same; doing it here keeps cache keys stable)."""
    symbol = ticker.strip().lstrip("$").upper()
    if not symbol:
        raise ValueError("ticker must not be empty")
    return symbol


def newest_first(plans: Iterable[Plan]) -> list[Plan]:
    """Plans ordered by date then id, newest first, each plan once (pages may overlap)."""
    unique = {plan.id: plan for plan in plans}
    return sorted(unique.values(), key=lambda plan: (plan.date, plan.id), reverse=True)


def _snippet(body: bytes) -> str:
    text = body[:4096].decode("utf-8", "replace").strip().replace("\n", " ")
    return text[:200] + ("..." if len(text) > 200 else "")


def attempt_timeout(timeout: float | httpx.Timeout | None) -> float | None:
    """Seconds one attempt (connect, send, the whole answer) may take: the timeout's largest part."""
    # Read by attribute: an injected client may be httpx-compatible (Starlette's TestClient is an
    # httpx2 client) with a Timeout class of its own.
    if not hasattr(timeout, "read"):
        timeout = httpx.Timeout(timeout)
    parts = [getattr(timeout, part, None) for part in ("connect", "read", "write", "pool")]
    return max((part for part in parts if part is not None), default=None)


class BodyReader:
    """The body of one answer as its chunks arrive: at most ``limit`` bytes once decoded, and no
    chunk taken after ``deadline`` (a ``time.monotonic()`` value); the errors name the request."""

    def __init__(self, response: httpx.Response, *, limit: int, deadline: float | None = None) -> None:
        self.response = response
        self.limit = limit
        self.deadline = deadline
        self.chunks: list[bytes] = []
        self.size = 0
        self.check_deadline()

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            request = self.response.request
            raise InvalidResponseError(
                f"response larger than max_response_bytes ({self.limit:,} bytes once decoded)",
                status_code=self.response.status_code,
                method=request.method,
                url=str(request.url),
            )
        self.chunks.append(chunk)
        self.check_deadline()

    def check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            request = self.response.request
            raise TimeoutError(
                "timed out: no complete answer within the timeout",
                method=request.method,
                url=str(request.url),
            )

    def body(self) -> bytes:
        return b"".join(self.chunks)


def read_body(response: httpx.Response, *, limit: int, deadline: float | None = None) -> bytes:
    """A streamed answer's body within ``limit`` decoded bytes and (checked between chunks) ``deadline``."""
    reader = BodyReader(response, limit=limit, deadline=deadline)
    for chunk in response.iter_bytes():
        reader.add(chunk)
    return reader.body()


async def aread_body(response: httpx.Response, *, limit: int) -> bytes:
    """``read_body`` for the async client (whose deadline is around the whole attempt)."""
    reader = BodyReader(response, limit=limit)
    async for chunk in response.aiter_bytes():
        reader.add(chunk)
    return reader.body()


class BaseClient:
    """Configuration and the I/O-free half of every request."""

    def __init__(
        self,
        base_url: str | None,
        *,
        timeout: float | httpx.Timeout | None,
        max_retries: int,
        backoff_factor: float,
        max_backoff: float,
        max_retry_after: float,
        cache_ttl: float | None,
        max_cache_size: int,
        clock: Callable[[], float],
        has_http_client: bool,
        plan_timezone: str = DEFAULT_PLAN_TIMEZONE,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if max_response_bytes < 1:
            raise ValueError("max_response_bytes must be >= 1")
        self.max_response_bytes = max_response_bytes
        if base_url is None and not has_http_client:
            base_url = DEFAULT_BASE_URL
        self.base_url = base_url.rstrip("/") if base_url else ""
        # None means: our default, or the injected client's own timeout.
        self._request_options: dict[str, Any] = {"follow_redirects": True}
        if timeout is not None or not has_http_client:
            self._request_options["timeout"] = DEFAULT_TIMEOUT if timeout is None else timeout
        self.max_retries = max_retries
        self.backoff_factor = backoff_factor
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self._cache: TTLCache[Any] | None = (
            None if cache_ttl is None else TTLCache(ttl=cache_ttl, max_size=max_cache_size, clock=clock)
        )
        self._counter_lock = threading.Lock()
        self.requests_sent = 0
        self.plan_timezone = plan_zone(plan_timezone)

    def today(self) -> dt.date:
        """Today in the market time zone (``plan_timezone``), like the API's "today"."""
        return dt.datetime.now(self.plan_timezone).date()

    def _ticker_window(
        self, ticker: str, *, days: int, as_of: str | dt.date | None, page_size: int
    ) -> tuple[str, dt.date, dt.date]:
        """(symbol, first day, last day) of a ticker search; ValueError on bad arguments."""
        if days < 1:
            raise ValueError(f"days must be >= 1, got {days}")
        self._check_page_size(page_size)
        last = self.today() if as_of is None else as_date(as_of)
        try:
            first = last - dt.timedelta(days=days - 1)
        except OverflowError:  # before year 1, or more days than a timedelta holds
            raise ValueError(f"{days} days back from {last} is before the calendar begins") from None
        return normalise_ticker(ticker), first, last

    @staticmethod
    def _check_page_size(page_size: int, upper: int = MAX_PAGE_SIZE) -> None:
        if not 1 <= page_size <= upper:
            raise ValueError(f"page_size must be 1..{upper}, got {page_size}")

    def _next_cursor(self, cursor: str, seen: set[str], path: str = "/api/v1/plans") -> str:
        # A server handing back a cursor it already gave would page forever.
        if cursor in seen:
            raise InvalidResponseError(
                f"pagination does not advance: cursor {cursor!r} repeated",
                method="GET",
                url=self._url(path),
            )
        seen.add(cursor)
        return cursor

    # -- request preparation -------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    @staticmethod
    def _clean_params(params: Params | None) -> dict[str, str]:
        cleaned: dict[str, str] = {}
        for name, value in (params or {}).items():
            if value is None:
                continue
            # A datetime is sent as its date, as the legacy client and the ticker window do.
            cleaned[name] = as_date(value).isoformat() if isinstance(value, dt.date) else str(value)
        return cleaned

    def _cache_key(self, path: str, params: Mapping[str, str]) -> CacheKey:
        return (self._url(path), tuple(sorted(params.items())))

    def _lookup(self, key: CacheKey | None) -> tuple[Any, CacheEntry[Any] | None, dict[str, str]]:
        """(fresh cached JSON or None, stale entry, conditional headers) for a request."""
        if key is None or self._cache is None:
            return None, None, {}
        fresh = self._cache.get(key)
        if fresh is not None:
            return fresh, None, {}
        stale = self._cache.get_stale(key)
        if stale is not None and stale.etag:
            return None, stale, {"If-None-Match": stale.etag}
        return None, None, {}

    def _attempt_timeout(self, http_timeout: httpx.Timeout) -> float | None:
        """Seconds one attempt may take, from our timeout or else the HTTP client's own."""
        return attempt_timeout(self._request_options.get("timeout", http_timeout))

    def _count_request(self) -> None:
        with self._counter_lock:
            self.requests_sent += 1

    # -- retry policy --------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        """Full jitter: anywhere between 0 and the capped exponential delay.

        Clients that failed together (an API restart) then spread their retries out instead of
        coming back in step; the model is AWS's "exponential backoff and jitter" advice.
        """
        return random.uniform(0.0, min(self.backoff_factor * 2 ** min(attempt, 32), self.max_backoff))

    def _retry_delay_for_response(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying this response, or None to stop."""
        if response.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
            return None
        if response.status_code in RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None:
                # The server knows when it will answer again; a wait longer than we accept is
                # not worth blocking the caller for, so the error is raised at once instead.
                return retry_after if retry_after <= self.max_retry_after else None
        return self._backoff(attempt)

    def _retry_delay_for_exception(self, exc: httpx.HTTPError, attempt: int) -> float | None:
        # Only errors where the request surely never reached the server are retried.
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout) and attempt < self.max_retries:
            return self._backoff(attempt)
        return None

    # -- outcomes ------------------------------------------------------------------------------

    @staticmethod
    def _timed_out(timeout: float | None, *, url: str) -> TimeoutError:
        return TimeoutError(f"timed out: no complete answer within {timeout} s", method="GET", url=url)

    @staticmethod
    def _closed(url: str) -> ClientClosedError:
        return ClientClosedError(
            "the client is closed: close()/aclose() was called, or the injected httpx client was closed",
            method="GET",
            url=url,
        )

    @staticmethod
    def _translate(exc: httpx.HTTPError | httpx.InvalidURL, *, method: str, url: str) -> CoachPlansError:
        if isinstance(exc, httpx.TimeoutException):
            return TimeoutError(f"timed out: {exc!r}", method=method, url=url)
        if isinstance(exc, httpx.TransportError | httpx.InvalidURL):
            return ConnectionError(f"cannot reach the API: {exc!r}", method=method, url=url)
        return InvalidResponseError(f"unusable response: {exc!r}", method=method, url=url)

    @staticmethod
    def _error_from_response(response: httpx.Response, content: bytes, *, method: str, url: str) -> APIError:
        status = response.status_code
        error: str | None = None
        detail = _snippet(content)
        body: Any = None
        with contextlib.suppress(ValueError):
            body = json_of(content)
        if isinstance(body, Mapping):
            error = body.get("error") if isinstance(body.get("error"), str) else None
            detail = str(body.get("detail") or body.get("plan") or detail)
        message = f"HTTP {status}" + (f" {error}" if error else "") + (f": {detail}" if detail else "")
        kwargs: dict[str, Any] = {
            "status_code": status,
            "error": error,
            "body": body,
            "method": method,
            "url": url,
        }
        if status == 404:
            return NotFoundError(message, **kwargs)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return RateLimitError(message, retry_after=retry_after, **kwargs)
        if status in (400, 422):
            return BadRequestError(message, **kwargs)
        if status >= 500:
            return ServerError(message, **kwargs)
        return APIError(message, **kwargs)

    def _finish(
        self,
        response: httpx.Response,
        content: bytes,
        *,
        key: CacheKey | None,
        stale: CacheEntry[Any] | None,
        accept: Collection[int],
    ) -> Any:
        """The JSON body of a final response, from the cache on 304; raises on errors."""
        method, url = response.request.method, str(response.request.url)
        if response.status_code == 304 and stale is not None and key is not None:
            assert self._cache is not None  # a stale entry comes from the cache
            logger.debug("not modified, cache refreshed: %s", url)
            self._cache.refresh(key)
            return stale.value
        if response.status_code not in accept:
            raise self._error_from_response(response, content, method=method, url=url)
        try:
            data = json_of(content)
        except ValueError:
            content_type = response.headers.get("content-type", "no content-type")
            raise InvalidResponseError(
                f"expected JSON, got {content_type}: {_snippet(content)}",
                status_code=response.status_code,
                method=method,
                url=url,
            ) from None
        etag = response.headers.get("ETag")
        if key is not None and self._cache is not None and response.status_code == 200:
            self._cache.set(key, data, etag=etag)
        return data

    @staticmethod
    def _parse(parse: Callable[[Any], T], data: Any, *, response: httpx.Response | None) -> T:
        try:
            return parse(data)
        except ModelError as exc:
            request = response.request if response is not None else None
            raise InvalidResponseError(
                f"response does not match the contract: {exc}",
                status_code=response.status_code if response is not None else None,
                method=request.method if request else None,
                url=str(request.url) if request else None,
            ) from None

    @staticmethod
    def _log_response(response: httpx.Response, *, attempt: int, started: float) -> None:
        logger.debug(
            "%s %s -> %s in %.1f ms (attempt %d)",
            response.request.method,
            response.request.url,
            response.status_code,
            (time.perf_counter() - started) * 1000,
            attempt + 1,
        )

    def clear_cache(self) -> None:
        """Forget every cached response (including their ETags)."""
        if self._cache is not None:
            self._cache.clear()


class Subscription:
    """One live-events subscription across reconnects: where to resume, and when to try again."""

    def __init__(self, client: BaseClient, *, last_event_id: int | None, max_reconnects: int | None) -> None:
        if max_reconnects is not None and max_reconnects < 0:
            raise ValueError("max_reconnects must be >= 0 or None")
        self.client = client
        self.url = client._url(EVENTS_PATH)
        self.last_event_id = last_event_id
        self.max_reconnects = max_reconnects
        self.reconnect_delay = DEFAULT_RECONNECT_DELAY
        self.failures = 0  # failed attempts in a row
        self.open = False

    def headers(self) -> dict[str, str]:
        return {} if self.last_event_id is None else {"Last-Event-ID": str(self.last_event_id)}

    def opened(self, response: httpx.Response, content: bytes = b"") -> float | None:
        """None when the stream is open; else (``content`` is the answer's body) seconds to wait
        before trying again, or raise."""
        if response.status_code == 200:
            self.failures, self.open = 0, True
            logger.debug("event stream open: %s (after id %s)", self.url, self.last_event_id)
            return None
        error = self.client._error_from_response(response, content, method="GET", url=self.url)
        if response.status_code not in RETRY_STATUSES:
            raise error
        self._count_failure(error)
        if response.status_code in RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None:
                if retry_after > self.client.max_retry_after:
                    raise error
                return retry_after
        return self._delay()

    def received(self, sse: ServerSentEvent) -> PlanEvent | None:
        """The plan event in ``sse``; None for blocks without data (the ``retry`` hint, pings)."""
        # httpx-sse reads the field with int(): the sign is all that is left to check. Any
        # number of digits may come, so it is bounded before it becomes a float.
        if sse.retry is not None and sse.retry >= 0:
            self.reconnect_delay = min(sse.retry, int(MAX_RECONNECT_DELAY * 1000)) / 1000
        if not sse.data:
            return None
        try:
            event = PlanEvent.from_json(json_of(sse.data))
        except ValueError as exc:  # malformed JSON or an event of the wrong shape
            raise InvalidResponseError(f"unusable event: {exc}", method="GET", url=self.url) from exc
        self.last_event_id = event.id
        return event

    def lost(self, exc: httpx.TransportError | None) -> float:
        """Seconds to wait after the stream ended (``exc`` None) or a connection failed."""
        if self.open:
            self.open = False
            logger.warning(
                "event stream %s lost (%s); resuming after event id %s",
                self.url,
                repr(exc) if exc else "closed by the server",
                self.last_event_id,
            )
            return self._delay()
        assert exc is not None  # a stream that never opened cannot end cleanly
        self._count_failure(self.client._translate(exc, method="GET", url=self.url))
        return self._delay()

    def not_a_stream(self, exc: Exception) -> InvalidResponseError:
        return InvalidResponseError(f"not an event stream: {exc}", method="GET", url=self.url)

    def _count_failure(self, error: CoachPlansError) -> None:
        self.failures += 1
        if self.max_reconnects is not None and self.failures > self.max_reconnects:
            raise error
        logger.warning("event stream %s unavailable (attempt %d): %s", self.url, self.failures, error)

    def _delay(self) -> float:
        """Full jitter up to the server's ``retry`` delay, doubling with each failure in a row."""
        # The exponent stops at 32 (years of waiting): after 1,024 failures 2**1023 is no float.
        ceiling = self.reconnect_delay * 2 ** min(max(self.failures - 1, 0), 32)
        return random.uniform(0.0, min(ceiling, max(self.client.max_backoff, self.reconnect_delay)))
