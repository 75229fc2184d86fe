"""`GET /`: the day's plans per coach, with charts, levels and history, as one server-rendered page;
`GET /search`: full-text search over every plan, with the matched words highlighted."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jinja2
from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from coach_plans_api.routes.deps import StateDep
from coach_plans_api.schemas import (
    MAX_QUERY_CHARS,
    CoachOut,
    LegacyPlanOut,
    LevelOut,
    RevisionOut,
    SearchHitOut,
    TickerLevelsOut,
)
from coach_plans_api.service import DayPlan

router = APIRouter(include_in_schema=False)

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)
_page = _env.get_template("dashboard.html")
_search_page = _env.get_template("search.html")
CSS = (TEMPLATES / "dashboard.css").read_text(encoding="utf-8")
# Only this exact stylesheet may run: no external assets, no injected styles or scripts.
_CSS_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
CSP = (
    "default-src 'none'; "
    f"style-src 'sha256-{_CSS_HASH}'; "
    "img-src 'self' http: https: data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {"Cache-Control": "no-cache", "Content-Security-Policy": CSP}
ACTIONS = {"create": "posted", "edit": "edited", "delete": "deleted"}

DateParam = Annotated[str | None, Query(description="YYYY-MM-DD; default: today in PLAN_TIMEZONE")]
SEARCH_PAGE_SIZE = 20
# How a chip names each kind of level: "T 968/985", "SL 938", "S 515".
_LABELS = {"target": "T", "stop": "SL", "support": "S", "resistance": "R", "pivot": "P"}


@dataclass(frozen=True, slots=True)
class CoachPlan:
    """One card: a coach of the roster and their plan that day, if any."""

    coach: str
    name: str
    plan: LegacyPlanOut | None
    revisions: Sequence[RevisionOut] = ()
    levels: Sequence[Chip] = ()


@dataclass(frozen=True, slots=True)
class Chip:
    """One ticker's levels as a card shows them: "NVDA long · above 950 · T 968/985 · SL 938"."""

    ticker: str
    bias: str
    text: str


@dataclass(frozen=True, slots=True)
class DashboardView:
    day: dt.date
    today: dt.date
    zone: ZoneInfo
    cards: Sequence[CoachPlan]


@router.get("/", response_class=HTMLResponse, operation_id="dashboard")
def dashboard(state: StateDep, date: DateParam = None) -> HTMLResponse:
    """The chosen day's plans per coach (a plain `def`: FastAPI runs it in the thread pool)."""
    service = state.service
    day = service.day(date)
    plans = service.plans_with_history(day)  # one database session for the whole page
    view = DashboardView(
        day=day,
        today=service.today(),
        zone=state.settings.zone,
        cards=cards(roster=service.coaches(), plans=plans),
    )
    return HTMLResponse(render_page(view), headers=HEADERS)


def cards(*, roster: Iterable[CoachOut], plans: Mapping[str, DayPlan]) -> list[CoachPlan]:
    """Every coach of the roster in order, then any plan by a coach no longer on it."""
    names = {c.coach: c.name for c in roster}
    coaches = [*names, *sorted(set(plans) - set(names))]
    return [
        CoachPlan(
            coach=coach,
            name=names.get(coach, coach),
            plan=plans[coach].plan if coach in plans else None,
            revisions=plans[coach].revisions if coach in plans else (),
            levels=[chip(t) for t in plans[coach].levels] if coach in plans else (),
        )
        for coach in coaches
    ]


