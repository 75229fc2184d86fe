"""Mock mode: predefined plans for every coach and any date, served without any network.

Every read route of the API is answered from the same plans: the legacy ones, ``/api/v1/plans``
(filters and cursor paging), a plan by id and its revisions, and ``/api/v1/search``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zlib
from collections.abc import Iterator
from typing import Any

import httpx

from ._base import DEFAULT_PLAN_TIMEZONE, as_date, plan_zone

__all__ = ["DEFAULT_COACHES", "MOCK_BASE_URL", "MOCK_WINDOW_DAYS", "mock_plan", "mock_transport"]

MOCK_BASE_URL = "http://mock.coach-plans.invalid"
DEFAULT_COACHES = ("coach_d", "coach_i", "coach_s", "coach_n")
# A list or search without a first day covers this many days, up to its last day (default today).
MOCK_WINDOW_DAYS = 30
SEARCH_RANKED = 500  # like the API: the newest matches are ranked, narrow the dates for older ones
# Plans of names off the roster (served by the legacy routes) get ids above every roster plan's.
_OFF_ROSTER_IDS = 20_000_000

_TEMPLATES: dict[str, tuple[str, str]] = {
    "coach_d": (
        "Coach D",
        "Technical plan for {date}: NVDA long above 950 with a stop at 935, first target 975. "
        "SPY holding the 20-day moving average; fade moves into 520 resistance.",
    ),
    "coach_i": (
        "Coach I",
        "Fundamental plan for {date}: NVDA data-centre revenue still growing faster than "
        "guidance; accumulate on pullbacks, valuation fair at 35x forward earnings.",
    ),
    "coach_s": (
        "Coach S",
        "Sentiment plan for {date}: retail call volume in NVDA at a 3-month high and put/call "
        "ratio 0.6; crowded long, size down and wait for a flush before adding.",
    ),
    "coach_n": (
        "Coach N",
        "Macro plan for {date}: CPI at 8:30 ET, 10-year yield near 4.3%; risk-on only if "
        "yields fall after the print, otherwise stay hedged with QQQ puts.",
    ),
}
_TICKERS = {"coach_d": ["NVDA", "SPY"], "coach_i": ["NVDA"], "coach_s": ["NVDA"], "coach_n": ["QQQ"]}
# (kind, condition, value, phrase of the text it is read from), per coach: NVDA in coach_d's plan.
_LEVELS = {
    "coach_d": [
        ("entry", "above", 950.0, "long above 950"),
        ("stop", None, 935.0, "stop at 935"),
        ("target", None, 975.0, "target 975"),
    ]
}


def _normalise(coach: str) -> str:
    coach = coach.strip().lower()
    return coach if coach.startswith("coach_") else f"coach_{coach}"


def _plan_id(coach: str, date: str) -> int:
    """Roster plans are numbered by day then coach, so newest first is highest id first."""
    try:
        day = as_date(date)
    except ValueError:
        day = None
    if coach not in DEFAULT_COACHES or day is None:
        return _OFF_ROSTER_IDS + zlib.crc32(f"{coach}:{date}".encode()) % 1_000_000
    return day.toordinal() * len(DEFAULT_COACHES) + DEFAULT_COACHES.index(coach) + 1


def _of_id(plan_id: int) -> tuple[str, dt.date] | None:
    """(coach, day) of a roster plan id, None for any other number."""
    ordinal, index = divmod(plan_id - 1, len(DEFAULT_COACHES))
    if not 1 <= ordinal <= dt.date.max.toordinal():
        return None
    return DEFAULT_COACHES[index], dt.date.fromordinal(ordinal)


def mock_plan(coach: str, date: str) -> dict[str, Any]:
    """A realistic legacy-shaped plan for ``coach`` on ``date`` (same input, same plan)."""
    coach = _normalise(coach)
    name, template = _TEMPLATES.get(coach, (coach.replace("_", " ").title(), _TEMPLATES["coach_d"][1]))
    return {
        "plan": f"[MOCK] {template.format(date=date)}",
        "charts": [f"{MOCK_BASE_URL}/charts/{coach}/{date}/{n}.png" for n in (1, 2)],
        "author": name,
        "timestamp": f"{date}T13:30:00+00:00",
        "id": _plan_id(coach, date),
        "coach": coach,
        "date": date,
        "edited": False,
        "edited_at": None,
        "channel": "mock-plans",
        "tickers": list(_TICKERS.get(coach, _TICKERS["coach_d"])),
    }


def _v1_plan(coach: str, day: dt.date) -> dict[str, Any]:
    """The plan of ``mock_plan`` in the shape of ``/api/v1/plans``."""
    legacy = mock_plan(coach, day.isoformat())
    text: str = legacy["plan"]
    levels = [
        {
            "kind": kind,
            "condition": condition,
            "value": value,
            "high": None,
            "span": [start, start + len(phrase)],
        }
        for kind, condition, value, phrase in _LEVELS.get(coach, [])
        for start in [text.index(phrase)]
    ]
    return {
        "id": legacy["id"],
        "coach": coach,
        "coach_display_name": legacy["author"],
        "date": legacy["date"],
        "plan": text,
        "charts": [
            {
                "url": url,
                "order": n,
                "filename": f"{n + 1}.png",
                "content_type": "image/png",
                "size_bytes": None,
            }
            for n, url in enumerate(legacy["charts"])
        ],
        "author": legacy["author"],
        "author_id": str(100_000_000_000_000_000 + DEFAULT_COACHES.index(coach)),
        "channel": legacy["channel"],
        "channel_id": "100000000000000100",
        "source_message_id": str(legacy["id"]),
        "created_at": legacy["timestamp"],
        "edited_at": None,
        "edited": False,
        "deleted_at": None,
        "tickers": legacy["tickers"],
        "levels": [{"ticker": "NVDA", "bias": "long", "levels": levels}] if levels else [],
    }


class _BadRequest(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )


def _today() -> dt.date:
    return dt.datetime.now(plan_zone(DEFAULT_PLAN_TIMEZONE)).date()


def _day(value: str) -> dt.date:
    try:
        return as_date(value)
    except ValueError as exc:
        raise _BadRequest(400, "invalid_date", str(exc)) from None


def _coach(value: str | None) -> tuple[str, ...]:
    """The coaches a ``coach`` parameter selects: one, or the roster when absent."""
    if not value:
        return DEFAULT_COACHES
    coach = _normalise(value)
    if coach not in DEFAULT_COACHES:
        raise _BadRequest(400, "unknown_coach", f"unknown coach {value!r}")
    return (coach,)


def _number(params: httpx.QueryParams, name: str, default: int, upper: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= upper:
        raise _BadRequest(422, "validation_error", f"{name} must be 1..{upper}, got {value!r}")
    return int(value)


def _window(first: str | None, last: str | None) -> tuple[dt.date, dt.date]:
    """The days a list or search covers: ``MOCK_WINDOW_DAYS`` up to ``last`` unless ``first`` is given."""
    end = _day(last) if last else _today()
    if first:
        return _day(first), end
    return dt.date.fromordinal(max(1, end.toordinal() - MOCK_WINDOW_DAYS + 1)), end


def _newest_first(
    first: dt.date, last: dt.date, coaches: tuple[str, ...], below: int | None
) -> Iterator[dict[str, Any]]:
    """The plans of the window, highest id (newest) first, only those below ``below`` if given."""
    top = last.toordinal() if below is None else min(last.toordinal(), (below - 1) // len(DEFAULT_COACHES))
    for ordinal in range(top, first.toordinal() - 1, -1):
        day = dt.date.fromordinal(ordinal)
        for coach in reversed(coaches):
            if below is None or _plan_id(coach, day.isoformat()) < below:
                yield _v1_plan(coach, day)


def _cursor(params: httpx.QueryParams) -> int | None:
    cursor = params.get("cursor")
    if cursor is None:
        return None
    if not cursor.isdigit():
        raise _BadRequest(400, "invalid_cursor", f"not a cursor of this server: {cursor!r}")
    return int(cursor)


def _plans(params: httpx.QueryParams) -> dict[str, Any]:
    first, last = _window(params.get("date") or params.get("from"), params.get("date") or params.get("to"))
    author, ticker = params.get("author"), params.get("ticker")
    symbol = ticker.lstrip("$").upper() if ticker else None
    limit = _number(params, "limit", 50, 200)
    page: list[dict[str, Any]] = []
    for plan in _newest_first(first, last, _coach(params.get("coach")), _cursor(params)):
        if (author is None or plan["author"].lower() == author.lower()) and (
            symbol is None or symbol in plan["tickers"]
        ):
            page.append(plan)
            if len(page) > limit:  # one more than a page: there is a next one
                return {"items": page[:limit], "next_cursor": str(page[limit - 1]["id"])}
    return {"items": page, "next_cursor": None}


def _hit(plan: dict[str, Any], words: list[str]) -> dict[str, Any] | None:
    """A search hit when every word is in the plan's text (any case), else None."""
    text = plan["plan"]
    lowered = text.lower()
    spans = [(m.start(), m.end()) for word in words for m in re.finditer(re.escape(word), lowered)]
    if not words or any(word not in lowered for word in words):
        return None
    return {"plan": plan, "snippet": text, "highlights": sorted(spans), "score": float(len(spans))}


