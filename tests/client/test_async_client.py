"""AsyncCoachPlansClient: the same contract as the sync client, awaited."""

from __future__ import annotations

import httpx
import pytest
import respx

from coach_plans_client import (
    AsyncCoachPlansClient,
    ClientClosedError,
    ConnectionError,
    InvalidResponseError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TimeoutError,
)

from .conftest import API, DATE, HEALTHY, FakeClock, full_jitter, legacy_plan

PLAN_PATH = "/api/coach-plans/"


@pytest.fixture
def client(sleeps: list[float], clock: FakeClock) -> AsyncCoachPlansClient:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return AsyncCoachPlansClient(API, sleep=sleep, clock=clock)


async def test_get_plan(api: respx.MockRouter, client: AsyncCoachPlansClient) -> None:
    route = api.get(PLAN_PATH).respond(200, json=legacy_plan())
    plan = await client.get_plan("coach_d", DATE)
    assert plan.plan.startswith("coach_d plan")
    assert dict(route.calls.last.request.url.params) == {"coach": "coach_d", "date": DATE}


async def test_not_found(api: respx.MockRouter, client: AsyncCoachPlansClient) -> None:
    api.get(PLAN_PATH).respond(404, json={"plan": "No plan available", "error": "not_found"})
    with pytest.raises(NotFoundError):
        await client.get_plan("coach_d", DATE)


async def test_retries_5xx_429_and_connect_errors_with_backoff(
    api: respx.MockRouter, sleeps: list[float]
) -> None:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    client = AsyncCoachPlansClient(API, max_retries=3, sleep=sleep)
    route = api.get(PLAN_PATH).mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.Response(503),
            httpx.Response(429, headers={"Retry-After": "4"}),
            httpx.Response(200, json=legacy_plan()),
        ]
    )
    await client.get_plan("coach_d", DATE)
    assert route.call_count == 4
    assert full_jitter(sleeps[:2], [0.5, 1.0])
    assert sleeps[2] == 4.0


async def test_gives_up_after_max_retries(
    api: respx.MockRouter, client: AsyncCoachPlansClient, sleeps: list[float]
) -> None:
    api.get(PLAN_PATH).respond(500)
    with pytest.raises(ServerError):
        await client.get_plan("coach_d", DATE)
    assert full_jitter(sleeps, [0.5, 1.0])


async def test_rate_limit_with_long_retry_after(api: respx.MockRouter, client: AsyncCoachPlansClient) -> None:
    api.get(PLAN_PATH).respond(429, headers={"Retry-After": "3600"})
    with pytest.raises(RateLimitError):
        await client.get_plan("coach_d", DATE)


@pytest.mark.parametrize(
    ("exc", "error_type"),
    [
        (httpx.ReadTimeout("slow"), TimeoutError),
        (httpx.ConnectError("refused"), ConnectionError),
        (httpx.InvalidURL("bad"), ConnectionError),
    ],
)
async def test_transport_failures(
    api: respx.MockRouter,
    client: AsyncCoachPlansClient,
    exc: Exception,
    error_type: type[Exception],
) -> None:
    api.get(PLAN_PATH).mock(side_effect=exc)
    with pytest.raises(error_type):
        await client.get_plan("coach_d", DATE)


async def test_html_instead_of_json(api: respx.MockRouter, client: AsyncCoachPlansClient) -> None:
    api.get(PLAN_PATH).respond(200, text="<html>maintenance</html>", headers={"content-type": "text/html"})
    with pytest.raises(InvalidResponseError, match="text/html"):
        await client.get_plan("coach_d", DATE)


async def test_etag_revalidation(api: respx.MockRouter, clock: FakeClock) -> None:
    client = AsyncCoachPlansClient(API, cache_ttl=10, clock=clock)
    route = api.get(PLAN_PATH).mock(
        side_effect=[
            httpx.Response(200, json=legacy_plan(), headers={"ETag": 'W/"7"'}),
            httpx.Response(304),
        ]
    )
    first = await client.get_plan("coach_d", DATE)
    clock.advance(11)
    assert await client.get_plan("coach_d", DATE) == first
    assert route.calls.last.request.headers["if-none-match"] == 'W/"7"'
    assert await client.get_plan("coach_d", DATE) == first
    assert route.call_count == 2


async def test_every_endpoint(api: respx.MockRouter, client: AsyncCoachPlansClient) -> None:
    v1_plan = {"id": 3, "coach": "coach_d", "date": DATE, "plan": "NVDA", "charts": [], "edited": False}
    api.get("/api/coach-plans/all").respond(200, json={"coach_i": legacy_plan("coach_i")})
    api.get("/api/coach-plans/history").respond(200, json={"plans": [v1_plan]})
    api.get("/api/v1/plans").respond(200, json={"items": [v1_plan], "next_cursor": None})
    api.get("/api/v1/plans/3").respond(200, json=v1_plan)
    api.get("/api/v1/plans/3/revisions").respond(
        200, json={"revisions": [{"id": 1, "plan_id": 3, "action": "edit", "charts": []}]}
    )
    api.get("/api/v1/coaches").respond(
        200, json={"coaches": [{"coach": "coach_n", "key": "n", "name": "Coach N"}]}
    )
    api.get("/health").respond(200, json=HEALTHY)

    assert list(await client.get_all_plans(DATE)) == ["coach_i"]
    assert (await client.get_history("coach_d", days=3))[0].id == 3
    assert (await client.list_plans(coach="d")).next_cursor is None
    assert (await client.get_plan_by_id(3)).plan == "NVDA"
    assert (await client.get_revisions(3))[0].action == "edit"
    assert (await client.list_coaches())[0].key == "n"
    assert (await client.health()).healthy


async def test_context_manager_closes_only_its_own_client() -> None:
    async with AsyncCoachPlansClient(API) as owned:
        pass
    assert owned._http.is_closed

    injected = httpx.AsyncClient()
    async with AsyncCoachPlansClient(API, http_client=injected):
        pass
    assert not injected.is_closed
    await injected.aclose()


async def test_mock_mode_needs_no_network() -> None:
    async with AsyncCoachPlansClient(mock_mode=True) as client:
        plan = await client.get_plan("coach_n", "2031-01-02")
        plans = await client.get_all_plans("2031-01-02")
    assert plan.plan.startswith("[MOCK] Macro plan for 2031-01-02")
    assert sorted(plans) == ["coach_d", "coach_i", "coach_n", "coach_s"]


@pytest.mark.parametrize("body", [{}, {"message": "upstream unavailable"}])
async def test_a_200_without_items_is_invalid_not_empty(
    api: respx.MockRouter, client: AsyncCoachPlansClient, body: dict[str, object]
) -> None:
    api.get(url__regex=r"/api/v1/.*").respond(200, json=body)
    with pytest.raises(InvalidResponseError):
        await client.list_plans(ticker="NVDA")
    with pytest.raises(InvalidResponseError):
        await client.fetch_plans_for_ticker("NVDA", as_of=DATE)
    with pytest.raises(InvalidResponseError):
        await client.search("vwap")
    with pytest.raises(InvalidResponseError):
        [hit async for hit in client.aiter_search("vwap")]


async def test_a_closed_client_raises_a_documented_error(api: respx.MockRouter) -> None:
    client = AsyncCoachPlansClient(API)
    await client.aclose()
    with pytest.raises(ClientClosedError) as info:
        await client.get_plan("coach_d", DATE)
    assert isinstance(info.value, RuntimeError)
    with pytest.raises(ClientClosedError):
        await client.health()
    with pytest.raises(ClientClosedError):
        async for _ in client.events(max_reconnects=0):
            pass
    assert not api.calls
