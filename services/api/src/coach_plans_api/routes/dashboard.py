"""`GET /`: the day's plans per coach, with charts and history, as one server-rendered page."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from coach_plans_api.errors import NotFound
from coach_plans_api.routes.deps import StateDep
from coach_plans_api.schemas import CoachOut, LegacyPlanOut, RevisionOut
from coach_plans_api.service import PlanService

router = APIRouter(include_in_schema=False)

CSS = """\
:root{color-scheme:light dark;--bg:#f4f5f7;--card:#fff;--ink:#1b1f24;--muted:#5d6671;--line:#dde1e6;
--accent:#2457c5;--tag:#e7eefc;--warn:#8a5a00;--warn-bg:#fff3d6}
@media (prefers-color-scheme:dark){:root{--bg:#101318;--card:#1a1f27;--ink:#e6e9ee;--muted:#9aa4b1;
--line:#2d343e;--accent:#82a8ff;--tag:#22304b;--warn:#ffd27a;--warn-bg:#3a2c0c}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
a{color:var(--accent)}
header,main,footer{max-width:1180px;margin:0 auto;padding:0 16px}
header{padding-top:16px;padding-bottom:8px}
h1{font-size:1.35rem;margin:0}
.day{margin:2px 0 12px;color:var(--muted)}
nav{display:flex;flex-wrap:wrap;gap:8px;align-items:center}
nav form{display:flex;gap:8px;flex:1 1 100%}
nav input{flex:1}
nav a{flex:1;text-align:center}
@media (min-width:700px){nav form,nav a{flex:0 0 auto}}
nav a,nav button,nav input{font:inherit;font-size:16px;min-height:40px;padding:6px 12px;
border:1px solid var(--line);border-radius:8px;background:var(--card);color:var(--ink);text-decoration:none}
nav button{cursor:pointer}
.summary{margin:12px 0 4px;color:var(--muted)}
main{display:grid;grid-template-columns:minmax(0,1fr);gap:16px;align-items:start;padding-bottom:24px}
@media (min-width:700px){main{grid-template-columns:repeat(2,minmax(0,1fr))}}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:14px 16px;min-width:0}
.card h2{font-size:1.15rem;margin:0}
.meta{margin:2px 0 0;color:var(--muted);font-size:.9rem}
.edited{display:inline-block;margin-left:4px;padding:0 8px;border-radius:999px;font-size:.8rem;
font-weight:600;color:var(--warn);background:var(--warn-bg)}
.plan{white-space:pre-wrap;overflow-wrap:anywhere;margin:10px 0}
.tickers{list-style:none;display:flex;flex-wrap:wrap;gap:6px;padding:0;margin:0 0 10px}
.tickers li{padding:0 10px;border-radius:999px;background:var(--tag);font-size:.85rem;font-weight:600}
.charts{display:grid;gap:8px;margin:0 0 10px}
.charts a{display:block}
.charts img{display:block;max-width:100%;height:auto;border:1px solid var(--line);border-radius:8px}
.empty{color:var(--muted);font-style:italic;margin:10px 0 4px}
details{border-top:1px solid var(--line);padding-top:8px}
summary{cursor:pointer;color:var(--muted)}
details ol{margin:8px 0 0;padding-left:20px}
details li{margin-bottom:8px}
details li p{white-space:pre-wrap;overflow-wrap:anywhere;margin:2px 0}
footer{color:var(--muted);font-size:.85rem;padding-bottom:24px}
"""
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


@router.get("/", response_class=HTMLResponse)
def dashboard(state: StateDep, date: DateParam = None) -> HTMLResponse:
    """The chosen day's plans per coach (a plain `def`: FastAPI runs it in the thread pool)."""
    service = state.service
    day = service.day(date)
    view = DashboardView(
        day=day,
        today=service.today(),
        zone=state.settings.zone,
        cards=cards(service.coaches(), service.legacy_all(day), service),
    )
    return HTMLResponse(render_page(view), headers=HEADERS)


def cards(
    roster: Iterable[CoachOut], plans: Mapping[str, LegacyPlanOut], service: PlanService
) -> list[CoachPlan]:
    """Every coach of the roster in order, then any plan by a coach no longer on it."""
    names = {c.coach: c.name for c in roster}
    coaches = [*names, *sorted(set(plans) - set(names))]
    return [
        CoachPlan(
            coach=coach,
            name=names.get(coach, coach),
            plan=plans.get(coach),
            revisions=revisions_of(service, plans[coach].id) if coach in plans else (),
        )
        for coach in coaches
    ]


def revisions_of(service: PlanService, plan_id: int) -> list[RevisionOut]:
    try:
        return service.revisions(plan_id)
    except NotFound:  # removed between the two reads; the card still shows the plan
        return []


# --- rendering ------------------------------------------------------------------------------
def render_page(view: DashboardView) -> str:
    posted = sum(1 for c in view.cards if c.plan is not None)
    long_day = f"{view.day:%A} {view.day.day} {view.day:%B %Y}"
    if posted:
        summary = f"{posted} of {len(view.cards)} coaches posted a plan."
    else:
        summary = f"No plans posted for {long_day}."
    label = "Today" if view.day == view.today else long_day
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Coach Plans · {view.day.isoformat()}</title>
<link rel="icon" href="data:,">
<style>{CSS}</style>
</head>
<body>
<header>
<h1>Coach Plans</h1>
<p class="day">{escape(label)}{f" · {escape(long_day)}" if label != long_day else ""}</p>
{render_nav(view.day, view.today)}
<p class="summary" id="summary">{escape(summary)}</p>
</header>
<main>
{"".join(render_card(card, view) for card in view.cards)}
</main>
<footer>Times in {escape(view.zone.key)}.</footer>
</body>
</html>
"""


def render_nav(day: dt.date, today: dt.date) -> str:
    links = []
    if (before := shift(day, -1)) is not None:
        links.append(f'<a href="?date={before.isoformat()}" rel="prev">← {before:%b} {before.day}</a>')
    if day != today:
        links.append('<a href="?">Today</a>')
    if (after := shift(day, 1)) is not None:
        links.append(f'<a href="?date={after.isoformat()}" rel="next">{after:%b} {after.day} →</a>')
    return (
        '<nav aria-label="Choose a day">'
        '<form method="get">'
        f'<input type="date" name="date" value="{day.isoformat()}" aria-label="Day" required>'
        "<button>Show</button>"
        "</form>"
        f"{''.join(links)}"
        "</nav>"
    )


def render_card(card: CoachPlan, view: DashboardView) -> str:
    heading = f'<h2 id="{escape(card.coach)}">{escape(card.name)}</h2>'
    plan = card.plan
    if plan is None:
        message = "No plan posted yet" if view.day >= view.today else "No plan posted"
        return (
            f'<section class="card" data-coach="{escape(card.coach)}">'
            f'{heading}<p class="empty">{message}</p></section>'
        )
    edited = ""
    if plan.edited_at is not None:
        edited = f' <span class="edited">edited {when(plan.edited_at, view)}</span>'
    # The bot stores Discord's `#name`; other writers may store the bare name.
    channel = f" in #{escape(plan.channel.removeprefix('#'))}" if plan.channel else ""
    meta = f"By {escape(plan.author)}{channel} · {when(plan.timestamp, view)}{edited}"
    return (
        f'<section class="card" data-coach="{escape(card.coach)}" data-plan-id="{plan.id}">'
        f'{heading}<p class="meta">{meta}</p>'
        f'<p class="plan">{escape(plan.plan)}</p>'
        f"{render_tickers(plan.tickers)}"
        f"{render_charts(plan.charts, card.name)}"
        f"{render_history(card.revisions, view)}"
        "</section>"
    )


def render_tickers(tickers: Sequence[str]) -> str:
    if not tickers:
        return ""
    items = "".join(f"<li>{escape(t)}</li>" for t in tickers)
    return f'<ul class="tickers" aria-label="Tickers">{items}</ul>'


def render_charts(urls: Sequence[str], coach_name: str) -> str:
    if not urls:
        return ""
    items = "".join(
        f'<a href="{escape(url)}">'
        f'<img src="{escape(url)}" alt="Chart {n} of {len(urls)} by {escape(coach_name)}"'
        ' loading="lazy" decoding="async"></a>'
        for n, url in enumerate(urls, 1)
    )
    return f'<div class="charts">{items}</div>'


def render_history(revisions: Sequence[RevisionOut], view: DashboardView) -> str:
    if not revisions:
        return ""
    entries = []
    for revision in revisions:
        charts = ""
        if revision.charts:
            links = ", ".join(
                f'<a href="{escape(c.url)}">chart {n}</a>' for n, c in enumerate(revision.charts, 1)
            )
            charts = f"<div>{links}</div>"
        entries.append(
            f'<li data-action="{revision.action}">'
            f"<strong>{ACTIONS[revision.action]}</strong> by {escape(revision.editor)}"
            f" · {when(revision.created_at, view)}"
            f"<p>{escape(revision.plan_text)}</p>{charts}</li>"
        )
    count = f"{len(revisions)} revision{'s' if len(revisions) != 1 else ''}"
    return f"<details><summary>History ({count})</summary><ol>{''.join(entries)}</ol></details>"


def when(moment: dt.datetime, view: DashboardView) -> str:
    """A `<time>` in the plan time zone; the date is shown only when it is not the page's day."""
    local = moment.astimezone(view.zone)
    text = f"{local:%H:%M %Z}" if local.date() == view.day else f"{local:%b} {local.day}, {local:%H:%M %Z}"
    return f'<time datetime="{moment.isoformat()}">{escape(text)}</time>'


def shift(day: dt.date, days: int) -> dt.date | None:
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:
        return None
