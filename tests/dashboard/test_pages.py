"""`GET /` over HTTP: the chosen day's plans, charts and history, escaped, with no external assets."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from coach_plans_api.app import create_app
from tests.conftest import INTERNAL_TOKEN, PutPlan, make_settings, plan_body
from tests.dashboard.conftest import DashboardPage

DAY = "2020-03-10"
COACHES = ["coach_d", "coach_i", "coach_s", "coach_n"]


def page(client: TestClient, query: str = f"?date={DAY}") -> DashboardPage:
    response = client.get(f"/{query}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return DashboardPage(response.text)


@pytest.mark.parametrize("stored", ["#mock-plans", "mock-plans"])
def test_channel_reads_with_one_hash_however_it_was_stored(
    api_client: TestClient, internal_headers: dict[str, str], stored: str
) -> None:
    # The bot stores Discord's "#name"; the card once read "in ##mock-plans".
    body = {**plan_body(), "channel": stored}
    api_client.put(f"/internal/plans/coach_d/{DAY}", json=body, headers=internal_headers)
    card = page(api_client).cards["coach_d"]
    assert "By Dan in #mock-plans ·" in card.text
    assert "##" not in card.text


def test_plans_and_charts_of_the_chosen_day(api_client: TestClient, put_plan: PutPlan) -> None:
    put_plan("coach_d", DAY, text="NVDA long over 950", charts=["https://c.example/d1.png"] * 1)
    put_plan(
        "coach_s",
        DAY,
        text="SPY fade 520",
        charts=["https://c.example/s1.png", "https://c.example/s2.jpg"],
        user_id="1002",
        name="Sam",
    )
    put_plan("coach_d", "2020-03-09", text="the day before", charts=["https://c.example/old.png"])
    put_plan("coach_i", "2020-03-11", text="the day after", user_id="1003", name="Ivy")

    response = api_client.get(f"/?date={DAY}")
    assert response.headers["cache-control"] == "no-cache"
    shown = DashboardPage(response.text)
    assert list(shown.cards) == COACHES
    d, s = shown.cards["coach_d"], shown.cards["coach_s"]
    assert (d.plan_text, d.images) == ("NVDA long over 950", ["https://c.example/d1.png"])
    assert "By Dan in #trading-plans" in d.text
    assert (s.plan_text, s.images) == (
        "SPY fade 520",
        ["https://c.example/s1.png", "https://c.example/s2.jpg"],
    )
    assert "SPY" in s.text  # the ticker tag
    for empty in ("coach_i", "coach_n"):
        assert shown.cards[empty].plan_id is None
        assert "No plan posted" in shown.cards[empty].text
    assert "the day before" not in response.text
    assert "the day after" not in response.text
    assert "old.png" not in response.text
    assert shown.summary == "2 of 4 coaches posted a plan."
    assert '<img src="https://c.example/d1.png"' in response.text
    assert 'loading="lazy"' in response.text
    assert '<a href="https://c.example/s2.jpg">' in response.text


def test_date_picker_and_day_links(api_client: TestClient) -> None:
    html = api_client.get(f"/?date={DAY}").text
    assert re.search(r'<form method="get">.*<input type="date" name="date" value="2020-03-10"', html)
    assert 'href="?date=2020-03-09" rel="prev"' in html
    assert 'href="?date=2020-03-11" rel="next"' in html
    assert '<a href="?">Today</a>' in html
    assert "<script" not in html


def test_default_and_blank_date_are_today(
    api_app: FastAPI, api_client: TestClient, put_plan: PutPlan
) -> None:
    today = api_app.state.core.service.today().isoformat()
    put_plan("coach_n", today, text="today's plan", user_id="1004", name="Nat")
    for query in ("", "?date="):
        shown = page(api_client, query)
        assert shown.cards["coach_n"].plan_text == "today's plan"
        assert "No plan posted yet" in shown.cards["coach_d"].text
    assert '<a href="?">Today</a>' not in api_client.get("/").text


def test_plan_text_and_names_are_escaped(api_client: TestClient, put_plan: PutPlan) -> None:
    text = "<script>alert('x')</script>\nline two & <b>bold</b>"
    put_plan("coach_d", DAY, text=text, name='<img src=x onerror="alert(1)">')
    response = api_client.get(f"/?date={DAY}")
    assert "<script>" not in response.text
    assert "<b>" not in response.text
    assert "<img src=x" not in response.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;\nline two &amp; &lt;b&gt;" in response.text
    shown = DashboardPage(response.text)
    assert shown.cards["coach_d"].plan_text == text  # line breaks kept, shown as typed


def test_history_after_an_edit(
    api_client: TestClient, put_plan: PutPlan, internal_headers: dict[str, str]
) -> None:
    plan = put_plan("coach_d", DAY, text="first version", charts=["https://c.example/v1.png"])
    response = api_client.patch(
        f"/internal/plans/{plan['id']}",
        json={
            "plan_text": "second version",
            "charts": [{"url": "https://c.example/v2.png"}],
            "actor": {"user_id": "1001", "display_name": "Dan", "is_admin": False},
            "message_id": "8",
        },
        headers=internal_headers,
    )
    assert response.status_code == 200
    html = api_client.get(f"/?date={DAY}").text
    card = DashboardPage(html).cards["coach_d"]
    assert card.plan_text == "second version"
    assert card.images == ["https://c.example/v2.png"]
    assert card.edited
    assert card.history == ["create", "edit"]
    assert re.search(r"<details><summary>History \(2 revisions\)</summary>.*first version", html)
    assert '<a href="https://c.example/v1.png">chart 1</a>' in html  # the old chart, as a link only


def test_deleted_plan_is_gone(
    api_client: TestClient, put_plan: PutPlan, internal_headers: dict[str, str]
) -> None:
    plan = put_plan("coach_d", DAY, text="posted by mistake")
    api_client.request(
        "DELETE",
        f"/internal/plans/{plan['id']}",
        json={"actor": {"user_id": "1001", "display_name": "Dan"}, "message_id": "9"},
        headers=internal_headers,
    )
    shown = page(api_client)
    assert shown.cards["coach_d"].plan_id is None
    assert "posted by mistake" not in shown.cards["coach_d"].text


def test_empty_day(api_client: TestClient) -> None:
    shown = page(api_client)
    assert shown.summary == "No plans posted for Tuesday 10 March 2020."
    assert list(shown.cards) == COACHES
    # A past day will not get a plan any more; today or later still may.
    assert all(c.text.endswith("No plan posted") for c in shown.cards.values())
    future = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    assert all(
        c.text.endswith("No plan posted yet") for c in page(api_client, f"?date={future}").cards.values()
    )


@pytest.mark.parametrize("bad", ["2026-13-01", "2026-02-30", "yesterday", "25/11/2026"])
def test_bad_date_is_400(api_client: TestClient, bad: str) -> None:
    response = api_client.get("/", params={"date": bad})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_date"


def test_first_and_last_days_have_no_link_past_them(api_client: TestClient) -> None:
    assert 'rel="prev"' not in api_client.get("/?date=0001-01-01").text
    assert 'rel="next"' not in api_client.get("/?date=9999-12-31").text


def test_only_chart_urls_leave_the_page(api_client: TestClient, put_plan: PutPlan) -> None:
    charts = ["https://cdn.example/a.png", "http://127.0.0.1:9/b.png"]
    put_plan("coach_d", DAY, text="see https://example.org/news for context", charts=charts)
    response = api_client.get(f"/?date={DAY}")
    html = response.text
    assets = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sorted({a for a in assets if not a.startswith(("?", "data:"))}) == sorted(charts)
    assert "<script" not in html
    assert '<link rel="stylesheet"' not in html
    assert '<meta name="viewport"' in html
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src" not in policy  # so no script runs at all
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy  # the page's own stylesheet is allowed


def test_one_database_connection_per_page(
    api_app: FastAPI, api_client: TestClient, put_plan: PutPlan
) -> None:
    """The page reads every plan and its history in one session, however many coaches posted."""
    from sqlalchemy import event

    for n, coach in enumerate(COACHES):
        put_plan(coach, DAY, text=f"plan {n}", user_id=str(1000 + n), name=f"Coach {n}")
    engine = api_app.state.core.service.db.engine
    checkouts: list[object] = []

    def count(*_args: object) -> None:
        checkouts.append(object())

    event.listen(engine, "checkout", count)
    try:
        shown = page(api_client)
    finally:
        event.remove(engine, "checkout", count)
    assert all(shown.cards[c].history == ["create"] for c in COACHES)
    assert len(checkouts) == 1


def test_a_time_past_the_calendar_in_the_plan_zone_is_shown_in_utc(database_url: str) -> None:
    """9999-12-31 23:00 UTC is already year 10000 in Kathmandu: the page was a 500."""
    with TestClient(create_app(make_settings(database_url, plan_timezone="Asia/Kathmandu"))) as client:
        headers = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
        assert (
            client.put("/internal/plans/d/9999-12-31", json=plan_body(), headers=headers).status_code == 201
        )
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE coach_plans SET created_at = '9999-12-31 23:00:00.000000'"))
        engine.dispose()
        response = client.get("/", params={"date": "9999-12-31"})
        assert response.status_code == 200, response.text
        assert "23:00 UTC" in response.text
