"""The typed clients: ``CoachPlansClient`` (sync) and ``AsyncCoachPlansClient``."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Generator,
    Iterator,
)
from types import TracebackType
from typing import Any, TypeVar

import httpx
from httpx_sse import SSEError, aconnect_sse, connect_sse

from ._base import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_PLAN_TIMEZONE,
    EVENTS_TIMEOUT,
    MAX_PAGE_SIZE,
    MAX_SEARCH_PAGE_SIZE,
    SEARCH_PATH,
    BaseClient,
    CacheKey,
    Params,
    Subscription,
    aread_body,
    newest_first,
    read_body,
    request_url,
)
from ._mock import MOCK_BASE_URL, mock_transport
from ._models import (
    Coach,
    CoachPlan,
    Health,
    ModelError,
    Plan,
    PlanEvent,
    PlanPage,
    Revision,
    SearchHit,
    SearchPage,
)

__all__ = ["AsyncCoachPlansClient", "CoachPlansClient"]

T = TypeVar("T")
_SyncSelf = TypeVar("_SyncSelf", bound="CoachPlansClient")
_AsyncSelf = TypeVar("_AsyncSelf", bound="AsyncCoachPlansClient")
DateLike = str | dt.date
OK = frozenset({200})


def _items(data: Any, name: str) -> list[Any]:
    value = data.get(name) if isinstance(data, dict) else None
    if not isinstance(value, list):
        raise ModelError(f"expected an object with a list {name!r}, got {data!r:.100}")
    return value


def _all_plans(data: Any) -> dict[str, CoachPlan]:
    if not isinstance(data, dict):
        raise ModelError(f"expected an object of plans by coach, got {data!r:.100}")
    return {coach: CoachPlan.from_json(plan) for coach, plan in data.items()}


def _history(data: Any) -> list[Plan]:
    return [Plan.from_json(item) for item in _items(data, "plans")]


def _revisions(data: Any) -> list[Revision]:
    return [Revision.from_json(item) for item in _items(data, "revisions")]


def _coaches(data: Any) -> list[Coach]:
    return [Coach.from_json(item) for item in _items(data, "coaches")]


def _plans_params(
    *,
    coach: str | None,
    date: DateLike | None,
    date_from: DateLike | None,
    date_to: DateLike | None,
    author: str | None,
    ticker: str | None,
    limit: int | None,
    cursor: str | None,
) -> Params:
    return {
        "coach": coach,
        "date": date,
        "from": date_from,
        "to": date_to,
        "author": author,
        "ticker": ticker,
        "limit": limit,
        "cursor": cursor,
    }


def _search_params(
    query: str,
    *,
    coach: str | None,
    date_from: DateLike | None,
    date_to: DateLike | None,
    limit: int | None,
    cursor: str | None,
) -> Params:
    return {
        "q": query,
        "coach": coach,
        "date_from": date_from,
        "date_to": date_to,
        "limit": limit,
        "cursor": cursor,
    }


class CoachPlansClient(BaseClient):
    """Synchronous typed client of the Coach Plans API.

    Responses are cached with their ETag: within ``cache_ttl`` a repeated read is served from
    memory; after it the entry is revalidated with ``If-None-Match`` (a 304 refreshes it).
    ``cache_ttl=0`` always revalidates; ``cache_ttl=None`` disables the cache.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        http_client: httpx.Client | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = 2,
        backoff_factor: float = 0.5,
        max_backoff: float = 8.0,
        max_retry_after: float = 30.0,
        cache_ttl: float | None = 0.0,
        max_cache_size: int = 100,
        headers: dict[str, str] | None = None,
        mock_mode: bool = False,
        plan_timezone: str = DEFAULT_PLAN_TIMEZONE,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mock_mode = mock_mode and http_client is None
        if self.mock_mode:
            http_client = httpx.Client(transport=mock_transport())
            base_url = base_url or MOCK_BASE_URL
            self._owns_http_client = True
        else:
            self._owns_http_client = http_client is None
        super().__init__(
            base_url,
            timeout=timeout,
            max_retries=max_retries,
            backoff_factor=backoff_factor,
            max_backoff=max_backoff,
            max_retry_after=max_retry_after,
            cache_ttl=cache_ttl,
            max_cache_size=max_cache_size,
            clock=clock,
            has_http_client=http_client is not None,
            plan_timezone=plan_timezone,
            max_response_bytes=max_response_bytes,
        )
        self._http = http_client or httpx.Client()
        self._headers = {"Accept": "application/json", **(headers or {})}
        self._sleep = sleep

    # -- plumbing ------------------------------------------------------------------------------

    def _get(
        self,
        path: str,
        params: Params | None,
        parse: Callable[[Any], T],
        *,
        use_cache: bool = True,
        accept: Collection[int] = OK,
    ) -> T:
        query = self._clean_params(params)
        url = self._url(path)
        target = request_url(url, query)  # ValueError for a query no URL can hold
        key: CacheKey | None = self._cache_key(path, query) if use_cache else None
        cached, stale, conditional = self._lookup(key)
        if cached is not None:
            return self._parse(parse, cached, response=None)
        attempt = 0
        while True:
            if self._http.is_closed:
                raise self._closed(target)
            started = time.perf_counter()
            self._count_request()
            try:
                response, content = self._attempt(url, query, {**self._headers, **conditional})
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                delay = (
                    self._retry_delay_for_exception(exc, attempt)
                    if isinstance(exc, httpx.HTTPError)
                    else None
                )
                if delay is None:
                    raise self._translate(exc, method="GET", url=target) from exc
            else:
                self._log_response(response, attempt=attempt, started=started)
                delay = (
                    None
                    if response.status_code in accept
                    else self._retry_delay_for_response(response, attempt)
                )
                if delay is None:
                    data = self._finish(response, content, key=key, stale=stale, accept=accept)
                    return self._parse(parse, data, response=response)
            self._sleep(delay)
            attempt += 1

    def _attempt(
        self, url: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[httpx.Response, bytes]:
        """One request and its whole answer, within ``max_response_bytes`` and the timeout.

        A blocking read cannot be interrupted: the deadline is checked before the body and
        between its chunks, each read waiting at most the timeout itself.
        """
        timeout = self._attempt_timeout(self._http.timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._http.stream(
            "GET", url, params=query, headers=headers, **self._request_options
        ) as response:
            return response, read_body(response, limit=self.max_response_bytes, deadline=deadline)

    def close(self) -> None:
        """Close the HTTP client if this client created it."""
        if self._owns_http_client:
            self._http.close()

    def __enter__(self: _SyncSelf) -> _SyncSelf:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- endpoints -----------------------------------------------------------------------------

    def get_plan(self, coach: str, date: DateLike | None = None) -> CoachPlan:
        """A coach's plan for a date (default: today on the server); NotFoundError if none."""
        return self._get("/api/coach-plans/", {"coach": coach, "date": date}, CoachPlan.from_json)

    def get_all_plans(self, date: DateLike | None = None) -> dict[str, CoachPlan]:
        """Every coach's plan for a date, keyed ``coach_d``...; coaches without one are absent."""
        return self._get("/api/coach-plans/all", {"date": date}, _all_plans)

    def get_history(self, coach: str, days: int = 7) -> list[Plan]:
        """A coach's plans of the last ``days`` days, newest first."""
        return self._get("/api/coach-plans/history", {"coach": coach, "days": days}, _history)

    def list_plans(
        self,
        *,
        coach: str | None = None,
        date: DateLike | None = None,
        date_from: DateLike | None = None,
        date_to: DateLike | None = None,
        author: str | None = None,
        ticker: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> PlanPage:
        """One page of plans, newest first; pass ``page.next_cursor`` as ``cursor`` for more."""
        params = _plans_params(
            coach=coach,
            date=date,
            date_from=date_from,
            date_to=date_to,
            author=author,
            ticker=ticker,
            limit=limit,
            cursor=cursor,
        )
        return self._get("/api/v1/plans", params, PlanPage.from_json)

    def fetch_plans_for_ticker(
        self,
        ticker: str,
        days: int = 30,
        *,
        as_of: DateLike | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> list[Plan]:
        """Every plan mentioning ``ticker`` in the ``days`` days up to today, newest first.

        "Today" is ``as_of`` if given, else today in ``plan_timezone``; ``days=1`` is that
        day alone. All pages are fetched (``page_size`` plans per request).
        """
        symbol, first, last = self._ticker_window(ticker, days=days, as_of=as_of, page_size=page_size)
        return newest_first(
            self.iter_plans(ticker=symbol, date_from=first, date_to=last, page_size=page_size)
        )

    def iter_plans(
        self,
        *,
        coach: str | None = None,
        date: DateLike | None = None,
        date_from: DateLike | None = None,
        date_to: DateLike | None = None,
        author: str | None = None,
        ticker: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[Plan]:
        """Every plan matching the filters, newest first, fetching page after page as needed.

        ``page_size`` (1..200) plans per request; stop iterating to stop fetching.
        """
        self._check_page_size(page_size)
        seen: set[str] = set()
        cursor: str | None = None
        while True:
            page = self.list_plans(
                coach=coach,
                date=date,
                date_from=date_from,
                date_to=date_to,
                author=author,
                ticker=ticker,
                limit=page_size,
                cursor=cursor,
            )
            yield from page.items
            if not page.next_cursor:
                return
            cursor = self._next_cursor(page.next_cursor, seen)

    def search(
        self,
        query: str,
        *,
        coach: str | None = None,
        date_from: DateLike | None = None,
        date_to: DateLike | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> SearchPage:
        """One page of plans whose text has every word of ``query``, best match first, each with a
        highlighted snippet; pass ``page.next_cursor`` as ``cursor`` for more (``limit`` 1..100)."""
        params = _search_params(
            query, coach=coach, date_from=date_from, date_to=date_to, limit=limit, cursor=cursor
        )
        return self._get(SEARCH_PATH, params, SearchPage.from_json)

    def iter_search(
        self,
        query: str,
        *,
        coach: str | None = None,
        date_from: DateLike | None = None,
        date_to: DateLike | None = None,
        page_size: int = MAX_SEARCH_PAGE_SIZE,
    ) -> Iterator[SearchHit]:
        """Every hit of a search, best first, fetching page after page; stop iterating to stop."""
        self._check_page_size(page_size, MAX_SEARCH_PAGE_SIZE)
        seen: set[str] = set()
        cursor: str | None = None
        while True:
            page = self.search(
                query, coach=coach, date_from=date_from, date_to=date_to, limit=page_size, cursor=cursor
            )
            yield from page.items
            if not page.next_cursor:
                return
            cursor = self._next_cursor(page.next_cursor, seen, SEARCH_PATH)

    def get_plan_by_id(self, plan_id: int) -> Plan:
        """One plan by id; NotFoundError for unknown or deleted plans."""
        return self._get(f"/api/v1/plans/{plan_id}", None, Plan.from_json)

    def get_revisions(self, plan_id: int) -> list[Revision]:
        """A plan's revisions, oldest first."""
        return self._get(f"/api/v1/plans/{plan_id}/revisions", None, _revisions)

    def list_coaches(self) -> list[Coach]:
        """The coach roster."""
        return self._get("/api/v1/coaches", None, _coaches)

    def health(self) -> Health:
        """The service's health; an unhealthy service (503) is reported, not raised."""
        return self._get("/health", None, Health.from_json, use_cache=False, accept={200, 503})

    def events(
        self, *, last_event_id: int | None = None, max_reconnects: int | None = None
    ) -> Generator[PlanEvent, None, None]:
        """Plan changes as they happen (Server-Sent Events), until the caller stops iterating.

        A lost connection is resumed with ``Last-Event-ID`` after the server's ``retry`` delay
        (with jitter), and the API replays what was missed: each change arrives once, in order,
        even across API restarts. Pass the ``id`` of the last event seen as ``last_event_id`` to
        resume a subscription of an earlier run. After ``max_reconnects`` failed attempts in a
        row (None: never) ConnectionError is raised; an answer that is not an event stream
        raises at once. In mock mode nothing changes: the iteration ends at once.
        """
        subscription = Subscription(self, last_event_id=last_event_id, max_reconnects=max_reconnects)
        while True:
            if self._http.is_closed:
                raise self._closed(subscription.url)
            if self.mock_mode:
                return  # nothing changes in mock mode: the subscription ends at once
            try:
                with connect_sse(
                    self._http,
                    "GET",
                    subscription.url,
                    headers={**self._headers, **subscription.headers()},
                    timeout=EVENTS_TIMEOUT,
                ) as source:
                    content = b""
                    if source.response.status_code != 200:
                        content = read_body(source.response, limit=self.max_response_bytes)
                    wait = subscription.opened(source.response, content)
                    if wait is None:
                        for sse in source.iter_sse():
                            event = subscription.received(sse)
                            if event is not None:
                                yield event
                        wait = subscription.lost(None)
            except SSEError as exc:
                raise subscription.not_a_stream(exc) from exc
            except httpx.UnsupportedProtocol as exc:  # a wrong URL does not heal by waiting
                raise self._translate(exc, method="GET", url=subscription.url) from exc
            except httpx.TransportError as exc:
                wait = subscription.lost(exc)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise self._translate(exc, method="GET", url=subscription.url) from exc
            self._sleep(wait)


class AsyncCoachPlansClient(BaseClient):
    """Asynchronous twin of :class:`CoachPlansClient` (same arguments, awaitable methods)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        http_client: httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = 2,
        backoff_factor: float = 0.5,
        max_backoff: float = 8.0,
        max_retry_after: float = 30.0,
        cache_ttl: float | None = 0.0,
        max_cache_size: int = 100,
        headers: dict[str, str] | None = None,
        mock_mode: bool = False,
        plan_timezone: str = DEFAULT_PLAN_TIMEZONE,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mock_mode = mock_mode and http_client is None
        if self.mock_mode:
            http_client = httpx.AsyncClient(transport=mock_transport())
            base_url = base_url or MOCK_BASE_URL
            self._owns_http_client = True
        else:
            self._owns_http_client = http_client is None
        super().__init__(
            base_url,
            timeout=timeout,
            max_retries=max_retries,
            backoff_factor=backoff_factor,
            max_backoff=max_backoff,
            max_retry_after=max_retry_after,
            cache_ttl=cache_ttl,
            max_cache_size=max_cache_size,
            clock=clock,
            has_http_client=http_client is not None,
            plan_timezone=plan_timezone,
            max_response_bytes=max_response_bytes,
        )
        self._http = http_client or httpx.AsyncClient()
        self._headers = {"Accept": "application/json", **(headers or {})}
        self._sleep = sleep

    async def _get(
        self,
        path: str,
        params: Params | None,
        parse: Callable[[Any], T],
        *,
        use_cache: bool = True,
        accept: Collection[int] = OK,
    ) -> T:
        query = self._clean_params(params)
        url = self._url(path)
        target = request_url(url, query)  # ValueError for a query no URL can hold
        key: CacheKey | None = self._cache_key(path, query) if use_cache else None
        cached, stale, conditional = self._lookup(key)
        if cached is not None:
            return self._parse(parse, cached, response=None)
        attempt = 0
        while True:
            if self._http.is_closed:
                raise self._closed(target)
            started = time.perf_counter()
            self._count_request()
            timeout = self._attempt_timeout(self._http.timeout)
            try:
                response, content = await asyncio.wait_for(
                    self._attempt(url, query, {**self._headers, **conditional}), timeout
                )
            except asyncio.TimeoutError:
                raise self._timed_out(timeout, url=target) from None
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                delay = (
                    self._retry_delay_for_exception(exc, attempt)
                    if isinstance(exc, httpx.HTTPError)
                    else None
                )
                if delay is None:
                    raise self._translate(exc, method="GET", url=target) from exc
            else:
                self._log_response(response, attempt=attempt, started=started)
                delay = (
                    None
                    if response.status_code in accept
                    else self._retry_delay_for_response(response, attempt)
                )
                if delay is None:
                    data = self._finish(response, content, key=key, stale=stale, accept=accept)
                    return self._parse(parse, data, response=response)
            await self._sleep(delay)
            attempt += 1

    async def _attempt(
        self, url: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[httpx.Response, bytes]:
        """One request and its whole answer, within ``max_response_bytes`` (the caller bounds its time)."""
        async with self._http.stream(
            "GET", url, params=query, headers=headers, **self._request_options
        ) as response:
            return response, await aread_body(response, limit=self.max_response_bytes)

    async def aclose(self) -> None:
        """Close the HTTP client if this client created it."""
        if self._owns_http_client:
            await self._http.aclose()

    async def __aenter__(self: _AsyncSelf) -> _AsyncSelf:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def get_plan(self, coach: str, date: DateLike | None = None) -> CoachPlan:
        """A coach's plan for a date (default: today on the server); NotFoundError if none."""
        return await self._get("/api/coach-plans/", {"coach": coach, "date": date}, CoachPlan.from_json)

    async def get_all_plans(self, date: DateLike | None = None) -> dict[str, CoachPlan]:
        """Every coach's plan for a date, keyed ``coach_d``...; coaches without one are absent."""
        return await self._get("/api/coach-plans/all", {"date": date}, _all_plans)

    async def get_history(self, coach: str, days: int = 7) -> list[Plan]:
        """A coach's plans of the last ``days`` days, newest first."""
        return await self._get("/api/coach-plans/history", {"coach": coach, "days": days}, _history)

    async def list_plans(
        self,
        *,
        coach: str | None = None,
        date: DateLike | None = None,
        date_from: DateLike | None = None,
        date_to: DateLike | None = None,
        author: str | None = None,
        ticker: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> PlanPage:
        """One page of plans, newest first; pass ``page.next_cursor`` as ``cursor`` for more."""
        params = _plans_params(
            coach=coach,
            date=date,
            date_from=date_from,
            date_to=date_to,
            author=author,
            ticker=ticker,
            limit=limit,
            cursor=cursor,
        )
        return await self._get("/api/v1/plans", params, PlanPage.from_json)

    async def fetch_plans_for_ticker(
        self,
        ticker: str,
        days: int = 30,
        *,
        as_of: DateLike | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> list[Plan]:
        """Every plan mentioning ``ticker`` in the ``days`` days up to today, newest first.

        "Today" is ``as_of`` if given, else today in ``plan_timezone``; ``days=1`` is that
        day alone. All pages are fetched (``page_size`` plans per request).
        """
        symbol, first, last = self._ticker_window(ticker, days=days, as_of=as_of, page_size=page_size)
        pages = self.aiter_plans(ticker=symbol, date_from=first, date_to=last, page_size=page_size)
        return newest_first([plan async for plan in pages])

    async def aiter_plans(
        self,
        *,
        coach: str | None = None,
        date: DateLike | None = None,
        date_from: DateLike | None = None,
        date_to: DateLike | None = None,
        author: str | None = None,
        ticker: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[Plan]:
        """Every plan matching the filters, newest first, fetching page after page as needed.

        ``page_size`` (1..200) plans per request; stop iterating to stop fetching.
        """
        self._check_page_size(page_size)
        seen: set[str] = set()
        cursor: str | None = None
        while True:
            page = await self.list_plans(
                coach=coach,
                date=date,
                date_from=date_from,
                date_to=date_to,
                author=author,
                ticker=ticker,
                limit=page_size,
                cursor=cursor,
            )
            for plan in page.items:
                yield plan
            if not page.next_cursor:
                return
            cursor = self._next_cursor(page.next_cursor, seen)

    async def search(
        self,
        query: str,
        *,
        coach: str | None = None,
        date_from: DateLike | None = None,
        date_to: DateLike | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> SearchPage:
        """One page of plans whose text has every word of ``query``, best match first, each with a
        highlighted snippet; pass ``page.next_cursor`` as ``cursor`` for more (``limit`` 1..100)."""
        params = _search_params(
            query, coach=coach, date_from=date_from, date_to=date_to, limit=limit, cursor=cursor
        )
        return await self._get(SEARCH_PATH, params, SearchPage.from_json)

    async def aiter_search(
        self,
        query: str,
        *,
        coach: str | None = None,
        date_from: DateLike | None = None,
        date_to: DateLike | None = None,
        page_size: int = MAX_SEARCH_PAGE_SIZE,
    ) -> AsyncIterator[SearchHit]:
        """Every hit of a search, best first, fetching page after page; stop iterating to stop."""
        self._check_page_size(page_size, MAX_SEARCH_PAGE_SIZE)
        seen: set[str] = set()
        cursor: str | None = None
        while True:
            page = await self.search(
                query, coach=coach, date_from=date_from, date_to=date_to, limit=page_size, cursor=cursor
            )
            for hit in page.items:
                yield hit
            if not page.next_cursor:
                return
            cursor = self._next_cursor(page.next_cursor, seen, SEARCH_PATH)

    async def get_plan_by_id(self, plan_id: int) -> Plan:
        """One plan by id; NotFoundError for unknown or deleted plans."""
        return await self._get(f"/api/v1/plans/{plan_id}", None, Plan.from_json)

    async def get_revisions(self, plan_id: int) -> list[Revision]:
        """A plan's revisions, oldest first."""
        return await self._get(f"/api/v1/plans/{plan_id}/revisions", None, _revisions)

    async def list_coaches(self) -> list[Coach]:
        """The coach roster."""
        return await self._get("/api/v1/coaches", None, _coaches)

    async def health(self) -> Health:
        """The service's health; an unhealthy service (503) is reported, not raised."""
        return await self._get("/health", None, Health.from_json, use_cache=False, accept={200, 503})

    async def events(
        self, *, last_event_id: int | None = None, max_reconnects: int | None = None
    ) -> AsyncGenerator[PlanEvent, None]:
        """Plan changes as they happen; resumes after lost connections (see the sync client).

        ``aclose()`` it (or ``contextlib.aclosing``) to end the subscription at once.
        """
        subscription = Subscription(self, last_event_id=last_event_id, max_reconnects=max_reconnects)
        while True:
            if self._http.is_closed:
                raise self._closed(subscription.url)
            if self.mock_mode:
                return  # nothing changes in mock mode: the subscription ends at once
            try:
                async with aconnect_sse(
                    self._http,
                    "GET",
                    subscription.url,
                    headers={**self._headers, **subscription.headers()},
                    timeout=EVENTS_TIMEOUT,
                ) as source:
                    content = b""
                    if source.response.status_code != 200:
                        content = await aread_body(source.response, limit=self.max_response_bytes)
                    wait = subscription.opened(source.response, content)
                    if wait is None:
                        async for sse in source.aiter_sse():
                            event = subscription.received(sse)
                            if event is not None:
                                yield event
                        wait = subscription.lost(None)
            except SSEError as exc:
                raise subscription.not_a_stream(exc) from exc
            except httpx.UnsupportedProtocol as exc:  # a wrong URL does not heal by waiting
                raise self._translate(exc, method="GET", url=subscription.url) from exc
            except httpx.TransportError as exc:
                wait = subscription.lost(exc)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise self._translate(exc, method="GET", url=subscription.url) from exc
            await self._sleep(wait)
