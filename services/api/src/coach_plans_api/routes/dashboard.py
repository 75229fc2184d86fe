"""`GET /`: the day's plans per coach, with charts and history, as one server-rendered page."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import jinja2
from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from coach_plans_api.routes.deps import StateDep
from coach_plans_api.schemas import CoachOut, LegacyPlanOut, RevisionOut

router = APIRouter(include_in_schema=False)

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)
_page = _env.get_template("dashboard.html")
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


@dataclass(frozen=True, slots=True)
class CoachPlan:
    """One card: a coach of the roster and their plan that day, if any."""

    coach: str
    name: str
    plan: LegacyPlanOut | None
    revisions: Sequence[RevisionOut] = ()


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


def cards(
    *,
    roster: Iterable[CoachOut],
    plans: Mapping[str, tuple[LegacyPlanOut, Sequence[RevisionOut]]],
) -> list[CoachPlan]:
    """Every coach of the roster in order, then any plan by a coach no longer on it."""
    names = {c.coach: c.name for c in roster}
    coaches = [*names, *sorted(set(plans) - set(names))]
    return [
        CoachPlan(
            coach=coach,
            name=names.get(coach, coach),
            plan=plans[coach][0] if coach in plans else None,
            revisions=plans[coach][1] if coach in plans else (),
        )
        for coach in coaches
    ]


def render_page(view: DashboardView) -> str:
    posted = sum(1 for c in view.cards if c.plan is not None)
    long_day = f"{view.day:%A} {view.day.day} {view.day:%B %Y}"
    if posted:
        summary = f"{posted} of {len(view.cards)} coaches posted a plan."
    else:
        summary = f"No plans posted for {long_day}."

    def local_time(moment: dt.datetime) -> str:
        """In the plan time zone; the date is shown only when it is not the page's day."""
        local = moment.astimezone(view.zone)
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


def shift(day: dt.date, days: int) -> dt.date | None:
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:
        return None
