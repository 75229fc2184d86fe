"""Typed models of the API's responses (plain frozen dataclasses: no dependency beyond httpx)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Chart",
    "Coach",
    "CoachPlan",
    "Health",
    "Level",
    "Plan",
    "PlanPage",
    "Revision",
    "SearchHit",
    "SearchPage",
    "TickerLevels",
]


class ModelError(ValueError):
    """A response body does not have the shape of the model."""


def _mapping(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ModelError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def _required(data: Mapping[str, Any], key: str) -> Any:
    """The value of a key the contract requires: absent is an error, never a default."""
    if key not in data:
        raise ModelError(f"{key!r}: missing")
    return data[key]


def _str(data: Mapping[str, Any], key: str) -> str:
    value = _required(data, key)
    if not isinstance(value, str):
        raise ModelError(f"{key!r}: expected a string, got {value!r}")
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    # Discord snowflakes may arrive as numbers from older servers.
    if isinstance(value, int | str) and not isinstance(value, bool):
        return str(value)
    raise ModelError(f"{key!r}: expected a string, got {value!r}")


def _int(data: Mapping[str, Any], key: str) -> int:
    value = _required(data, key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ModelError(f"{key!r}: expected an integer, got {value!r}")
    return value


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    return None if data.get(key) is None else _int(data, key)


def _opt_float(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ModelError(f"{key!r}: expected a number, got {value!r}")
    return float(value)


def _float(data: Mapping[str, Any], key: str) -> float:
    value = _opt_float(data, key)
    if value is None:
        raise ModelError(f"{key!r}: missing")
    return value


def _span(value: Any, key: str) -> tuple[int, int]:
    """A ``[start, end)`` pair of character offsets."""
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in value)
    ):
        raise ModelError(f"{key!r}: expected [start, end], got {value!r}")
    return int(value[0]), int(value[1])


def _bool(data: Mapping[str, Any], key: str) -> bool:
    value = _required(data, key)
    if not isinstance(value, bool):
        raise ModelError(f"{key!r}: expected a boolean, got {value!r}")
    return value


_FRACTION = re.compile(r"\.(\d+)")


def parse_timestamp(value: str) -> dt.datetime:
    """An ISO-8601 timestamp as servers write it (``Z`` suffix, any number of fraction digits).

    Python 3.10's ``fromisoformat`` reads only what ``isoformat()`` writes, so the ``Z`` that
    pydantic writes and fractions other than 3 or 6 digits are normalised first.
    """
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    text = _FRACTION.sub(lambda match: "." + match.group(1).ljust(6, "0")[:6], text, count=1)
    return dt.datetime.fromisoformat(text)


def _opt_datetime(data: Mapping[str, Any], key: str) -> dt.datetime | None:
    value = _opt_str(data, key)
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        raise ModelError(f"{key!r}: not an ISO-8601 timestamp: {value!r}") from None


def _opt_date(data: Mapping[str, Any], key: str) -> dt.date | None:
    value = _opt_str(data, key)
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ModelError(f"{key!r}: not an ISO date: {value!r}") from None


def _date(data: Mapping[str, Any], key: str) -> dt.date:
    value = _opt_date(data, key)
    if value is None:
        raise ModelError(f"{key!r}: missing")
    return value


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = _required(data, key)
    if not isinstance(value, list):
        raise ModelError(f"{key!r}: expected a list, got {value!r}")
    return value


def _next_cursor(data: Mapping[str, Any]) -> str | None:
    """A page's cursor: null on the last page, never absent (that would end the paging unseen)."""
    _required(data, "next_cursor")
    return _opt_str(data, "next_cursor")