def _search(params: httpx.QueryParams) -> dict[str, Any]:
    query = params.get("q") or ""
    if not 1 <= len(query) <= 200:
        raise _BadRequest(422, "validation_error", "q must be 1..200 characters")
    first, last = _window(params.get("date_from"), params.get("date_to"))
    limit = _number(params, "limit", 20, 100)
    offset = _cursor(params) or 0
    words = re.findall(r"\w+", query.lower())
    hits: list[dict[str, Any]] = []
    for plan in _newest_first(first, last, _coach(params.get("coach")), None):
        hit = _hit(plan, words)
        if hit is not None:
            hits.append(hit)
            if len(hits) == SEARCH_RANKED:
                break
    hits.sort(key=lambda hit: (hit["score"], hit["plan"]["id"]), reverse=True)
    more = len(hits) > offset + limit
    return {"items": hits[offset : offset + limit], "next_cursor": str(offset + limit) if more else None}


def _history(params: httpx.QueryParams) -> dict[str, Any]:
    if not params.get("coach"):
        raise _BadRequest(422, "validation_error", "coach is required")
    (coach,) = _coach(params.get("coach"))
    days = _number(params, "days", 7, 365)
    last = _today()
    first = dt.date.fromordinal(max(1, last.toordinal() - days + 1))
    # The history's plans have every field but levels.
    plans = [
        {k: v for k, v in plan.items() if k != "levels"}
        for plan in _newest_first(first, last, (coach,), None)
    ]
    return {"coach": coach, "days": days, "plans": plans}


