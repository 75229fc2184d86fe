"""Contract: the clients against the real plan service, in process, on a fresh database."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coach_plans_client import (
    AsyncCoachPlansClient,
    BadRequestError,
    CoachPlansClient,
    DiscordWebhookClient,
    NotFoundError,
)
from tests.conftest import as_httpx_client

PutPlan = Callable[..., dict[str, Any]]
DATE = "2026-11-25"
SERVER = "http://testserver"
COACHES = ("coach_d", "coach_i", "coach_s", "coach_n")
CHARTS = ["https://cdn.discordapp.com/a/1/chart.png", "https://cdn.discordapp.com/a/1/volume.webp"]
LEGACY_FIELDS = {"plan", "charts", "author", "timestamp", "id", "coach", "date", "edited"}


@pytest.fixture
def client(api_client: TestClient) -> CoachPlansClient:
    return CoachPlansClient(http_client=as_httpx_client(api_client), sleep=lambda seconds: None)


@pytest.fixture
def legacy(api_client: TestClient) -> DiscordWebhookClient:
    urls: dict[str, str | None] = {coach: f"{SERVER}/api/coach-plans/?coach={coach}" for coach in COACHES}
    urls["summary_webhook"] = "https://discord.com/api/webhooks/1/token"
    return DiscordWebhookClient(urls, http_client=as_httpx_client(api_client), sleep=lambda seconds: None)


def statuses_of(api_client: TestClient) -> list[int]:
    seen: list[int] = []
    api_client.event_hooks["response"].append(lambda response: seen.append(response.status_code))
    return seen


def test_legacy_plan_fields(client: CoachPlansClient, put_plan: PutPlan) -> None:
    stored = put_plan("coach_d", DATE, text="NVDA above 950", charts=CHARTS)

    plan = client.get_plan("coach_d", DATE)

    assert plan.plan == "NVDA above 950"
    assert plan.charts == tuple(CHARTS)
    assert plan.author == "Dan"
    assert plan.id == stored["id"]
    assert plan.coach == "coach_d"
    assert plan.date == dt.date(2026, 11, 25)
    assert plan.timestamp is not None
    assert plan.timestamp.utcoffset() == dt.timedelta(0)
    assert not plan.edited
    assert set(plan.raw) >= LEGACY_FIELDS


def test_legacy_client_returns_the_same_json_as_the_api(
    legacy: DiscordWebhookClient, api_client: TestClient, put_plan: PutPlan
) -> None:
    put_plan("coach_d", DATE, text="NVDA above 950", charts=CHARTS)
    direct = api_client.get("/api/coach-plans/", params={"coach": "coach_d", "date": DATE})

    assert legacy.fetch_coach_plan("coach_d", DATE) == direct.json()


@pytest.mark.parametrize("form", ["coach_d", "d", "D"])
def test_coach_forms(client: CoachPlansClient, put_plan: PutPlan, form: str) -> None:
    stored = put_plan("d", DATE, text="Coach D plan")
    assert client.get_plan(form, DATE).id == stored["id"]


def test_missing_plan_is_404_with_the_no_plan_fallback(
    client: CoachPlansClient, legacy: DiscordWebhookClient
) -> None:
    with pytest.raises(NotFoundError) as info:
        client.get_plan("coach_i", DATE)
    assert info.value.error == "not_found"
    assert info.value.body["plan"] == f"No plan available for coach_i on {DATE}"
    assert info.value.body["charts"] == []

    plan = legacy.fetch_coach_plan("coach_i", DATE)
    assert plan["plan"] == f"No plan available for coach_i on {DATE}"
    assert plan["charts"] == []
    assert legacy.get_metrics()["errors"] == 0


def test_bad_date_and_unknown_coach_are_bad_requests(
    client: CoachPlansClient, legacy: DiscordWebhookClient
) -> None:
    with pytest.raises(BadRequestError) as info:
        client.get_plan("coach_d", "25/11/2026")
    assert info.value.error == "invalid_date"
    with pytest.raises(BadRequestError) as info:
        client.get_plan("coach_z", DATE)
    assert info.value.error == "unknown_coach"

    assert legacy.fetch_coach_plan("coach_d", "25/11/2026")["plan"].startswith("No plan available")
    assert legacy.get_metrics()["errors"] == 1


def test_fetch_all_uses_one_all_request_then_asks_for_each_coach_it_leaves_out(
    legacy: DiscordWebhookClient, api_client: TestClient, put_plan: PutPlan
) -> None:
    """`/all` lists only the plans it has: coach_i and coach_n get the server's own 404."""
    put_plan("coach_d", DATE, text="NVDA long above 950", charts=CHARTS[:1])
    put_plan("coach_s", DATE, text="Crowded long, size down")
    put_plan("coach_n", "2026-11-24", text="Yesterday's macro plan")
    statuses = statuses_of(api_client)

    plans = legacy.fetch_all_coach_plans(DATE)

    assert statuses == [200, 404, 404]
    metrics = legacy.get_metrics()
    assert (metrics["api_calls"], metrics["not_found"], metrics["errors"]) == (3, 2, 0)
    assert plans == {
        "coach_d_plan": "NVDA long above 950",
        "coach_d_charts": CHARTS[:1],
        "coach_i_plan": f"No plan available for coach_i on {DATE}",
        "coach_i_charts": [],
        "coach_s_plan": "Crowded long, size down",
        "coach_s_charts": [],
        "coach_n_plan": f"No plan available for coach_n on {DATE}",
        "coach_n_charts": [],
    }
    skipped = [coach for coach in COACHES if plans[f"{coach}_plan"].startswith("No")]
    assert skipped == ["coach_i", "coach_n"]


