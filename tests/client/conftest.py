"""Fixtures of the client tests: a controllable clock and a recorder of backoff sleeps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx

API = "http://plans.test:5000"
DATE = "2026-11-25"
HEALTHY = {"status": "healthy", "bot_connected": True, "database_connected": True}


class FakeClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> list[float]:
    """Pass ``sleeps.append`` as a client's ``sleep``: backoff is recorded, not waited."""
    return []


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """respx router for the fake API; every request must be mocked."""
    with respx.mock(base_url=API, assert_all_called=False) as router:
        yield router


def full_jitter(sleeps: list[float], ceilings: list[float]) -> bool:
    """Each wait is anywhere from 0 to its capped exponential ceiling (full jitter)."""
    return len(sleeps) == len(ceilings) and all(0 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))


def legacy_plan(coach: str = "coach_d", date: str = DATE, text: str | None = None) -> dict[str, object]:
    return {
        "plan": text or f"{coach} plan for {date}: NVDA above 950",
        "charts": [f"https://cdn.example/{coach}/{date}/1.png"],
        "author": "Dan",
        "timestamp": f"{date}T13:30:00+00:00",
        "id": 7,
        "coach": coach,
        "date": date,
        "edited": False,
        "edited_at": None,
        "channel": "plans",
    }
