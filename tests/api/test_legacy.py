"""The old server's endpoints: same URLs, same fields, same fallback text."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from tests.conftest import PutPlan, api_today

LEGACY_FIELDS = {
    "plan",
    "charts",
    "author",
    "timestamp",
    "id",
    "coach",
    "date",
    "edited",
    "edited_at",
    "channel",
    "tickers",
}


def test_plan_has_every_legacy_field(api_client: TestClient, put_plan: PutPlan) -> None:
    stored = put_plan(
        text="NVDA above 950",
        charts=["https://cdn.example.com/a.png", "https://cdn.example.com/b.png"],
    )
    response = api_client.get("/api/coach-plans/", params={"coach": "coach_d", "date": "2026-11-25"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == LEGACY_FIELDS
    assert body["plan"] == "NVDA above 950"
    assert body["charts"] == ["https://cdn.example.com/a.png", "https://cdn.example.com/b.png"]
    assert body["author"] == "Dan"
    assert body["timestamp"] == stored["created_at"]
    assert dt.datetime.fromisoformat(body["timestamp"]).utcoffset() == dt.timedelta(0)
    assert body["id"] == stored["id"]
    assert (body["coach"], body["date"], body["edited"], body["edited_at"]) == (
        "coach_d",
        "2026-11-25",
        False,
        None,
    )
    assert body["channel"] == "trading-plans"


@pytest.mark.parametrize("coach", ["coach_d", "d", "D", "COACH_D"])
def test_coach_accepts_every_form(api_client: TestClient, put_plan: PutPlan, coach: str) -> None:
    put_plan(text="QQQ long above 500")
    response = api_client.get("/api/coach-plans/", params={"coach": coach, "date": "2026-11-25"})
    assert response.status_code == 200
    assert response.json()["plan"] == "QQQ long above 500"


def test_url_without_trailing_slash_answers_directly(api_client: TestClient, put_plan: PutPlan) -> None:
    put_plan()
    response = api_client.get("/api/coach-plans?coach=d&date=2026-11-25", follow_redirects=False)
    assert response.status_code == 200


def test_missing_plan_is_404_with_no_plan_text(api_client: TestClient) -> None:
    response = api_client.get("/api/coach-plans/", params={"coach": "coach_i", "date": "2026-11-24"})
    assert response.status_code == 404
    body = response.json()
    assert body["plan"] == "No plan available for coach_i on 2026-11-24"
    assert body["plan"].startswith("No")
    assert body["charts"] == []
    assert body["error"] == "not_found"
    assert body["detail"]


@pytest.mark.parametrize("bad_date", ["2026-02-30", "garbage", "2026-13-01", "99999-01-01", "2026-1-5"])
def test_invalid_date_is_400_never_no_plan(api_client: TestClient, bad_date: str) -> None:
    response = api_client.get("/api/coach-plans/", params={"coach": "d", "date": bad_date})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_date"
    assert "plan" not in response.json()


def test_unknown_coach_is_400_naming_the_known_ones(api_client: TestClient) -> None:
    response = api_client.get("/api/coach-plans/", params={"coach": "coach_x"})
    assert response.status_code == 400
    assert response.json()["error"] == "unknown_coach"
    assert "coach_d" in response.json()["detail"]


def test_missing_coach_parameter_is_422_naming_the_field(api_client: TestClient) -> None:
    response = api_client.get("/api/coach-plans/")
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "coach"


def test_date_defaults_to_today_in_market_time_zone(api_client: TestClient, put_plan: PutPlan) -> None:
    today = api_today().isoformat()
    put_plan(date=today, text="today's plan")
    assert api_client.get("/api/coach-plans/", params={"coach": "d"}).json()["plan"] == "today's plan"


def test_all_returns_legacy_shape_for_coaches_with_a_plan(api_client: TestClient, put_plan: PutPlan) -> None:
    put_plan(coach="d", text="D plan", charts=["https://x.example/d.png"])
    put_plan(coach="s", text="S plan")
    put_plan(coach="i", date="2026-11-24", text="I plan another day")
    response = api_client.get("/api/coach-plans/all", params={"date": "2026-11-25"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"coach_d", "coach_s"}
    assert body["coach_d"]["plan"] == "D plan"
    assert body["coach_d"]["charts"] == ["https://x.example/d.png"]
    assert set(body["coach_s"]) == LEGACY_FIELDS


def test_all_with_no_plans_is_empty_object(api_client: TestClient) -> None:
    response = api_client.get("/api/coach-plans/all", params={"date": "2026-01-02"})
    assert (response.status_code, response.json()) == (200, {})


def test_all_rejects_invalid_date(api_client: TestClient) -> None:
    assert api_client.get("/api/coach-plans/all", params={"date": "2026-02-30"}).status_code == 400


def test_history_newest_first_within_days(api_client: TestClient, put_plan: PutPlan) -> None:
    today = api_today()
    for back in (0, 1, 3, 10):
        put_plan(date=(today - dt.timedelta(days=back)).isoformat(), text=f"plan {back}")
    put_plan(coach="i", date=today.isoformat(), text="other coach")
    response = api_client.get("/api/coach-plans/history", params={"coach": "D", "days": 7})
    assert response.status_code == 200
    body = response.json()
    assert (body["coach"], body["days"]) == ("coach_d", 7)
    assert [p["plan"] for p in body["plans"]] == ["plan 0", "plan 1", "plan 3"]


@pytest.mark.parametrize("days", ["0", "367", "x"])
def test_history_rejects_bad_days(api_client: TestClient, days: str) -> None:
    response = api_client.get("/api/coach-plans/history", params={"coach": "d", "days": days})
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "days"
