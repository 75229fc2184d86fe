"""``DiscordWebhookClient``: the drop-in replacement of TradingAgents' old client.

Its contract is the old one: it never raises into the caller. Every failure becomes a plan
whose text starts with "No plan available" (the coach agents skip those), counts an error, and
is logged with the request details.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from ._base import DEFAULT_TIMEOUT
from ._cache import TTLCache
from ._client import CoachPlansClient
from ._errors import CoachPlansError, NotFoundError
from ._mock import DEFAULT_COACHES, MOCK_BASE_URL, mock_transport
from ._webhook import build_summary_embed, redact_webhook_url

__all__ = ["DiscordWebhookClient"]

logger = logging.getLogger("coach_plans_client.legacy")

LEGACY_PATH = "/api/coach-plans"
SUMMARY_KEY = "summary_webhook"
PlanDict = dict[str, Any]


def normalise_coach(coach: str) -> str:
    """``d``, ``D``, ``coach_D`` -> ``coach_d``."""
    coach = coach.strip().lower()
    return coach if coach.startswith("coach_") else f"coach_{coach}"


def server_base_url(url: str) -> str:
    """The API's base URL from any URL of it (legacy endpoint, bare host, with or without path)."""
    if "://" not in url:
        url = f"http://{url}"
    parts = urlsplit(url.strip())
    path = parts.path
    index = path.find(LEGACY_PATH)
    path = path[:index] if index >= 0 else path
    return f"{parts.scheme}://{parts.netloc}{path.rstrip('/')}"


def _copy_plan(plan: PlanDict) -> PlanDict:
    """A copy the caller may change without touching the cache (plans are flat but for lists).

    Cheaper than ``copy.deepcopy``, which made a cached fetch cost about 6 us instead of 2.
    """
    return {key: value.copy() if isinstance(value, list | dict) else value for key, value in plan.items()}


def no_plan(coach: str, date: str, error: str) -> PlanDict:
    """The fallback every failure returns (its text starts with "No", so agents skip it)."""
    return {"plan": f"No plan available for {coach} on {date}", "charts": [], "error": error}