def _one_plan(path: str) -> httpx.Response:
    """``/api/v1/plans/{id}`` and ``/api/v1/plans/{id}/revisions``."""
    number, _, rest = path.removeprefix("/api/v1/plans/").partition("/")
    found = _of_id(int(number)) if number.isdigit() and rest in ("", "revisions") else None
    if found is None:
        return _json(404, {"error": "not_found", "detail": f"no plan with id {number}"})
    plan = _v1_plan(*found)
    if not rest:
        return _json(200, plan)
    revision = {
        "id": plan["id"],
        "plan_id": plan["id"],
        "action": "create",
        "plan_text": plan["plan"],
        "charts": plan["charts"],
        "editor": plan["author"],
        "editor_id": plan["author_id"],
        "message_id": plan["source_message_id"],
        "created_at": plan["created_at"],
    }
    return _json(200, {"plan_id": plan["id"], "revisions": [revision]})


def _health() -> dict[str, Any]:
    return {
        "status": "healthy",
        "bot_connected": True,
        "database_connected": True,
        "plans_count": len(DEFAULT_COACHES),
        "uptime_seconds": 0.0,
        "version": "mock",
    }


def _handle(request: httpx.Request) -> httpx.Response:
    params = request.url.params
    path = request.url.path.rstrip("/")
    date = params.get("date") or _today().isoformat()
    try:
        if path == "/api/coach-plans":
            coach = params.get("coach")
            if not coach:
                return _json(400, {"error": "unknown_coach", "detail": "coach is required"})
            return _json(200, mock_plan(coach, date))
        if path == "/api/coach-plans/all":
            return _json(200, {coach: mock_plan(coach, date) for coach in DEFAULT_COACHES})
        if path == "/api/coach-plans/history":
            return _json(200, _history(params))
        if path == "/api/v1/plans":
            return _json(200, _plans(params))
        if path.startswith("/api/v1/plans/"):
            return _one_plan(path)
        if path == "/api/v1/search":
            return _json(200, _search(params))
        if path == "/health":
            return _json(200, _health())
        if path == "/api/v1/coaches":
            roster = [{"coach": c, "key": c[-1], "name": _TEMPLATES[c][0]} for c in DEFAULT_COACHES]
            return _json(200, {"coaches": roster})
    except _BadRequest as exc:
        return _json(exc.status, {"error": exc.error, "detail": exc.detail})
    return _json(404, {"error": "route_not_found", "detail": f"mock mode does not serve {path}"})


def mock_transport() -> httpx.MockTransport:
    """An httpx transport that answers the API's read routes with the predefined plans."""
    return httpx.MockTransport(_handle)
