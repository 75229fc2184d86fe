"""fetch_plans_for_ticker (sync and async): window, pagination and order against the real API;
failure modes with respx."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coach_plans_client import (
    AsyncCoachPlansClient,
    BadRequestError,
    CoachPlansClient,
    ConnectionError,
    InvalidResponseError,
    Plan,
    ServerError,
)

from .conftest import API, FakeClock

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
    client = CoachPlansClient(http_client=api_client)

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
    client = CoachPlansClient(http_client=api_client)

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
    client = CoachPlansClient(http_client=api_client)

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


# -- failure modes (respx) ---------------------------------------------------------------------


def v1_plan(plan_id: int, date: str, *, tickers: list[str] | None = None) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "id": plan_id,
        "coach": "coach_d",
        "coach_display_name": "Coach D",
        "date": date,
        "plan": f"$NVDA plan {plan_id}",
        "charts": [],
    }
    if tickers is not None:
        plan["tickers"] = tickers
    return plan


def page(*items: dict[str, Any], cursor: str | None = None) -> dict[str, Any]:
    return {"items": list(items), "next_cursor": cursor}


@pytest.fixture
def sync_client(sleeps: list[float], clock: FakeClock) -> CoachPlansClient:
    return CoachPlansClient(API, sleep=sleeps.append, clock=clock)


@pytest.fixture
def aclient(sleeps: list[float], clock: FakeClock) -> AsyncCoachPlansClient:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return AsyncCoachPlansClient(API, sleep=sleep, clock=clock)


def test_older_server_without_tickers_still_parses(
    api: respx.MockRouter, sync_client: CoachPlansClient
) -> None:
    api.get(PLANS_PATH).respond(200, json=page(v1_plan(1, day(0))))
    (plan,) = sync_client.fetch_plans_for_ticker("NVDA", as_of=AS_OF)
    assert plan.tickers == ()


def test_pages_are_merged_in_order_without_duplicates(
    api: respx.MockRouter, sync_client: CoachPlansClient
) -> None:
    route = api.get(PLANS_PATH)
    route.side_effect = [
        httpx.Response(200, json=page(v1_plan(5, day(-1)), v1_plan(9, day(0)), cursor="c1")),
        httpx.Response(200, json=page(v1_plan(9, day(0)), v1_plan(7, day(0)))),
    ]
    plans = sync_client.fetch_plans_for_ticker("NVDA", as_of=AS_OF)
    assert ids(plans) == [9, 7, 5]
    assert route.calls[1].request.url.params["cursor"] == "c1"


def test_unreachable_api_raises_connection_error_after_retries(
    api: respx.MockRouter, sync_client: CoachPlansClient, sleeps: list[float]
) -> None:
    api.get(PLANS_PATH).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ConnectionError):
        sync_client.fetch_plans_for_ticker("NVDA", as_of=AS_OF)
    assert sleeps == [0.5, 1.0]


def test_a_failing_second_page_fails_the_whole_fetch(
    api: respx.MockRouter, sync_client: CoachPlansClient
) -> None:
    api.get(PLANS_PATH).side_effect = [
        httpx.Response(200, json=page(v1_plan(1, day(0)), cursor="c1")),
        *[httpx.Response(500, json={"error": "internal", "detail": "boom"})] * 3,
    ]
    with pytest.raises(ServerError):
        sync_client.fetch_plans_for_ticker("NVDA", as_of=AS_OF)


def test_a_repeated_cursor_stops_instead_of_looping(
    api: respx.MockRouter, sync_client: CoachPlansClient
) -> None:
    api.get(PLANS_PATH).respond(200, json=page(v1_plan(1, day(0)), cursor="same"))
    with pytest.raises(InvalidResponseError, match="repeated"):
        sync_client.fetch_plans_for_ticker("NVDA", as_of=AS_OF)


def test_invalid_ticker_is_a_bad_request(api: respx.MockRouter, sync_client: CoachPlansClient) -> None:
    api.get(PLANS_PATH).respond(
        422, json={"error": "validation_error", "detail": "ticker: string does not match pattern"}
    )
    with pytest.raises(BadRequestError, match="ticker"):
        sync_client.fetch_plans_for_ticker("not a ticker", as_of=AS_OF)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ticker": "NVDA", "days": 0}, "days"),
        ({"ticker": "NVDA", "page_size": 0}, "page_size"),
        ({"ticker": "NVDA", "page_size": 201}, "page_size"),
        ({"ticker": "NVDA", "as_of": "25/11/2026"}, "ISO date"),
        ({"ticker": " $ "}, "ticker"),
    ],
)
def test_bad_arguments_raise_value_error_without_a_request(
    api: respx.MockRouter, sync_client: CoachPlansClient, kwargs: dict[str, Any], message: str
) -> None:
    route = api.get(PLANS_PATH).respond(200, json=page())
    with pytest.raises(ValueError, match=message):
        sync_client.fetch_plans_for_ticker(**kwargs)
    assert not route.called


def test_as_of_accepts_a_datetime(api: respx.MockRouter, sync_client: CoachPlansClient) -> None:
    route = api.get(PLANS_PATH).respond(200, json=page())
    sync_client.fetch_plans_for_ticker("NVDA", 7, as_of=dt.datetime(2026, 11, 25, 23, 0))
    assert route.calls.last.request.url.params["from"] == day(-6)
    assert route.calls.last.request.url.params["to"] == day(0)


async def test_async_failures(api: respx.MockRouter, aclient: AsyncCoachPlansClient) -> None:
    route = api.get(PLANS_PATH)
    route.mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ConnectionError):
        await aclient.fetch_plans_for_ticker("NVDA", as_of=AS_OF)

    route.mock(side_effect=None)
    route.respond(200, json=page(v1_plan(1, day(0), tickers=["NVDA"]), cursor="same"))
    with pytest.raises(InvalidResponseError, match="repeated"):
        await aclient.fetch_plans_for_ticker("NVDA", as_of=AS_OF)

    with pytest.raises(ValueError, match="days"):
        await aclient.fetch_plans_for_ticker("NVDA", days=-1)


def test_unknown_time_zone_falls_back_to_utc(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="coach_plans_client"):
        client = CoachPlansClient(API, plan_timezone="Mars/Olympus_Mons")
    assert client.today() == dt.datetime.now(dt.UTC).date()
    assert "unknown time zone" in caplog.text


def test_tickers_that_are_not_strings_are_an_invalid_response(
    api: respx.MockRouter, sync_client: CoachPlansClient
) -> None:
    api.get(PLANS_PATH).respond(200, json=page(v1_plan(1, day(0), tickers=[42])))  # type: ignore[list-item]
    with pytest.raises(InvalidResponseError, match="tickers"):
        sync_client.fetch_plans_for_ticker("NVDA", as_of=AS_OF)