def test_get_all_plans_lists_only_coaches_with_a_plan(client: CoachPlansClient, put_plan: PutPlan) -> None:
    put_plan("coach_i", DATE, text="Accumulate on pullbacks")
    plans = client.get_all_plans(DATE)
    assert list(plans) == ["coach_i"]
    assert plans["coach_i"].plan == "Accumulate on pullbacks"


def test_etag_revalidation_against_the_api(
    client: CoachPlansClient, api_client: TestClient, put_plan: PutPlan
) -> None:
    put_plan("coach_d", DATE, text="first version")
    statuses = statuses_of(api_client)

    first = client.get_plan("coach_d", DATE)
    second = client.get_plan("coach_d", DATE)
    put_plan("coach_d", DATE, text="edited version")
    third = client.get_plan("coach_d", DATE)

    assert statuses[:2] == [200, 304]
    assert second == first
    assert third.plan == "edited version"


def test_versioned_endpoints_parse_into_models(client: CoachPlansClient, put_plan: PutPlan) -> None:
    stored = put_plan("coach_d", DATE, text="NVDA above 950", charts=CHARTS)
    put_plan("coach_d", DATE, text="NVDA above 955")  # an edit: a second revision
    put_plan("coach_d", "2026-11-24", text="older plan")

    page = client.list_plans(coach="coach_d")
    assert [plan.date for plan in page.items] == [dt.date(2026, 11, 25), dt.date(2026, 11, 24)]
    plan = client.get_plan_by_id(stored["id"])
    assert plan.plan == "NVDA above 955"
    assert plan.author_id == "1001"
    assert [revision.action for revision in client.get_revisions(stored["id"])] == [
        "create",
        "edit",
    ]
    assert {coach.coach for coach in client.list_coaches()} >= set(COACHES)
    with pytest.raises(NotFoundError):
        client.get_plan_by_id(999_999)


def test_history_is_newest_first(client: CoachPlansClient, put_plan: PutPlan) -> None:
    today = dt.datetime.now(dt.UTC).date()
    for days_ago in (3, 1):
        put_plan("coach_s", (today - dt.timedelta(days=days_ago)).isoformat(), text=f"{days_ago}")
    history = client.get_history("coach_s", days=30)
    assert [plan.plan for plan in history] == ["1", "3"]


def test_health(client: CoachPlansClient, legacy: DiscordWebhookClient) -> None:
    health = client.health()
    assert health.database_connected
    assert health.version
    assert legacy.check_health()["database_connected"] is True


async def test_async_client_against_the_app(api_app: FastAPI, put_plan: PutPlan) -> None:
    put_plan("coach_n", DATE, text="CPI at 8:30, stay hedged")
    transport = httpx.ASGITransport(app=api_app)
    async with (
        httpx.AsyncClient(transport=transport, base_url=SERVER) as http,
        AsyncCoachPlansClient(http_client=http) as client,
    ):
        plan = await client.get_plan("n", DATE)
        plans = await client.get_all_plans(DATE)
        with pytest.raises(NotFoundError):
            await client.get_plan("coach_d", DATE)
    assert plan.plan == "CPI at 8:30, stay hedged"
    assert list(plans) == ["coach_n"]


def test_old_webhooks_urls_reach_the_plans(api_client: TestClient, put_plan: PutPlan) -> None:
    put_plan("coach_d", DATE, text="NVDA above 950")
    legacy = DiscordWebhookClient(
        {"coach_d": f"{SERVER}/webhooks/", "coach_i": f"{SERVER}/webhooks/?coach=coach_i"},
        http_client=as_httpx_client(api_client),
    )
    plans = legacy.fetch_all_coach_plans(DATE)
    assert plans["coach_d_plan"] == "NVDA above 950"
    assert plans["coach_i_plan"] == f"No plan available for coach_i on {DATE}"
    assert legacy.get_metrics()["errors"] == 0


def test_a_wrong_url_is_reported_not_taken_for_no_plan(
    api_client: TestClient, put_plan: PutPlan, caplog: pytest.LogCaptureFixture
) -> None:
    put_plan("coach_d", DATE, text="NVDA above 950")
    wrong = f"{SERVER}/plans/api/coach-plans/"  # no such prefix on this server
    legacy = DiscordWebhookClient(
        {"coach_d": wrong}, http_client=as_httpx_client(api_client), sleep=lambda seconds: None
    )
    with caplog.at_level(logging.WARNING, logger="coach_plans_client"):
        plan = legacy.fetch_coach_plan("coach_d", DATE)
        health = legacy.check_health()

    assert plan["plan"] == f"No plan available for coach_d on {DATE}"
    assert plan["error"] == "misconfigured"
    assert f"{wrong}?coach=coach_d&date={DATE}" in caplog.text
    assert "route_not_found: no such route: GET /plans/api/coach-plans/" in caplog.text
    assert health["status"] == "unhealthy"
    assert "route_not_found" in health["error"]
    assert legacy.get_metrics()["errors"] == 2  # the fetch and the health check
    assert legacy.get_metrics()["not_found"] == 0