def _str_tuple(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """A list of strings; absent or null (older servers) is empty."""
    values = _list(data, key) if data.get(key) is not None else []
    if not all(isinstance(value, str) for value in values):
        raise ModelError(f"{key!r}: expected a list of strings, got {values!r}")
    return tuple(values)


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart image attached to a plan, in the order it was posted."""

    url: str
    order: int = 0
    filename: str | None = None
    content_type: str | None = None
    size_bytes: int | None = None

    @classmethod
    def from_json(cls, data: Any) -> Chart:
        obj = _mapping(data, "chart")
        return cls(
            url=_str(obj, "url"),
            order=_int(obj, "order"),
            filename=_opt_str(obj, "filename"),
            content_type=_opt_str(obj, "content_type"),
            size_bytes=_opt_int(obj, "size_bytes"),
        )


LevelKind = Literal["entry", "target", "stop", "support", "resistance", "pivot", "strike"]


@dataclass(frozen=True, slots=True)
class Level:
    """A price level read from a plan's text: ``plan.plan[start:end]`` (``span``) is the phrase.

    ``kind`` is ``entry`` (entries and triggers), ``target``, ``stop``, ``support``,
    ``resistance``, ``pivot`` or ``strike``; ``condition`` says how an entry triggers
    (``above``, ``below``, ``reclaim``, ``break``, ``at``), a stop's side, or a strike's
    ``call``/``put``; ``high`` is the top of a zone ("950-955").
    """

    kind: str
    value: float
    high: float | None = None
    condition: str | None = None
    span: tuple[int, int] = (0, 0)

    @classmethod
    def from_json(cls, data: Any) -> Level:
        obj = _mapping(data, "level")
        return cls(
            kind=_str(obj, "kind"),
            value=_float(obj, "value"),
            high=_opt_float(obj, "high"),
            condition=_opt_str(obj, "condition"),
            span=_span(obj.get("span"), "span"),
        )


@dataclass(frozen=True, slots=True)
class TickerLevels:
    """One ticker's bias (``long``, ``short`` or ``neutral``) and its levels in text order."""

    ticker: str
    bias: str
    levels: tuple[Level, ...] = ()

    def of_kind(self, kind: LevelKind) -> tuple[Level, ...]:
        return tuple(level for level in self.levels if level.kind == kind)

    @property
    def entries(self) -> tuple[Level, ...]:
        return self.of_kind("entry")

    @property
    def targets(self) -> tuple[Level, ...]:
        return self.of_kind("target")

    @property
    def stops(self) -> tuple[Level, ...]:
        return self.of_kind("stop")

    @classmethod
    def from_json(cls, data: Any) -> TickerLevels:
        obj = _mapping(data, "ticker levels")
        return cls(
            ticker=_str(obj, "ticker"),
            bias=_str(obj, "bias"),
            levels=tuple(Level.from_json(level) for level in _list(obj, "levels")),
        )


@dataclass(frozen=True, slots=True)
class CoachPlan:
    """A plan in the legacy shape served by ``/api/coach-plans/`` (charts are plain URLs)."""

    plan: str
    charts: tuple[str, ...]
    author: str | None = None
    timestamp: dt.datetime | None = None
    id: int | None = None
    coach: str | None = None
    date: dt.date | None = None
    edited: bool = False
    edited_at: dt.datetime | None = None
    channel: str | None = None
    tickers: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any) -> CoachPlan:
        obj = _mapping(data, "plan")
        charts: list[str] = []
        for chart in _list(obj, "charts"):
            charts.append(chart if isinstance(chart, str) else _str(_mapping(chart, "chart"), "url"))
        return cls(
            plan=_str(obj, "plan"),
            charts=tuple(charts),
            author=_opt_str(obj, "author"),
            timestamp=_opt_datetime(obj, "timestamp"),
            id=_opt_int(obj, "id"),
            coach=_opt_str(obj, "coach"),
            date=_opt_date(obj, "date"),
            edited=_bool(obj, "edited") if "edited" in obj else False,  # additive, as all after timestamp
            edited_at=_opt_datetime(obj, "edited_at"),
            channel=_opt_str(obj, "channel"),
            tickers=_str_tuple(obj, "tickers"),
            raw=dict(obj),
        )

    def to_legacy_dict(self) -> dict[str, Any]:
        """The JSON object as the server sent it, charts as URLs (what the old client returned)."""
        result: dict[str, Any] = dict(self.raw) if self.raw else {"plan": self.plan}
        result["charts"] = list(self.charts)
        return result


@dataclass(frozen=True, slots=True)
class Plan:
    """A plan as served by the versioned API (``/api/v1/plans``)."""

    id: int
    coach: str
    date: dt.date
    plan: str
    charts: tuple[Chart, ...] = ()
    coach_display_name: str | None = None
    author: str | None = None
    author_id: str | None = None
    channel: str | None = None
    channel_id: str | None = None
    source_message_id: str | None = None
    created_at: dt.datetime | None = None
    edited_at: dt.datetime | None = None
    edited: bool = False
    deleted_at: dt.datetime | None = None
    tickers: tuple[str, ...] = ()
    """Symbols the API tagged in the plan text (``("NVDA", "AMD")``); empty from older servers."""
    levels: tuple[TickerLevels, ...] = ()
    """Per ticker, the bias and price levels the API read from the text; empty from older servers."""

    def levels_of(self, ticker: str) -> TickerLevels | None:
        """The levels of one ticker (``NVDA`` or ``$nvda``), or None if the plan gives none."""
        symbol = ticker.strip().lstrip("$").upper()
        return next((t for t in self.levels if t.ticker == symbol), None)

    @classmethod
    def from_json(cls, data: Any) -> Plan:
        obj = _mapping(data, "plan")
        return cls(
            id=_int(obj, "id"),
            coach=_str(obj, "coach"),
            date=_date(obj, "date"),
            plan=_str(obj, "plan"),
            charts=tuple(Chart.from_json(chart) for chart in _list(obj, "charts")),
            coach_display_name=_opt_str(obj, "coach_display_name"),
            author=_opt_str(obj, "author"),
            author_id=_opt_str(obj, "author_id"),
            channel=_opt_str(obj, "channel"),
            channel_id=_opt_str(obj, "channel_id"),
            source_message_id=_opt_str(obj, "source_message_id"),
            created_at=_opt_datetime(obj, "created_at"),
            edited_at=_opt_datetime(obj, "edited_at"),
            edited=_bool(obj, "edited"),
            deleted_at=_opt_datetime(obj, "deleted_at"),
            tickers=_str_tuple(obj, "tickers"),
            levels=tuple(
                TickerLevels.from_json(t)
                for t in (_list(obj, "levels") if obj.get("levels") is not None else ())
            ),
        )


