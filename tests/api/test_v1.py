"""The versioned API: filters, cursor pagination, single plans, revisions, coaches."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from tests.api.test_legacy import LEGACY_FIELDS
from tests.conftest import PutPlan, api_today, plan_body


def _texts(body: dict[str, Any]) -> list[str]:
    return [p["plan"] for p in body["items"]]


@pytest.fixture
def week(put_plan: PutPlan) -> None:
    put_plan(coach="d", date="2026-11-23", text="d23", user_id="1", name="Dan")
    put_plan(coach="d", date="2026-11-24", text="d24", user_id="1", name="Dan")
    put_plan(coach="i", date="2026-11-24", text="i24", user_id="2", name="Ivy")
    put_plan(coach="s", date="2026-11-25", text="s25", user_id="3", name="Sam")


@pytest.mark.usefixtures("week")
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["s25", "i24", "d24", "d23"]),
        ({"coach": "d"}, ["d24", "d23"]),
        ({"date": "2026-11-24"}, ["i24", "d24"]),
        ({"from": "2026-11-24"}, ["s25", "i24", "d24"]),
        ({"to": "2026-11-23"}, ["d23"]),
        ({"from": "2026-11-24", "to": "2026-11-24", "coach": "coach_i"}, ["i24"]),
        ({"author": "dan"}, ["d24", "d23"]),
        ({"author_id": "3"}, ["s25"]),
        ({"coach": "n"}, []),
    ],
)
def test_filters(api_client: TestClient, params: dict[str, str], expected: list[str]) -> None:
    response = api_client.get("/api/v1/plans", params=params)
    assert response.status_code == 200
    assert _texts(response.json()) == expected


def test_filter_by_source_message(api_client: TestClient, put_plan: PutPlan) -> None:
    put_plan(text="by message", message_id="4242")
    body = api_client.get("/api/v1/plans", params={"message_id": "4242"}).json()
    assert _texts(body) == ["by message"]


def test_cursor_pagination_walks_every_plan_once(api_client: TestClient, put_plan: PutPlan) -> None:
    for day in range(1, 8):
        for coach in ("d", "i"):
            put_plan(coach=coach, date=f"2026-11-{day:02d}", text=f"{coach}{day}")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = api_client.get("/api/v1/plans", params=params).json()
        seen += _texts(body)
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    assert len(seen) == 14
    assert len(set(seen)) == 14
    assert seen[:2] == ["i7", "d7"]


@pytest.mark.parametrize(
    "cursor",
    [
        "nonsense",
        "2026-02-30_4",
        "2026-01-01_x",
        # other spellings of a date or a number than the ones a page hands out
        "2024-W09-4_5",
        "20240229_5",
        "2024-02-29_+5",
        "2024-02-29_ 5",
        "2024-02-29_1_0",
        "\u0662\u0660\u0662\u0664-\u0660\u0662-\u0662\u0669_5",
    ],
)
def test_bad_cursor_is_400(api_client: TestClient, cursor: str) -> None:
    response = api_client.get("/api/v1/plans", params={"cursor": cursor})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_cursor"


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"limit": 0}, 422),
        ({"limit": 201}, 422),
        ({"date": "2026-02-30"}, 400),
        ({"coach": "zz"}, 400),
        ({"author_id": "abc"}, 422),
        ({"date": "2026-11-25", "from": "2026-11-01"}, 400),  # `from` was silently ignored
        ({"date": "2026-11-25", "to": "2026-11-30"}, 400),
    ],
)
def test_bad_filters(api_client: TestClient, params: dict[str, Any], status: int) -> None:
    assert api_client.get("/api/v1/plans", params=params).status_code == status


def test_get_one_plan_with_ordered_charts(api_client: TestClient, put_plan: PutPlan) -> None:
    charts = [f"https://cdn.example.com/{n}.png" for n in range(10)]
    stored = put_plan(charts=charts)
    body = api_client.get(f"/api/v1/plans/{stored['id']}").json()
    assert [c["url"] for c in body["charts"]] == charts
    assert [c["order"] for c in body["charts"]] == list(range(10))
    assert body["coach_display_name"] == "Coach D"


def test_unknown_plan_is_404(api_client: TestClient) -> None:
    response = api_client.get("/api/v1/plans/999")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "no plan with id 999"}


def test_coaches_come_from_configuration(api_client: TestClient) -> None:
    body = api_client.get("/api/v1/coaches").json()
    assert body["coaches"] == [
        {"coach": "coach_d", "key": "d", "name": "Coach D"},
        {"coach": "coach_i", "key": "i", "name": "Coach I"},
        {"coach": "coach_s", "key": "s", "name": "Coach S"},
        {"coach": "coach_n", "key": "n", "name": "Coach N"},
    ]


@pytest.mark.parametrize(
    "last_event_id",
    [
        [("Last-Event-ID", value)]
        for value in (
            "-1",
            "2147483648",
            "99999999999999999999999",
            "1e5",
            "abc",
            "20.0",
            "+20",
            "",
        )
    ]
    + [[("Last-Event-ID", "20"), ("Last-Event-ID", "16")]],  # two headers are the list "20, 16"
    ids=lambda headers: " + ".join(repr(value) for _, value in headers),
)
def test_last_event_id_that_is_not_one_id_is_422(
    api_client: TestClient, last_event_id: list[tuple[str, str]]
) -> None:
    """Last-Event-ID is one integer 0..2^31-1, in plain digits: anything else is refused before
    the stream opens (a number past that once reached the database and broke the stream)."""
    response = api_client.get("/api/v1/events", headers=last_event_id)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "header.last-event-id"


NVDA_PLAN = "NVDA long above 950, targets 968/985, stop 938; fade AMD below 158"


def _levels(plan: dict[str, Any]) -> list[tuple[str, str, list[tuple[str, float]]]]:
    return [
        (t["ticker"], t["bias"], [(level["kind"], level["value"]) for level in t["levels"]])
        for t in plan["levels"]
    ]


def test_levels_are_read_on_write_and_again_on_edit(
    api_client: TestClient, put_plan: PutPlan, internal_headers: dict[str, str]
) -> None:
    written = put_plan(text=NVDA_PLAN)
    expected = [
        ("NVDA", "long", [("entry", 950.0), ("target", 968.0), ("target", 985.0), ("stop", 938.0)]),
        ("AMD", "short", [("entry", 158.0)]),
    ]
    assert _levels(written) == expected
    entry = written["levels"][0]["levels"][0]
    assert entry["condition"] == "above"
    assert NVDA_PLAN[slice(*entry["span"])] == "long above 950"
    assert _levels(api_client.get(f"/api/v1/plans/{written['id']}").json()) == expected
    assert _levels(api_client.get("/api/v1/plans").json()["items"][0]) == expected

    edit = {
        "plan_text": "TSLA short below 340, target 320",
        "actor": {"user_id": "1001", "display_name": "Dan"},
    }
    patched = api_client.patch(
        f"/internal/plans/{written['id']}", json={**edit, "message_id": "61"}, headers=internal_headers
    ).json()
    replaced = [("TSLA", "short", [("entry", 340.0), ("target", 320.0)])]
    assert _levels(patched) == replaced
    assert _levels(api_client.get(f"/api/v1/plans/{written['id']}").json()) == replaced
    assert _levels(put_plan(text="no levels today, just watching")) == []


def strict_json(response: Any) -> Any:
    """The body as every JSON parser reads it: `Infinity` and `NaN` are not JSON."""

    def refuse(name: str) -> None:
        pytest.fail(f"{name} in the answer to {response.request.url}")

    return json.loads(response.text, parse_constant=refuse)


@pytest.mark.parametrize(
    "number",
    ["1" + "0" * 309, "9" * 400, "9" * 306 + "k", "950-" + "9" * 400, "9" * 400 + "-5"],
    ids=["1e309", "400 nines", "1e306k", "range to 400 nines", "range from 400 nines"],
)
def test_a_number_beyond_a_float_is_no_level_and_every_answer_stays_json(
    api_client: TestClient, internal_headers: dict[str, str], number: str
) -> None:
    """Python reads such a number as infinity, which a JSON answer cannot carry."""
    text = f"NVDA long above 950, target {number}, stop 938"
    body = plan_body(text=text)
    written = api_client.put("/internal/plans/d/2026-11-25", json=body, headers=internal_headers)
    assert written.status_code == 201
    expected = [("NVDA", "long", [("entry", 950.0), ("stop", 938.0)])]
    assert _levels(strict_json(written)) == expected
    plan_id = written.json()["id"]
    assert _levels(strict_json(api_client.get(f"/api/v1/plans/{plan_id}"))) == expected
    assert _levels(strict_json(api_client.get("/api/v1/plans"))["items"][0]) == expected
    hit = strict_json(api_client.get("/api/v1/search", params={"q": "NVDA"}))["items"][0]
    assert _levels(hit["plan"]) == expected


def test_legacy_urls_do_not_show_levels(api_client: TestClient, put_plan: PutPlan) -> None:
    put_plan(text=NVDA_PLAN, date="2026-11-25")
    plan = api_client.get("/api/coach-plans/", params={"coach": "d", "date": "2026-11-25"}).json()
    assert set(plan) == LEGACY_FIELDS
    day = api_client.get("/api/coach-plans/all", params={"date": "2026-11-25"}).json()
    assert set(day["coach_d"]) == LEGACY_FIELDS
    today = api_today().isoformat()
    put_plan(text=NVDA_PLAN, date=today)  # history counts back from the real today
    history = api_client.get("/api/coach-plans/history", params={"coach": "d", "days": 7}).json()
    assert history["plans"]
    assert all("levels" not in p for p in history["plans"])


def test_a_plan_stored_without_levels_is_read_on_the_way_out(
    api_client: TestClient, put_plan: PutPlan, database_url: str
) -> None:
    """Rows written before levels were stored (or by hand) have NULL: they are read, not left empty."""
    written = put_plan(text=NVDA_PLAN)
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE coach_plans SET plan_levels = NULL WHERE id = :id"), {"id": written["id"]})
    engine.dispose()
    assert _levels(api_client.get(f"/api/v1/plans/{written['id']}").json()) == _levels(written)


def test_a_long_plan_has_its_levels_read_too(put_plan: PutPlan) -> None:
    """Long plans are read on a worker thread rather than on the event loop: same levels."""
    filler = "Macro first: CPI at 8:30 ET, the 20-day EMA, RSI 61 and nothing else to trade. " * 110
    written = put_plan(text=filler + NVDA_PLAN)
    assert len(written["plan"]) > 8_000
    assert [(t["ticker"], t["bias"]) for t in written["levels"]] == [("NVDA", "long"), ("AMD", "short")]
    assert _levels(written)[0][2] == [("entry", 950.0), ("target", 968.0), ("target", 985.0), ("stop", 938.0)]


def test_a_time_before_year_1000_written_by_earlier_versions_reads_back(
    api_client: TestClient, put_plan: PutPlan, database_url: str
) -> None:
    """Earlier versions wrote such a time on SQLite without padding its year ("999-05-10 …"):
    every answer holding it was a 500."""
    plan = put_plan(date="2026-11-25")
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE coach_plans SET created_at = '999-05-10 08:00:00.000000'"))
    engine.dispose()
    answer = api_client.get(f"/api/v1/plans/{plan['id']}")
    assert (answer.status_code, answer.json()["created_at"]) == (200, "0999-05-10T08:00:00Z")
