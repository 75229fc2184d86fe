"""Levels and search in the client: failure modes and older servers, with respx.

The contract against the real API is in integration/test_search.py.
"""

from __future__ import annotations

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
)

from .conftest import API, FakeClock

SEARCH_PATH = "/api/v1/search"


def v1_plan(plan_id: int = 1, **extra: Any) -> dict[str, Any]:
    plan = {"id": plan_id, "coach": "coach_d", "date": "2026-11-25", "plan": "NVDA long above 950"}
    return {**plan, "charts": [], "edited": False, **extra}


def hit(plan_id: int = 1, **extra: Any) -> dict[str, Any]:
    return {"plan": v1_plan(plan_id), "snippet": "NVDA long", "highlights": [[0, 4]], "score": 1.5, **extra}


@pytest.fixture
def sync_client(sleeps: list[float], clock: FakeClock) -> CoachPlansClient:
    return CoachPlansClient(API, sleep=sleeps.append, clock=clock)


def test_a_plan_from_an_older_server_has_no_levels() -> None:
    assert Plan.from_json(v1_plan()).levels == ()
    assert Plan.from_json(v1_plan(levels=None)).levels == ()


@pytest.mark.parametrize(
    "levels",
    [
        [{"ticker": "NVDA", "bias": "long", "levels": [{"kind": "entry", "value": "950", "span": [0, 3]}]}],
        [{"ticker": "NVDA", "bias": "long", "levels": [{"kind": "entry", "value": 950, "span": [0]}]}],
        [{"bias": "long", "levels": []}],
        "NVDA",
    ],
)
def test_malformed_levels_are_an_invalid_response(
    api: respx.MockRouter, sync_client: CoachPlansClient, levels: Any
) -> None:
    api.get("/api/v1/plans/1").respond(200, json=v1_plan(levels=levels))
    with pytest.raises(InvalidResponseError):
        sync_client.get_plan_by_id(1)


def test_search_failures(api: respx.MockRouter, sync_client: CoachPlansClient) -> None:
    route = api.get(SEARCH_PATH)
    route.respond(422, json={"error": "validation_error", "detail": "q: at most 200 characters"})
    with pytest.raises(BadRequestError, match="200 characters"):
        sync_client.search("x" * 201)

    route.respond(200, json={"items": [hit(highlights=[[0, "4"]])], "next_cursor": None})
    with pytest.raises(InvalidResponseError, match="highlights"):
        sync_client.search("nvda")

    route.respond(200, json={"items": [hit()], "next_cursor": "same"})
    with pytest.raises(InvalidResponseError, match="repeated"):
        list(sync_client.iter_search("nvda"))

    with pytest.raises(ValueError, match="page_size"):
        list(sync_client.iter_search("nvda", page_size=101))


async def test_async_search_failures(api: respx.MockRouter, sleeps: list[float], clock: FakeClock) -> None:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    client = AsyncCoachPlansClient(API, sleep=sleep, clock=clock)
    route = api.get(SEARCH_PATH)
    route.mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ConnectionError):
        await client.search("nvda")
    route.mock(side_effect=None)
    route.respond(200, json={"items": [hit(1), hit(2)], "next_cursor": None})
    assert [h.plan.id async for h in client.aiter_search("nvda")] == [1, 2]
    assert route.calls.last.request.url.params["q"] == "nvda"
    await client.aclose()