@dataclass(frozen=True, slots=True)
class PlanPage:
    """One page of ``/api/v1/plans``; pass ``next_cursor`` back to get the next one."""

    items: tuple[Plan, ...]
    next_cursor: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> PlanPage:
        obj = _mapping(data, "page")
        return cls(
            items=tuple(Plan.from_json(item) for item in _list(obj, "items")),
            next_cursor=_next_cursor(obj),
        )


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A plan whose text matched a search, best first.

    ``snippet`` is plain text cut from the plan around the matches; each ``(start, end)`` of
    ``highlights`` marks a matched word in it (``snippet[start:end]``). ``score`` orders the hits
    of one search (higher is better).
    """

    plan: Plan
    snippet: str
    highlights: tuple[tuple[int, int], ...] = ()
    score: float = 0.0

    @classmethod
    def from_json(cls, data: Any) -> SearchHit:
        obj = _mapping(data, "search hit")
        return cls(
            plan=Plan.from_json(obj.get("plan")),
            snippet=_str(obj, "snippet"),
            highlights=tuple(_span(pair, "highlights") for pair in _list(obj, "highlights")),
            score=_float(obj, "score"),
        )


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of ``/api/v1/search``; pass ``next_cursor`` back to get the next one."""

    items: tuple[SearchHit, ...]
    next_cursor: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> SearchPage:
        obj = _mapping(data, "search page")
        return cls(
            items=tuple(SearchHit.from_json(item) for item in _list(obj, "items")),
            next_cursor=_next_cursor(obj),
        )


@dataclass(frozen=True, slots=True)
class Revision:
    """One entry of a plan's history (create, edit or delete)."""

    id: int
    plan_id: int
    action: Literal["create", "edit", "delete"]
    plan_text: str | None = None
    charts: tuple[Chart, ...] = ()
    editor: str | None = None
    editor_id: str | None = None
    message_id: str | None = None
    created_at: dt.datetime | None = None

    @classmethod
    def from_json(cls, data: Any) -> Revision:
        obj = _mapping(data, "revision")
        action = _str(obj, "action")
        if action not in ("create", "edit", "delete"):
            raise ModelError(f"'action': unknown revision action {action!r}")
        return cls(
            id=_int(obj, "id"),
            plan_id=_int(obj, "plan_id"),
            action=action,  # type: ignore[arg-type]  # checked just above
            plan_text=_opt_str(obj, "plan_text"),
            charts=tuple(
                Chart.from_json(chart) if not isinstance(chart, str) else Chart(url=chart)
                for chart in _list(obj, "charts")
            ),
            editor=_opt_str(obj, "editor"),
            editor_id=_opt_str(obj, "editor_id"),
            message_id=_opt_str(obj, "message_id"),
            created_at=_opt_datetime(obj, "created_at"),
        )


@dataclass(frozen=True, slots=True)
class Coach:
    """A coach of the roster: ``coach`` is the normalised name (``coach_d``), ``key`` is ``d``."""

    coach: str
    key: str
    name: str

    @classmethod
    def from_json(cls, data: Any) -> Coach:
        obj = _mapping(data, "coach")
        return cls(coach=_str(obj, "coach"), key=_str(obj, "key"), name=_str(obj, "name"))


@dataclass(frozen=True, slots=True)
class Health:
    """The answer of ``/health`` (also when the service reports itself unhealthy with 503)."""

    status: str
    bot_connected: bool = False
    database_connected: bool = False
    plans_count: int | None = None
    uptime_seconds: float | None = None
    version: str | None = None

    @property
    def healthy(self) -> bool:
        return self.status in ("healthy", "ok")

    @classmethod
    def from_json(cls, data: Any) -> Health:
        obj = _mapping(data, "health")
        return cls(
            status=_str(obj, "status"),
            bot_connected=_bool(obj, "bot_connected"),
            database_connected=_bool(obj, "database_connected"),
            plans_count=_opt_int(obj, "plans_count"),
            uptime_seconds=_opt_float(obj, "uptime_seconds"),
            version=_opt_str(obj, "version"),
        )


@dataclass(frozen=True, slots=True)
class PlanEvent:
    """A change announced on ``/api/v1/events``; ``id`` is the revision id (increasing)."""

    type: Literal["plan.created", "plan.updated", "plan.deleted"]
    id: int
    plan_id: int
    coach: str
    date: dt.date
    at: dt.datetime | None = None

    @classmethod
    def from_json(cls, data: Any) -> PlanEvent:
        obj = _mapping(data, "event")
        kind = _str(obj, "type")
        if kind not in ("plan.created", "plan.updated", "plan.deleted"):
            raise ModelError(f"'type': unknown event type {kind!r}")
        return cls(
            type=kind,  # type: ignore[arg-type]  # checked just above
            id=_int(obj, "id"),
            plan_id=_int(obj, "plan_id"),
            coach=_str(obj, "coach"),
            date=_date(obj, "date"),
            at=_opt_datetime(obj, "at"),
        )