class DiscordWebhookClient:
    """Fetches coach plans for TradingAgents; same methods and return shapes as the old client.

    ``webhook_urls`` maps ``coach_d``... to a URL of the plan server (the legacy endpoint URL,
    or just the host) and ``summary_webhook`` to a Discord webhook. Plans are cached for
    ``cache_ttl`` seconds; misses and errors only for ``miss_ttl`` seconds.
    """

    def __init__(
        self,
        webhook_urls: Mapping[str, str | None] | None = None,
        cache_ttl: float = 3600,
        max_cache_size: int = 100,
        *,
        miss_ttl: float = 60.0,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = 2,
        backoff_factor: float = 0.5,
        http_client: httpx.Client | None = None,
        mock_mode: bool = False,
        plan_timezone: str = "America/New_York",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.webhook_urls = dict(webhook_urls or {})
        self.cache_ttl = cache_ttl
        self.miss_ttl = min(miss_ttl, cache_ttl)
        self.max_cache_size = max_cache_size
        self.mock_mode = mock_mode
        self._cache: TTLCache[PlanDict] = TTLCache(ttl=cache_ttl, max_size=max_cache_size, clock=clock)
        self._owns_http_client = http_client is None
        if mock_mode and http_client is None:
            http_client = httpx.Client(transport=mock_transport())
        # timeout=None: the injected client's own timeout, else DEFAULT_TIMEOUT.
        self._http = http_client or httpx.Client(timeout=timeout or DEFAULT_TIMEOUT)
        try:
            self._timezone: dt.tzinfo = ZoneInfo(plan_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            logger.warning("unknown time zone %r, using UTC for today's date", plan_timezone)
            self._timezone = dt.UTC

        # coach -> base URL of its server (None: not configured)
        self._coaches: dict[str, str | None] = {}
        for key, url in self.webhook_urls.items():
            if key == SUMMARY_KEY or not key.lower().startswith("coach_"):
                continue
            self._coaches[normalise_coach(key)] = server_base_url(url) if url else None
        if mock_mode:
            self._coaches = dict.fromkeys(self._coaches or DEFAULT_COACHES, MOCK_BASE_URL)

        self._clients: dict[str, CoachPlansClient] = {
            base: CoachPlansClient(
                base,
                http_client=self._http,
                timeout=timeout,
                max_retries=max_retries,
                backoff_factor=backoff_factor,
                cache_ttl=None,  # this client caches the final answers itself
                sleep=sleep,
            )
            for base in dict.fromkeys(url for url in self._coaches.values() if url)
        }
        self._lock = threading.Lock()
        self._errors = 0
        self._not_found = 0
        self._webhook_calls = 0
        if mock_mode:
            logger.info("DiscordWebhookClient in MOCK MODE: predefined plans, no network")

    # -- helpers -------------------------------------------------------------------------------

    def _today(self) -> str:
        return dt.datetime.now(self._timezone).date().isoformat()

    def _resolve_date(self, date: str | dt.date | None) -> str:
        if date is None or date == "":
            return self._today()
        if isinstance(date, dt.datetime):
            return date.date().isoformat()
        if isinstance(date, dt.date):
            return date.isoformat()
        return str(date).strip()

    def _shared_base(self) -> str | None:
        """The one server every configured coach lives on, if there is exactly one."""
        return next(iter(self._clients)) if len(self._clients) == 1 else None

    def _client_for(self, coach: str) -> CoachPlansClient | None:
        base = self._coaches.get(coach)
        if base is not None:
            return self._clients[base]
        # Unknown or URL-less coach: ask the only server there is, if any.
        shared = self._shared_base()
        return self._clients[shared] if shared else None

    def _count(self, *, errors: int = 0, not_found: int = 0, webhook_calls: int = 0) -> None:
        with self._lock:
            self._errors += errors
            self._not_found += not_found
            self._webhook_calls += webhook_calls

    def _remember(self, coach: str, date: str, plan: PlanDict, *, found: bool) -> None:
        self._cache.set(f"{coach}:{date}", plan, ttl=None if found else self.miss_ttl)

    def _failed(self, coach: str, date: str, exc: Exception, action: str) -> PlanDict:
        if isinstance(exc, NotFoundError):
            logger.info("no plan for %s on %s (%s %s -> 404)", coach, date, exc.method, exc.url)
            self._count(not_found=1)
            return no_plan(coach, date, "not_found")
        self._count(errors=1)
        if isinstance(exc, CoachPlansError):
            logger.warning(
                "%s failed: coach=%s date=%s request=%s %s error=%s: %s",
                action,
                coach,
                date,
                exc.method,
                exc.url,
                type(exc).__name__,
                exc.message,
            )
            return no_plan(coach, date, type(exc).__name__)
        logger.error("%s failed: coach=%s date=%s", action, coach, date, exc_info=exc)
        return no_plan(coach, date, "internal_error")

    # -- the old public API --------------------------------------------------------------------

    def fetch_coach_plan(self, coach_name: str, date: str | dt.date | None = None) -> PlanDict:
        """A coach's plan for a date (default: today in the market time zone); never raises."""
        coach = normalise_coach(coach_name)
        day = self._resolve_date(date)
        cached = self._cache.get(f"{coach}:{day}")
        return _copy_plan(cached if cached is not None else self._fetch_one(coach, day))

    def _fetch_one(self, coach: str, day: str) -> PlanDict:
        client = self._client_for(coach)
        if client is None:
            logger.warning("no server configured for %s; check webhook_urls", coach)
            self._count(errors=1)
            result = no_plan(coach, day, "not_configured")
            self._remember(coach, day, result, found=False)
            return result
        started = time.perf_counter()
        try:
            result = client.get_plan(coach, day).to_legacy_dict()
            found = True
            logger.info(
                "fetched plan coach=%s date=%s chars=%d charts=%d in %.0f ms",
                coach,
                day,
                len(result["plan"]),
                len(result["charts"]),
                (time.perf_counter() - started) * 1000,
            )
        # The old client's contract: TradingAgents must never crash on a plan fetch, so even a
        # bug ends as a logged fallback instead of an exception.
        except Exception as exc:
            result = self._failed(coach, day, exc, "plan fetch")
            found = False
        self._remember(coach, day, result, found=found)
        return result

    def fetch_all_coach_plans(self, date: str | dt.date | None = None) -> dict[str, Any]:
        """``{"coach_d_plan": str, "coach_d_charts": [...], ...}`` for every configured coach."""
        day = self._resolve_date(date)
        plans: dict[str, PlanDict] = {}
        missing: list[str] = []
        for coach in self._coaches:
            cached = self._cache.get(f"{coach}:{day}")
            if cached is None:
                missing.append(coach)
            else:
                plans[coach] = cached
        shared = self._shared_base()
        if missing and shared is not None:
            plans.update(self._fetch_all_from(self._clients[shared], missing, day))
        else:
            for coach in missing:
                plans[coach] = self._fetch_one(coach, day)
        result: dict[str, Any] = {}
        for coach in self._coaches:
            result[f"{coach}_plan"] = plans[coach]["plan"]
            result[f"{coach}_charts"] = list(plans[coach].get("charts") or [])
        return result

    def _fetch_all_from(self, client: CoachPlansClient, coaches: list[str], day: str) -> dict[str, PlanDict]:
        """One ``/all`` request for the coaches not in the cache."""
        started = time.perf_counter()
        try:
            served = {normalise_coach(coach): plan for coach, plan in client.get_all_plans(day).items()}
        except Exception as exc:  # never raise: see fetch_coach_plan
            error = self._failed("all coaches", day, exc, "all-plans fetch")["error"]
            failures = {coach: no_plan(coach, day, error) for coach in coaches}
            for coach, plan in failures.items():
                self._remember(coach, day, plan, found=False)
            return failures
        logger.info(
            "fetched all plans date=%s found=%d/%d in %.0f ms",
            day,
            sum(coach in served for coach in coaches),
            len(coaches),
            (time.perf_counter() - started) * 1000,
        )
        results: dict[str, PlanDict] = {}
        for coach in coaches:
            if coach in served:
                results[coach] = served[coach].to_legacy_dict()
                self._remember(coach, day, results[coach], found=True)
            else:
                self._count(not_found=1)
                results[coach] = no_plan(coach, day, "not_found")
                self._remember(coach, day, results[coach], found=False)
        return results

    def send_trading_summary(self, webhook_url: str, summary: Mapping[str, Any] | str) -> bool:
        """Post the summary as a Discord embed; True when Discord accepted it (204)."""
        if not webhook_url:
            logger.warning("no webhook URL given; trading summary not sent")
            self._count(errors=1)
            return False
        safe_url = redact_webhook_url(webhook_url)
        if not isinstance(summary, Mapping | str):
            summary = str(summary)
        payload = {"embeds": [build_summary_embed(summary)]}
        if self.mock_mode:
            logger.info("MOCK MODE: trading summary for %s not sent", safe_url)
            return True
        self._count(webhook_calls=1)
        try:
            response = self._http.post(webhook_url, json=payload)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            logger.warning("trading summary to %s failed: %r", safe_url, exc)
            self._count(errors=1)
            return False
        if response.status_code in (200, 204):
            logger.info("trading summary sent to %s", safe_url)
            return True
        logger.warning(
            "trading summary to %s rejected: HTTP %d %s",
            safe_url,
            response.status_code,
            response.text[:200],
        )
        self._count(errors=1)
        return False

    def clear_cache(self) -> int:
        """Forget every cached plan; returns how many there were."""
        count = len(self._cache)
        self._cache.clear()
        logger.info("cleared %d cached plans", count)
        return count

    def get_metrics(self) -> dict[str, Any]:
        """Cache and request counters since the client was created."""
        hits, misses = self._cache.hits, self._cache.misses
        lookups = hits + misses
        with self._lock:
            errors, not_found, webhook_calls = self._errors, self._not_found, self._webhook_calls
        return {
            "cache_hits": hits,
            "cache_misses": misses,
            "cache_hit_rate": hits / lookups if lookups else 0.0,
            "cache_size": len(self._cache),
            "max_cache_size": self.max_cache_size,
            "api_calls": sum(client.requests_sent for client in self._clients.values()) + webhook_calls,
            "errors": errors,
            "not_found": not_found,
            "mock_mode": self.mock_mode,
        }

    def check_health(self) -> dict[str, Any]:
        """The plan server's ``/health`` answer, or ``{"status": "unhealthy", "error": ...}``."""
        servers: dict[str, dict[str, Any]] = {}
        for base, client in self._clients.items():
            try:
                health = client.health()
            except CoachPlansError as exc:
                logger.warning("health check of %s failed: %s", base, exc)
                self._count(errors=1)
                servers[base] = {"status": "unhealthy", "error": str(exc)}
                continue
            servers[base] = {
                "status": health.status,
                "bot_connected": health.bot_connected,
                "database_connected": health.database_connected,
                "plans_count": health.plans_count,
                "uptime_seconds": health.uptime_seconds,
                "version": health.version,
            }
        if not servers:
            return {"status": "unhealthy", "error": "no plan server configured", "servers": {}}
        statuses = {server["status"] for server in servers.values()}
        if len(servers) == 1:
            return {**next(iter(servers.values())), "servers": servers}
        status = statuses.pop() if len(statuses) == 1 else "degraded"
        return {"status": status, "servers": servers}

    def close(self) -> None:
        """Close the HTTP client if this client created it."""
        if self._owns_http_client:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
