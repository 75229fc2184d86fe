"""mock_mode=True: every read method of the typed clients answers from the predefined plans."""

from __future__ import annotations

import datetime as dt

import pytest

from coach_plans_client import (
    AsyncCoachPlansClient,
    BadRequestError,
    CoachPlansClient,
    NotFoundError,
)

DAY = dt.date(2026, 11, 25)


@pytest.fixture
def mock() -> CoachPlansClient:
    return CoachPlansClient(mock_mode=True)


def test_list_plans_filters_and_pages_like_the_api(mock: CoachPlansClient) -> None:
    day = mock.list_plans(date=DAY)
    assert [plan.coach for plan in day.items] == ["coach_n", "coach_s", "coach_i", "coach_d"]
    assert day.next_cursor is None
    assert [plan.coach for plan in mock.list_plans(coach="D", date=DAY).items] == ["coach_d"]
    assert [plan.coach for plan in mock.list_plans(date=DAY, ticker="$spy").items] == ["coach_d"]
    assert [plan.coach for plan in mock.list_plans(date=DAY, author="coach i").items] == ["coach_i"]

    week_ago = DAY - dt.timedelta(days=6)
    first = mock.list_plans(date_from=week_ago, date_to=DAY, limit=5)
    assert len(first.items) == 5
    assert first.next_cursor is not None
    paged = list(mock.iter_plans(date_from=week_ago, date_to=DAY, page_size=3))
    assert paged == list(mock.list_plans(date_from=week_ago, date_to=DAY, limit=200).items)
    assert len(paged) == 28
    assert [plan.date for plan in paged] == sorted((plan.date for plan in paged), reverse=True)


def test_a_plan_its_revisions_history_and_levels(mock: CoachPlansClient) -> None:
    listed = mock.list_plans(coach="d", date=DAY).items[0]
    assert mock.get_plan_by_id(listed.id) == listed
    assert mock.get_plan("d", DAY).id == listed.id  # the legacy route serves the same plan
    [revision] = mock.get_revisions(listed.id)
    assert (revision.action, revision.plan_text) == ("create", listed.plan)
    nvda = listed.levels_of("NVDA")
    assert nvda is not None
    assert [(level.kind, listed.plan[level.span[0] : level.span[1]]) for level in nvda.levels] == [
        ("entry", "long above 950"),
        ("stop", "stop at 935"),
        ("target", "target 975"),
    ]
    history = mock.get_history("i", days=3)
    assert [plan.date for plan in history] == [mock.today() - dt.timedelta(days=n) for n in range(3)]
    assert {plan.coach for plan in history} == {"coach_i"}
    with pytest.raises(NotFoundError):
        mock.get_plan_by_id(1)
    with pytest.raises(BadRequestError):
        mock.list_plans(coach="coach_x")


def test_search_is_case_insensitive_with_highlights(mock: CoachPlansClient) -> None:
    page = mock.search("qqq PUTS", date_from=DAY, date_to=DAY)
    [hit] = page.items
    assert hit.plan.coach == "coach_n"
    assert sorted(hit.snippet[start:end].lower() for start, end in hit.highlights) == ["puts", "qqq"]
    hits = list(mock.iter_search("nvda", date_from=DAY - dt.timedelta(days=9), date_to=DAY, page_size=7))
    assert len(hits) == 30  # coach_d, coach_i and coach_s, ten days
    assert mock.search("no such words").items == ()


def test_tickers_and_events(mock: CoachPlansClient) -> None:
    plans = mock.fetch_plans_for_ticker("QQQ", days=3, as_of=DAY)
    assert [(plan.coach, plan.date) for plan in plans] == [
        ("coach_n", DAY - dt.timedelta(days=n)) for n in range(3)
    ]
    assert list(mock.events()) == []  # nothing changes in mock mode: the subscription ends


async def test_the_async_client_has_the_same_mock() -> None:
    async with AsyncCoachPlansClient(mock_mode=True) as mock:
        plans = [plan async for plan in mock.aiter_plans(date=DAY, page_size=1)]
        assert len(plans) == 4
        assert (await mock.get_plan_by_id(plans[0].id)).id == plans[0].id
        assert [event async for event in mock.events()] == []
