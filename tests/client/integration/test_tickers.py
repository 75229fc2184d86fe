"""fetch_plans_for_ticker (sync and async): window, pagination and order against the real API."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coach_plans_client import (
    AsyncCoachPlansClient,
    CoachPlansClient,
    Plan,
)
from tests.conftest import as_httpx_client

PutPlan = Callable[..., dict[str, Any]]
AS_OF = dt.date(2026, 11, 25)
PLANS_PATH = "/api/v1/plans"


def day(offset: int) -> str:
    return (AS_OF + dt.timedelta(days=offset)).isoformat()


@pytest.fixture
def stored(put_plan: PutPlan) -> dict[str, int]:
    """NVDA plans inside, at the edges of and outside a 30-day window ending on AS_OF."""
    plans = {
        "today_d": put_plan("coach_d", day(0), text="$NVDA above 950"),
        "today_i": put_plan("coach_i", day(0), text="NVDA earnings next week, $AMD lagging"),
        "today_s_qqq": put_plan("coach_s", day(0), text="QQQ only today"),
        "yesterday_s": put_plan("coach_s", day(-1), text="$nvda weak into the close"),
        "ten_days_n": put_plan("coach_n", day(-10), text="NVDA and rates"),
        "first_day_d": put_plan("coach_d", day(-29), text="NVDA first day of the window"),
        "too_old_i": put_plan("coach_i", day(-30), text="NVDA one day too old"),
        "tomorrow_n": put_plan("coach_n", day(1), text="NVDA tomorrow, not yet"),
    }
    return {name: plan["id"] for name, plan in plans.items()}


def ids(plans: list[Plan]) -> list[int]:
    return [plan.id for plan in plans]


EXPECTED_30 = ["today_i", "today_d", "yesterday_s", "ten_days_n", "first_day_d"]


def test_sync_follows_pages_within_the_window_newest_first(
    api_client: TestClient, stored: dict[str, int]
) -> None:
    requests: list[httpx.Request] = []
    api_client.event_hooks["request"].append(requests.append)
    client = CoachPlansClient(http_client=as_httpx_client(api_client))

    plans = client.fetch_plans_for_ticker("NVDA", 30, as_of=AS_OF, page_size=2)

    assert ids(plans) == [stored[name] for name in EXPECTED_30]
    assert [plan.date.isoformat() for plan in plans] == [day(0), day(0), day(-1), day(-10), day(-29)]
    assert plans[0].tickers == ("NVDA", "AMD")
    assert all("NVDA" in plan.tickers for plan in plans)
    # 5 plans at 2 a page: 3 requests, each with the window and the ticker.
    assert len(requests) == 3
    params = [dict(request.url.params) for request in requests]
    assert all(
        p["ticker"] == "NVDA" and p["from"] == day(-29) and p["to"] == day(0) and p["limit"] == "2"
        for p in params
    )
    assert "cursor" not in params[0]
    assert params[1]["cursor"] != params[2]["cursor"]


def test_sync_days_window_and_ticker_forms(api_client: TestClient, stored: dict[str, int]) -> None:
    client = CoachPlansClient(http_client=as_httpx_client(api_client))

    assert ids(client.fetch_plans_for_ticker("$nvda", 1, as_of=AS_OF)) == [
        stored["today_i"],
        stored["today_d"],
    ]
    assert ids(client.fetch_plans_for_ticker("NVDA", 31, as_of=day(0))) == [
        *(stored[name] for name in EXPECTED_30),
        stored["too_old_i"],
    ]
    assert ids(client.fetch_plans_for_ticker("amd", as_of=AS_OF)) == [stored["today_i"]]
    assert client.fetch_plans_for_ticker("TSLA", as_of=AS_OF) == []


def test_default_window_ends_today_in_new_york(api_client: TestClient, put_plan: PutPlan) -> None:
    today = dt.datetime.now(ZoneInfo("America/New_York")).date()
    recent = put_plan("coach_d", today.isoformat(), text="$NVDA today")
    put_plan("coach_i", (today - dt.timedelta(days=40)).isoformat(), text="$NVDA long ago")
    client = CoachPlansClient(http_client=as_httpx_client(api_client))

    assert client.today() == today
    assert ids(client.fetch_plans_for_ticker("NVDA")) == [recent["id"]]


@pytest.fixture
async def async_client(api_app: FastAPI) -> AsyncIterator[AsyncCoachPlansClient]:
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield AsyncCoachPlansClient(http_client=http)


async def test_async_follows_pages_within_the_window_newest_first(
    async_client: AsyncCoachPlansClient, stored: dict[str, int]
) -> None:
    plans = await async_client.fetch_plans_for_ticker("NVDA", 30, as_of=AS_OF, page_size=1)

    assert ids(plans) == [stored[name] for name in EXPECTED_30]
    assert ids(await async_client.fetch_plans_for_ticker("nvda", 2, as_of=AS_OF, page_size=2)) == [
        stored["today_i"],
        stored["today_d"],
        stored["yesterday_s"],
    ]
    assert await async_client.fetch_plans_for_ticker("TSLA", as_of=AS_OF) == []