def price(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def level_text(level: LevelOut) -> str:
    """A level's value (a zone as "950-955"; a strike with its side, "950C")."""
    text = price(level.value) + (f"-{price(level.high)}" if level.high is not None else "")
    if level.condition in ("call", "put"):
        return text + level.condition[0].upper()
    return text


def chip(levels: TickerLevelsOut) -> Chip:
    """Entries with their trigger, then each other kind with its label, values joined by "/"."""
    parts = [levels.ticker if levels.bias == "neutral" else f"{levels.ticker} {levels.bias}"]
    for level in levels.levels:
        if level.kind == "entry":
            trigger = level.condition if level.condition not in (None, "at") else "entry"
            parts.append(f"{trigger} {level_text(level)}")
    for kind, label in (*_LABELS.items(), ("strike", "")):
        values = [level_text(level) for level in levels.levels if level.kind == kind]
        if values:
            parts.append(f"{label} {'/'.join(values)}".strip())
    return Chip(ticker=levels.ticker, bias=levels.bias, text=" · ".join(parts))


def render_page(view: DashboardView) -> str:
    posted = sum(1 for c in view.cards if c.plan is not None)
    long_day = f"{view.day:%A} {view.day.day} {view.day:%B %Y}"
    if posted:
        summary = f"{posted} of {len(view.cards)} coaches posted a plan."
    else:
        summary = f"No plans posted for {long_day}."

    def local_time(moment: dt.datetime) -> str:
        """In the plan time zone; the date is shown only when it is not the page's day."""
        try:
            local = moment.astimezone(view.zone)
        except OverflowError:  # 9999-12-31 23:00 UTC is past the calendar east of Greenwich
            local = moment
        if local.date() == view.day:
            return f"{local:%H:%M %Z}"
        return f"{local:%b} {local.day}, {local:%H:%M %Z}"

    return _page.render(
        day=view.day,
        today=view.today,
        zone=view.zone.key,
        label="Today" if view.day == view.today else long_day,
        long_day=long_day,
        summary=summary,
        before=shift(view.day, -1),
        after=shift(view.day, 1),
        cards=view.cards,
        actions=ACTIONS,
        local_time=local_time,
    )


@dataclass(frozen=True, slots=True)
class Hit:
    """A search result as the page shows it: the snippet cut into plain and matched parts."""

    coach: str
    name: str
    date: dt.date
    parts: Sequence[tuple[str, bool]]


@router.get("/search", response_class=HTMLResponse, operation_id="dashboard_search")
def search_page(
    state: StateDep,
    q: Annotated[str, Query(max_length=MAX_QUERY_CHARS)] = "",
    coach: Annotated[str, Query(max_length=40)] = "",
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    """Plans whose text matches `q`, best first, a page at a time (a plain `def`: the thread pool)."""
    service = state.service
    coach_name = service.coach(coach) if coach else None
    roster = service.coaches()
    names = {c.coach: c.name for c in roster}
    hits: list[Hit] = []
    more = None
    if q.strip():
        found = service.search(query=q, coach=coach_name, cursor=cursor, limit=SEARCH_PAGE_SIZE)
        hits = [hit_view(h, names) for h in found.items]
        if found.next_cursor:
            more = urlencode({"q": q, "coach": coach, "cursor": found.next_cursor})
    html = _search_page.render(
        query=q, coach=coach_name, roster=roster, hits=hits, more=more, paged=bool(cursor)
    )
    return HTMLResponse(html, headers=HEADERS)


def hit_view(hit: SearchHitOut, names: Mapping[str, str]) -> Hit:
    return Hit(
        coach=hit.plan.coach,
        name=names.get(hit.plan.coach, hit.plan.coach),
        date=hit.plan.date,
        parts=highlighted(hit.snippet, hit.highlights),
    )


def highlighted(text: str, ranges: Iterable[tuple[int, int]]) -> list[tuple[str, bool]]:
    """`text` cut into (part, matched) pairs; the page wraps matched parts in <mark>, and
    autoescape keeps every part plain text. Ranges that overlap or fall outside are ignored."""
    parts: list[tuple[str, bool]] = []
    at = 0
    for start, end in sorted(ranges):
        if start < at or end > len(text) or start >= end:
            continue
        parts += [(text[at:start], False), (text[start:end], True)]
        at = end
    parts.append((text[at:], False))
    return [(part, matched) for part, matched in parts if part]


def shift(day: dt.date, days: int) -> dt.date | None:
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:
        return None
