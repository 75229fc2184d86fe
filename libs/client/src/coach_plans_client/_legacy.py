"""``DiscordWebhookClient``: the drop-in replacement of TradingAgents' old client.

Its contract is the old one: it never raises into the caller. Every failure becomes a plan
whose text starts with "No" (the coach agents skip those), counts an error, and is logged with
the request details. docs/agents.md lists what the old client did and every intended difference.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from ._base import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_PLAN_TIMEZONE,
    DEFAULT_TIMEOUT,
    attempt_timeout,
    plan_zone,
    read_body,
)
from ._cache import TTLCache
from ._client import CoachPlansClient
from ._errors import CoachPlansError, NotFoundError
from ._mock import DEFAULT_COACHES, MOCK_BASE_URL, mock_transport
from ._webhook import build_summary_embed, redact_webhook_url

__all__ = ["DiscordWebhookClient"]

logger = logging.getLogger("coach_plans_client.legacy")

LEGACY_PATH = "/api/coach-plans"
OLD_WEBHOOK_PATH = "/webhooks"
SUMMARY_KEY = "summary_webhook"
PlanDict = dict[str, Any]
_Self = TypeVar("_Self", bound="DiscordWebhookClient")


def normalise_coach(coach: str) -> str:
    """``d``, ``D``, ``coach_D`` -> ``coach_d``; other names (``technical_coach``) only lower-cased."""
    name = coach.strip().lower()
    return name if name.startswith("coach_") or "_" in name else f"coach_{name}"


def server_base_url(url: str) -> str:
    """The API's base URL from any URL of it the old client accepted.

    That is the legacy endpoint (``http://host:5000/api/coach-plans/?coach=coach_d``), the bare
    host, and the ``/webhooks/`` form, which the old client rewrote to ``/api/coach-plans/``.
    """
    url = url.strip()
    if "://" not in url:
        url = f"http://{url}"
    parts = urlsplit(url)
    path = parts.path.replace(f"{OLD_WEBHOOK_PATH}/", f"{LEGACY_PATH}/")
    if path.endswith(OLD_WEBHOOK_PATH):
        path = path[: -len(OLD_WEBHOOK_PATH)] + LEGACY_PATH
    index = path.find(LEGACY_PATH)
    path = path[:index] if index >= 0 else path
    return f"{parts.scheme}://{parts.netloc}{path.rstrip('/')}"


def _copy_plan(plan: PlanDict) -> PlanDict:
    """A copy the caller may change without touching the cache (plans are flat but for lists).

    Cheaper than ``copy.deepcopy``, which made a cached fetch cost about 6 us instead of 2.
    """
    return {key: value.copy() if isinstance(value, list | dict) else value for key, value in plan.items()}


def no_plan(*, coach: str, date: str, error: str) -> PlanDict:
    """The fallback every failure returns (its text starts with "No", so agents skip it)."""
    return {"plan": f"No plan available for {coach} on {date}", "charts": [], "error": error}


def not_configured(coach: str) -> PlanDict:
    """The old client's answer for a coach without a URL: that coach is switched off."""
    return {"plan": f"No webhook configured for {coach}", "charts": [], "error": "not_configured"}


def is_no_plan_answer(exc: NotFoundError) -> bool:
    """True for the API's "no plan that day" 404; any other 404 means a wrong URL."""
    body = exc.body
    return exc.error == "not_found" and isinstance(body, Mapping) and isinstance(body.get("plan"), str)


@dataclass(frozen=True)
class _Coach:
    key: str  # as written in webhook_urls: the result keys use it, as the old client's did
    name: str  # what the API is asked for
    base: str | None  # the plan server; None when the URL is empty (the coach is switched off)
    problem: str | None = None  # why the URL cannot be used (every fetch then fails); None if it can


def usable_base_url(url: object) -> tuple[str, str | None]:
    """(the server's base URL, None), or (the URL as given, why no request can be made to it)."""
    if not isinstance(url, str):
        return repr(url), f"not a URL: {url!r:.100}"
    try:
        base = server_base_url(url)
        httpx.URL(base)
    except (ValueError, httpx.InvalidURL) as exc:  # a lone surrogate is a UnicodeError, a ValueError
        return url, f"not a valid URL ({exc}): {url!r:.100}"
    return base, None


class DiscordWebhookClient:
    """Fetches coach plans for TradingAgents; same methods and return shapes as the old client.

    ``webhook_urls`` maps ``coach_d``... to a URL of the plan server (the legacy endpoint URL,
    the old ``/webhooks/`` form, or just the host; an empty URL switches the coach off) and
    ``summary_webhook`` to a Discord webhook. Plans are cached for ``cache_ttl`` seconds;
    misses and errors only for ``miss_ttl`` seconds.
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
        plan_timezone: str = DEFAULT_PLAN_TIMEZONE,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_response_bytes < 1:
            raise ValueError("max_response_bytes must be >= 1")
        self.max_response_bytes = max_response_bytes
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
        self._timezone = plan_zone(plan_timezone)
        self._coaches = self._configure(self.webhook_urls)
        self._clients: dict[str, CoachPlansClient] = {
            base: CoachPlansClient(
                base,
                http_client=self._http,
                timeout=timeout,
                max_retries=max_retries,
                backoff_factor=backoff_factor,
                cache_ttl=None,  # this client caches the final answers itself
                max_response_bytes=max_response_bytes,
                sleep=sleep,
            )
            for base in dict.fromkeys(
                coach.base for coach in self._coaches.values() if coach.base and not coach.problem
            )
        }
        self._lock = threading.Lock()
        self._errors = 0
        self._not_found = 0
        self._webhook_calls = 0
        # server base URL -> what showed it is not the plan API (reported by check_health)
        self._misconfigured: dict[str, str] = {}
        if mock_mode:
            logger.info("DiscordWebhookClient in MOCK MODE: predefined plans, no network")

    def _configure(self, webhook_urls: Mapping[str, str | None]) -> dict[str, _Coach]:
        coaches: dict[str, _Coach] = {}
        for key, url in webhook_urls.items():
            if key == SUMMARY_KEY:
                continue
            name = normalise_coach(str(key))
            if not name.startswith("coach_"):
                logger.warning(
                    "webhook_urls key %r is not a coach name (coach_d, coach_i, coach_s, coach_n): it is "
                    "kept and fetched as coach %r, which the plan server rejects unless its roster has it",
                    key,
                    name,
                )
            if self.mock_mode:
                coaches[key] = _Coach(key, name, MOCK_BASE_URL)
            elif not url:
                logger.info("%s has no URL: switched off (answers 'No webhook configured for %s')", key, key)
                coaches[key] = _Coach(key, name, None)
            else:
                # The old client only stored the URLs: a bad one fails each fetch, not the constructor.
                base, problem = usable_base_url(url)
                if problem is not None:
                    logger.warning(
                        "webhook_urls[%r] is %s: its plans are fallbacks (misconfigured)", key, problem
                    )
                coaches[key] = _Coach(key, name, base, problem)
        if self.mock_mode and not coaches:
            coaches = {coach: _Coach(coach, coach, MOCK_BASE_URL) for coach in DEFAULT_COACHES}
        return coaches

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

    def _coach(self, coach_name: str) -> _Coach:
        """The configured coach by its key, else by its normalised name; unknown ones are off."""
        if coach_name in self._coaches:
            return self._coaches[coach_name]
        name = normalise_coach(coach_name)
        for coach in self._coaches.values():
            if coach.name == name:
                return coach
        return _Coach(coach_name, name, MOCK_BASE_URL if self.mock_mode else None)

    def _count(self, *, errors: int = 0, not_found: int = 0, webhook_calls: int = 0) -> None:
        with self._lock:
            self._errors += errors
            self._not_found += not_found
            self._webhook_calls += webhook_calls

    def _remember(self, coach: _Coach, date: str, plan: PlanDict, *, found: bool) -> None:
        self._cache.set((coach.base, coach.name, date), plan, ttl=None if found else self.miss_ttl)

    def _cached(self, coach: _Coach, date: str) -> PlanDict | None:
        return self._cache.get((coach.base, coach.name, date))

    def _failed(self, *, what: str, base: str, date: str, exc: Exception, coach: str) -> PlanDict:
        """Log and count a failed fetch; the fallback plan for ``coach``."""
        if isinstance(exc, NotFoundError) and is_no_plan_answer(exc):
            logger.info("no plan for %s on %s (%s %s -> 404)", coach, date, exc.method, exc.url)
            self._count(not_found=1)
            return no_plan(coach=coach, date=date, error="not_found")
        self._count(errors=1)
        if isinstance(exc, NotFoundError):
            # A 404 that is not the API's "no plan" answer: the URL reaches some other server or
            # route, and every plan would silently look missing.
            problem = f"{exc.method} {exc.url} answered {exc.message}"
            with self._lock:
                self._misconfigured[base] = problem
            logger.warning(
                "%s failed: %s, which is not the Coach Plans API: check webhook_urls (server %s)",
                what,
                problem,
                base,
            )
            return no_plan(coach=coach, date=date, error="misconfigured")
        if isinstance(exc, ValueError):
            # What the typed client raises for an argument no request can carry (a query longer
            # than a URL may be, a lone surrogate): the caller's input, not a bug of ours.
            logger.warning("%s failed: coach=%s date=%s: cannot be requested: %s", what, coach, date, exc)
            return no_plan(coach=coach, date=date, error=type(exc).__name__)
        if isinstance(exc, CoachPlansError):
            logger.warning(
                "%s failed: coach=%s date=%s request=%s %s error=%s: %s",
                what,
                coach,
                date,
                exc.method,
                exc.url,
                type(exc).__name__,
                exc.message,
            )
            return no_plan(coach=coach, date=date, error=type(exc).__name__)
        logger.error("%s failed: coach=%s date=%s", what, coach, date, exc_info=exc)
        return no_plan(coach=coach, date=date, error="internal_error")

    def _succeeded(self, base: str) -> None:
        with self._lock:
            self._misconfigured.pop(base, None)

    # -- the old public API --------------------------------------------------------------------

    def fetch_coach_plan(self, coach_name: str, date: str | dt.date | None = None) -> PlanDict:
        """A coach's plan for a date (default: today in the market time zone); never raises."""
        try:
            coach = self._coach(coach_name)
            if coach.base is None:
                return not_configured(coach_name)
            day = self._resolve_date(date)
            if coach.problem is not None:
                return self._unusable(coach, day)
            cached = self._cached(coach, day)
            return _copy_plan(cached if cached is not None else self._fetch_one(coach, day))
        except Exception as exc:  # noqa: BLE001 - the never-raise boundary; _failed logs the traceback
            return self._failed(what="plan fetch", base="", date=str(date), exc=exc, coach=str(coach_name))

    def _unusable(self, coach: _Coach, day: str) -> PlanDict:
        """The fallback of a coach whose URL cannot be requested, logged and counted as an error."""
        logger.warning(
            "plan fetch failed: coach=%s date=%s: webhook_urls[%r] is %s",
            coach.name,
            day,
            coach.key,
            coach.problem,
        )
        self._count(errors=1)
        return no_plan(coach=coach.name, date=day, error="misconfigured")

    def _fetch_one(self, coach: _Coach, day: str) -> PlanDict:
        assert coach.base is not None  # switched-off coaches never get here
        started = time.perf_counter()
        try:
            result = self._clients[coach.base].get_plan(coach.name, day).to_legacy_dict()
        # The old client's contract: TradingAgents must never crash on a plan fetch, so even a
        # bug ends as a logged fallback instead of an exception.
        except Exception as exc:  # noqa: BLE001 - the legacy never-raise boundary; _failed logs it
            result = self._failed(what="plan fetch", base=coach.base, date=day, exc=exc, coach=coach.name)
            self._remember(coach, day, result, found=False)
            return result
        self._succeeded(coach.base)
        logger.info(
            "fetched plan coach=%s date=%s chars=%d charts=%d in %.0f ms",
            coach.name,
            day,
            len(result["plan"]),
            len(result["charts"]),
            (time.perf_counter() - started) * 1000,
        )
        self._remember(coach, day, result, found=True)
        return result

    def fetch_all_coach_plans(self, date: str | dt.date | None = None) -> dict[str, Any]:
        """``{"coach_d_plan": str, "coach_d_charts": [...], ...}`` for every configured coach."""
        try:
            return self._fetch_all(date)
        except Exception as exc:  # noqa: BLE001 - the never-raise boundary; _failed logs the traceback
            error = self._failed(
                what="all-plans fetch", base="", date=str(date), exc=exc, coach="all coaches"
            )
            result: dict[str, Any] = {}
            for coach in self._coaches.values():
                fallback = no_plan(coach=coach.name, date=str(date), error=error["error"])
                result[f"{coach.key}_plan"], result[f"{coach.key}_charts"] = fallback["plan"], []
            return result

    def _fetch_all(self, date: str | dt.date | None) -> dict[str, Any]:
        day = self._resolve_date(date)
        plans: dict[str, PlanDict] = {}
        # Coaches sharing a server are fetched with one `/all` request. It lists only the plans
        # it has, so a name it leaves out is asked on its own: the server then says whether that
        # coach has no plan (404) or is not on its roster (400, logged and counted as an error).
        shared: dict[str, list[_Coach]] = {}
        for coach in self._coaches.values():
            cached = self._cached(coach, day) if coach.base else None
            if coach.base is None:
                plans[coach.key] = not_configured(coach.key)
            elif coach.problem is not None:
                plans[coach.key] = self._unusable(coach, day)
            elif cached is not None:
                plans[coach.key] = cached
            else:
                shared.setdefault(coach.base, []).append(coach)
        for base, coaches in shared.items():
            if len(coaches) == 1:
                plans[coaches[0].key] = self._fetch_one(coaches[0], day)
            else:
                plans.update(self._fetch_all_from(base, coaches=coaches, day=day))
        result: dict[str, Any] = {}
        for coach in self._coaches.values():
            result[f"{coach.key}_plan"] = plans[coach.key]["plan"]
            result[f"{coach.key}_charts"] = list(plans[coach.key].get("charts") or [])
        return result

    def _fetch_all_from(self, base: str, *, coaches: list[_Coach], day: str) -> dict[str, PlanDict]:
        """One ``/all`` request for the coaches of one server not in the cache, then one request
        for each coach it does not list; by key."""
        started = time.perf_counter()
        try:
            answer = self._clients[base].get_all_plans(day)
            served = {normalise_coach(name): plan for name, plan in answer.items()}
        except Exception as exc:  # noqa: BLE001 - never raise: see fetch_coach_plan
            error = self._failed(what="all-plans fetch", base=base, date=day, exc=exc, coach="all coaches")
            failures = {
                coach.key: no_plan(coach=coach.name, date=day, error=error["error"]) for coach in coaches
            }
            for coach in coaches:
                self._remember(coach, day, failures[coach.key], found=False)
            return failures
        self._succeeded(base)
        logger.info(
            "fetched all plans date=%s found=%d/%d in %.0f ms",
            day,
            sum(coach.name in served for coach in coaches),
            len(coaches),
            (time.perf_counter() - started) * 1000,
        )
        results: dict[str, PlanDict] = {}
        for coach in coaches:
            if coach.name in served:
                results[coach.key] = served[coach.name].to_legacy_dict()
                self._remember(coach, day, results[coach.key], found=True)
            else:
                results[coach.key] = self._fetch_one(coach, day)
        return results

    def send_trading_summary(self, webhook_url: str, summary: Mapping[str, Any] | str) -> bool:
        """Post the summary as a Discord embed; True when Discord accepted it (204); never raises."""
        try:
            sent = self._send_summary(webhook_url, summary)
        except Exception as exc:  # the never-raise boundary: logged with its traceback
            logger.error("trading summary failed", exc_info=exc)
            sent = False
        if not sent:
            self._count(errors=1)
        return sent

    def _send_summary(self, webhook_url: str, summary: Mapping[str, Any] | str) -> bool:
        """True when sent; False (after logging why) when not."""
        if not webhook_url or not isinstance(webhook_url, str):
            logger.warning("no webhook URL given (%r); trading summary not sent", webhook_url)
            return False
        safe_url = redact_webhook_url(webhook_url)
        try:
            httpx.URL(webhook_url)
        except (ValueError, httpx.InvalidURL) as exc:  # a lone surrogate is a UnicodeError, a ValueError
            logger.warning("trading summary not sent: %s is not a valid URL (%s)", safe_url, exc)
            return False
        if self._http.is_closed:
            logger.warning("trading summary to %s not sent: the client is closed", safe_url)
            return False
        if not isinstance(summary, Mapping | str):
            summary = str(summary)
        payload = {"embeds": [build_summary_embed(summary)]}
        if self.mock_mode:
            logger.info("MOCK MODE: trading summary for %s not sent", safe_url)
            return True
        self._count(webhook_calls=1)
        timeout = attempt_timeout(self._http.timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with self._http.stream("POST", webhook_url, json=payload) as response:
                answer = read_body(response, limit=self.max_response_bytes, deadline=deadline)
        except (httpx.HTTPError, httpx.InvalidURL, CoachPlansError) as exc:
            logger.warning("trading summary to %s failed: %r", safe_url, exc)
            return False
        if response.status_code in (200, 204):
            logger.info("trading summary sent to %s", safe_url)
            return True
        logger.warning(
            "trading summary to %s rejected: HTTP %d %s",
            safe_url,
            response.status_code,
            answer[:200].decode("utf-8", "replace"),
        )
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
        """The plan server's ``/health`` answer, or ``{"status": "unhealthy", "error": ...}``.

        A server whose plan URL answered a 404 that is not "no plan" (a wrong URL) is reported
        unhealthy with that request as the error, even when its ``/health`` answers; so is a URL
        that cannot be requested at all. Never raises.
        """
        try:
            return self._check_health()
        except Exception as exc:  # the never-raise boundary: logged with its traceback
            logger.error("health check failed", exc_info=exc)
            self._count(errors=1)
            return {"status": "unhealthy", "error": f"internal error: {exc!r}", "servers": {}}

    def _check_health(self) -> dict[str, Any]:
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
            with self._lock:
                problem = self._misconfigured.get(base)
            if problem is not None:
                servers[base].update(status="unhealthy", error=f"misconfigured: {problem}")
        for coach in self._coaches.values():
            if coach.base is not None and coach.problem is not None:
                servers[coach.base] = {"status": "unhealthy", "error": f"misconfigured: {coach.problem}"}
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

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
