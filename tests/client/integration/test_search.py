"""Levels on plans and full-text search (sync and async) against the real API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coach_plans_client import AsyncCoachPlansClient, BadRequestError, CoachPlansClient, Level

PutPlan = Callable[..., dict[str, Any]]
NVDA_PLAN = "NVDA long above 950, targets 968/985, stop 938; fade AMD below 158"


def client_of(api_client: TestClient) -> CoachPlansClient:
    # Starlette's TestClient is built on `httpx2`, a copy of httpx with the same interface.
    return CoachPlansClient(http_client=cast(httpx.Client, api_client))


def values(levels: tuple[Level, ...]) -> list[float]:
    return [level.value for level in levels]


def test_plans_carry_their_levels(api_client: TestClient, put_plan: PutPlan) -> None:
    stored = put_plan("coach_d", "2026-11-25", text=NVDA_PLAN)
    client = client_of(api_client)

    plan = client.get_plan_by_id(stored["id"])
    nvda = plan.levels_of("$nvda")
    assert nvda is not None
    assert (nvda.bias, values(nvda.entries), values(nvda.targets), values(nvda.stops)) == (
        "long",
        [950.0],
        [968.0, 985.0],
        [938.0],
    )
    assert nvda.entries[0].condition == "above"
    assert plan.plan[slice(*nvda.entries[0].span)] == "long above 950"
    amd = plan.levels_of("AMD")
    assert amd is not None
    assert amd.bias == "short"
    assert plan.levels_of("TSLA") is None
    assert client.list_plans().items[0].levels == plan.levels


def test_search_pages_through_hits_best_first(api_client: TestClient, put_plan: PutPlan) -> None:
    for day in range(1, 6):
        put_plan("coach_d", f"2026-11-{day:02d}", text="fade " * day + "AMD below 158")
    put_plan("coach_i", "2026-11-02", text="NVDA reclaim, no chasing")
    client = client_of(api_client)

    page = client.search("fade", limit=2)
    assert len(page.items) == 2
    assert page.next_cursor
    hit = page.items[0]
    assert hit.plan.date.isoformat() == "2026-11-05"
    assert [hit.snippet[start:end] for start, end in hit.highlights][:2] == ["fade", "fade"]
    assert hit.plan.levels[0].ticker == "AMD"

    every = list(client.iter_search("fade", page_size=2))
    assert [h.plan.date.day for h in every] == [5, 4, 3, 2, 1]
    assert [h.score for h in every] == sorted((h.score for h in every), reverse=True)
    assert [h.plan.coach for h in client.search("fade", coach="i").items] == []
    assert [
        h.plan.date.day for h in client.search("fade", date_from="2026-11-02", date_to="2026-11-03").items
    ] == [3, 2]
    with pytest.raises(BadRequestError):
        client.search("x" * 500)


@pytest.fixture
async def async_client(api_app: FastAPI) -> AsyncIterator[AsyncCoachPlansClient]:
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield AsyncCoachPlansClient(http_client=http)


async def test_async_search_and_levels(async_client: AsyncCoachPlansClient, put_plan: PutPlan) -> None:
    for day in range(1, 4):
        put_plan("coach_d", f"2026-11-{day:02d}", text=f"{NVDA_PLAN}; squeeze watch day {day}")

    hits = [hit async for hit in async_client.aiter_search("squeeze", page_size=1)]
    assert len(hits) == 3
    assert len({hit.plan.id for hit in hits}) == 3
    page = await async_client.search("squeeze watch", limit=5)
    assert [h.plan.id for h in page.items] == [h.plan.id for h in hits]
    assert page.next_cursor is None
    nvda = page.items[0].plan.levels_of("NVDA")
    assert nvda is not None
    assert values(nvda.targets) == [968.0, 985.0]
