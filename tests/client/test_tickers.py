"""fetch_plans_for_ticker and iter_plans (sync and async): failure modes with respx.

The window, pagination and order against the real API are in integration/test_tickers.py.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import httpx
import pytest
import respx

from coach_plans_client import (
    AsyncCoachPlansClient,
    BadRequestError,
    CoachPlansClient,
    ConnectionError,
    InvalidResponseError,
    Plan,
    ServerError,
)

from .conftest import API, FakeClock, full_jitter

AS_OF = dt.date(2026, 11, 25)
PLANS_PATH = "/api/v1/plans"


def day(offset: int) -> str:
    return (AS_OF + dt.timedelta(days=offset)).isoformat()


def ids(plans: list[Plan]) -> list[int]:
    return [plan.id for plan in plans]


# -- failure modes (respx) ---------------------------------------------------------------------


def v1_plan(plan_id: int, date: str, *, tickers: list[str] | None = None) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "id": plan_id,
        "coach": "coach_d",
        "coach_display_name": "Coach D",
        "date": date,
        "plan": f"$NVDA plan {plan_id}",
        "charts": [],
        "edited": False,
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
    assert full_jitter(sleeps, [0.5, 1.0])


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
        ({"ticker": "NVDA", "as_of": dt.date(1, 1, 1)}, "before the calendar begins"),
        ({"ticker": "NVDA", "days": 10**30}, "before the calendar begins"),
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
    assert client.today() == dt.datetime.now(dt.timezone.utc).date()
    assert "unknown time zone" in caplog.text


def test_tickers_that_are_not_strings_are_an_invalid_response(
    api: respx.MockRouter, sync_client: CoachPlansClient
) -> None:
    api.get(PLANS_PATH).respond(200, json=page(v1_plan(1, day(0), tickers=[42])))  # type: ignore[list-item]
    with pytest.raises(InvalidResponseError, match="tickers"):
        sync_client.fetch_plans_for_ticker("NVDA", as_of=AS_OF)


# -- iter_plans / aiter_plans: the one paginator behind every multi-page read -------------------


def test_iter_plans_fetches_a_page_only_when_it_is_needed(
    api: respx.MockRouter, sync_client: CoachPlansClient
) -> None:
    route = api.get(PLANS_PATH)
    route.side_effect = [
        httpx.Response(200, json=page(v1_plan(3, day(0)), v1_plan(2, day(0)), cursor="c1")),
        httpx.Response(200, json=page(v1_plan(1, day(-1)))),
    ]
    plans = sync_client.iter_plans(coach="d", date_from=day(-7), date_to=day(0), author="Dan", page_size=2)

    assert next(plans).id == 3
    assert next(plans).id == 2
    assert route.call_count == 1
    assert [plan.id for plan in plans] == [1]
    first, second = (dict(call.request.url.params) for call in route.calls)
    assert first == {"coach": "d", "from": day(-7), "to": day(0), "author": "Dan", "limit": "2"}
    assert second == {**first, "cursor": "c1"}


def test_iter_plans_checks_its_page_size(api: respx.MockRouter, sync_client: CoachPlansClient) -> None:
    route = api.get(PLANS_PATH).respond(200, json=page())
    with pytest.raises(ValueError, match="page_size"):
        list(sync_client.iter_plans(page_size=500))
    assert not route.called


async def test_aiter_plans_follows_every_page(api: respx.MockRouter, aclient: AsyncCoachPlansClient) -> None:
    route = api.get(PLANS_PATH)
    route.side_effect = [
        httpx.Response(200, json=page(v1_plan(3, day(0)), cursor="c1")),
        httpx.Response(200, json=page(v1_plan(2, day(0)), cursor="c2")),
        httpx.Response(200, json=page(v1_plan(1, day(0)))),
    ]
    assert [plan.id async for plan in aclient.aiter_plans(date=day(0), page_size=1)] == [3, 2, 1]
    assert [call.request.url.params.get("cursor") for call in route.calls] == [None, "c1", "c2"]
    assert route.calls[0].request.url.params["date"] == day(0)
