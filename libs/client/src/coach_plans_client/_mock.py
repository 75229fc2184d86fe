"""Mock mode: predefined plans for every coach and any date, served without any network."""

from __future__ import annotations

import datetime as dt
import json
import zlib
from typing import Any

import httpx

__all__ = ["DEFAULT_COACHES", "MOCK_BASE_URL", "mock_plan", "mock_transport"]

MOCK_BASE_URL = "http://mock.coach-plans.invalid"
DEFAULT_COACHES = ("coach_d", "coach_i", "coach_s", "coach_n")

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


def _normalise(coach: str) -> str:
    coach = coach.strip().lower()
    return coach if coach.startswith("coach_") else f"coach_{coach}"


def mock_plan(coach: str, date: str) -> dict[str, Any]:
    """A realistic legacy-shaped plan for ``coach`` on ``date`` (same input, same plan)."""
    coach = _normalise(coach)
    name, template = _TEMPLATES.get(coach, (coach.replace("_", " ").title(), _TEMPLATES["coach_d"][1]))
    plan_id = zlib.crc32(f"{coach}:{date}".encode()) % 1_000_000
    return {
        "plan": f"[MOCK] {template.format(date=date)}",
        "charts": [f"{MOCK_BASE_URL}/charts/{coach}/{date}/{n}.png" for n in (1, 2)],
        "author": name,
        "timestamp": f"{date}T13:30:00+00:00",
        "id": plan_id,
        "coach": coach,
        "date": date,
        "edited": False,
        "edited_at": None,
        "channel": "mock-plans",
    }


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )


def _handle(request: httpx.Request) -> httpx.Response:
    date = request.url.params.get("date") or dt.date.today().isoformat()
    path = request.url.path.rstrip("/")
    if path == "/api/coach-plans":
        coach = request.url.params.get("coach")
        if not coach:
            return _json(400, {"error": "unknown_coach", "detail": "coach is required"})
        return _json(200, mock_plan(coach, date))
    if path == "/api/coach-plans/all":
        return _json(200, {coach: mock_plan(coach, date) for coach in DEFAULT_COACHES})
    if path == "/health":
        return _json(
            200,
            {
                "status": "healthy",
                "bot_connected": True,
                "database_connected": True,
                "plans_count": len(DEFAULT_COACHES),
                "uptime_seconds": 0.0,
                "version": "mock",
            },
        )
    if path == "/api/v1/coaches":
        return _json(
            200,
            {
                "coaches": [
                    {"coach": coach, "key": coach[-1], "name": _TEMPLATES[coach][0]}
                    for coach in DEFAULT_COACHES
                ]
            },
        )
    return _json(404, {"error": "not_found", "detail": f"mock mode does not serve {path}"})


def mock_transport() -> httpx.MockTransport:
    """An httpx transport that answers the public endpoints with the predefined plans."""
    return httpx.MockTransport(_handle)
