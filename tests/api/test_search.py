"""Full-text search on SQLite (FTS5) and PostgreSQL (tsvector), kept in step by the database itself."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url

from coach_plans_api import migrate, repository
from coach_plans_api.app import create_app
from coach_plans_api.db import Database
from coach_plans_api.search import SearchHit, fts5_query, parse_snippet, postgres_query
from tests.conftest import PutPlan, make_settings

D = dt.date.fromisoformat


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(make_url(database_url))
    yield db
    db.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = create_engine(database_url)
    yield eng
    eng.dispose()


def search(database: Database, query: str, **filters: Any) -> list[SearchHit]:
    filters.setdefault("limit", 20)
    with database.reading() as conn:
        return repository.search_plans(conn, query=query, **filters)


def coaches(hits: list[SearchHit]) -> list[str]:
    return [hit.plan.coach_name for hit in hits]


def check_highlights(hit: SearchHit, words: set[str]) -> None:
    assert hit.highlights, hit.snippet
    for start, end in hit.highlights:
        assert hit.snippet[start:end].lower() in words, hit.snippet


def test_finds_ranks_and_highlights(database: Database, put_plan: PutPlan) -> None:
    put_plan(
        coach="d", text="VWAP reclaim on NVDA. VWAP reclaim again on AMD. VWAP reclaim is the whole plan."
    )
    put_plan(
        coach="i",
        text="NVDA above 950 with a VWAP reclaim, targets 968/985, stop 938; trim into the close, "
        "size down ahead of the data, no chasing the open, patience into lunch.",
    )
    put_plan(coach="s", text="TSLA short below 340, nothing about the average price")
    hits = search(database, "vwap reclaim")
    assert coaches(hits) == ["coach_d", "coach_i"]
    assert hits[0].score > hits[1].score
    for hit in hits:
        check_highlights(hit, {"vwap", "reclaim"})
        assert hit.plan.plan_text.startswith(hit.snippet.lstrip("…")[:10])
    assert coaches(search(database, "TSLA")) == ["coach_s"]
    assert search(database, "MSFT") == []


def test_plans_mentioning_the_words_more_often_rank_higher(database: Database, put_plan: PutPlan) -> None:
    """At equal length, more mentions score higher; a word found only in a stemmed form counts."""
    texts = {
        "d": "Squeeze watch: AMD squeeze and NVDA squeeze, targets above the open.",
        "i": "Squeeze watch: AMD drift and NVDA fades too, target above the opens.",
        "s": "Squeeze watch: AMD squeeze and NVDA drifts, targets above the opens.",
    }
    assert len({len(plan) for plan in texts.values()}) == 1
    for coach, plan in texts.items():
        put_plan(coach=coach, text=plan)
    assert coaches(search(database, "squeeze")) == ["coach_d", "coach_s", "coach_i"]
    hits = search(database, "SQUEEZE targets")  # "target" in coach_i's plan
    assert coaches(hits) == ["coach_d", "coach_s", "coach_i"]
    assert hits[-1].score > 0


def test_words_beyond_ascii_are_counted_as_often_as_they_occur(database: Database, put_plan: PutPlan) -> None:
    """A word of several bytes a character is counted once per occurrence, like any other."""
    texts = {"d": "Über-Rally: über über über Ziel 968 ✓", "i": "Über-Rally: über und mehr, Ziel 968 ✓"}
    assert len({len(plan) for plan in texts.values()}) == 1
    for coach, plan in texts.items():
        put_plan(coach=coach, text=plan)
    hits = search(database, "über")
    assert coaches(hits) == ["coach_d", "coach_i"]
    assert hits[0].score > hits[1].score


def test_words_match_their_stems(database: Database, put_plan: PutPlan) -> None:
    put_plan(text="Targets 968 and 985 for the runners")
    [hit] = search(database, "target runner")
    check_highlights(hit, {"targets", "runners"})


def test_filters_by_coach_and_date(database: Database, put_plan: PutPlan) -> None:
    put_plan(coach="d", date="2026-11-20", text="NVDA breakout plan")
    put_plan(coach="i", date="2026-11-21", text="NVDA breakout, fundamentals agree")
    put_plan(coach="d", date="2026-11-25", text="NVDA breakout again")
    assert len(search(database, "breakout")) == 3
    assert {h.plan.date for h in search(database, "breakout", coach="coach_d")} == {
        D("2026-11-20"),
        D("2026-11-25"),
    }
    assert [
        h.plan.coach_name
        for h in search(database, "breakout", date_from=D("2026-11-21"), date_to=D("2026-11-21"))
    ] == ["coach_i"]
    assert [
        h.plan.date for h in search(database, "breakout", coach="coach_d", date_from=D("2026-11-21"))
    ] == [D("2026-11-25")]


@pytest.mark.parametrize("probe", [repository.SEARCH_PROBE, 2])
def test_filters_find_old_plans_posted_in_any_order(
    database: Database, put_plan: PutPlan, monkeypatch: pytest.MonkeyPatch, probe: int
) -> None:
    """On SQLite a filter keeping fewer than SEARCH_PROBE plans bounds the walk of the index by
    their ids; with more (probe=2), the filter is checked row by row. Both find the same plans,
    whether the ids follow the dates or not (a backfilled plan is newer than its day)."""
    monkeypatch.setattr(repository, "SEARCH_PROBE", probe)
    days = ["2026-11-20", "2026-10-02", "2026-11-25", "2026-10-01", "2026-11-03", "2026-09-30"]
    for n, day in enumerate(days):
        put_plan(coach="di"[n % 2], date=day, text=f"fade AMD below 158, plan {n}")
    for later in range(3):  # newer plans the walk meets first
        put_plan(coach="s", date=f"2026-11-2{later}", text="fade NVDA")

    def dates(**filters: Any) -> list[str]:
        return sorted(h.plan.date.isoformat() for h in search(database, "fade AMD", window=2, **filters))

    # The newest two matches by id: the last two posted of the three before 2026-10-03.
    assert dates(date_to=D("2026-10-02")) == ["2026-09-30", "2026-10-01"]
    assert dates(date_from=D("2026-10-01"), date_to=D("2026-10-31")) == ["2026-10-01", "2026-10-02"]
    assert dates(coach="coach_i", date_to=D("2026-10-31")) == ["2026-09-30", "2026-10-01"]
    assert dates(coach="coach_d", date_from=D("2026-11-01")) == ["2026-11-03", "2026-11-25"]
    assert dates(coach="coach_d", date_to=D("2026-09-01")) == []


def test_pages_follow_the_ranking_without_gaps_or_repeats(database: Database, put_plan: PutPlan) -> None:
    for day in range(1, 8):
        put_plan(coach="d", date=f"2026-11-{day:02d}", text="fade " * day + "AMD below 158")
    everything = search(database, "fade", limit=50)
    assert len(everything) == 7
    pages, after = [], None
    while True:
        page = search(database, "fade", limit=3, after=after)
        if not page:
            break
        pages.append(page)
        after = (page[-1].score, page[-1].plan.id)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [h.plan.id for p in pages for h in p] == [h.plan.id for h in everything]


def test_ranks_the_newest_matches_only(database: Database, put_plan: PutPlan) -> None:
    """The ranking looks at the newest `window` matches (after the filters), so its cost does not
    grow with the number of plans; older plans are reached by narrowing the dates."""
    ids = [
        put_plan(date=f"2026-11-0{day}", text="fade " * (6 - day) + "AMD below 158")["id"]
        for day in range(1, 6)
    ]
    assert [h.plan.id for h in search(database, "fade")] == ids  # most "fade" first: the oldest
    assert [h.plan.id for h in search(database, "fade", window=3)] == ids[2:]
    older = search(database, "fade", window=3, date_from=D("2026-11-01"), date_to=D("2026-11-02"))
    assert [h.plan.id for h in older] == ids[:2]


def test_follows_edits_made_in_sql_and_through_the_api(
    database: Database,
    engine: Engine,
    put_plan: PutPlan,
    api_client: TestClient,
    internal_headers: dict[str, str],
) -> None:
    plan = put_plan(text="NVDA long above 950")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE coach_plans SET plan_text = 'AMD fade below 158' WHERE id = :id"), {"id": plan["id"]}
        )
    assert search(database, "NVDA") == []
    assert [h.plan.id for h in search(database, "fade")] == [plan["id"]]
    response = api_client.patch(
        f"/internal/plans/{plan['id']}",
        json={
            "plan_text": "TSLA reclaim 345",
            "actor": {"user_id": "1001", "display_name": "Dan"},
            "message_id": "77",
        },
        headers=internal_headers,
    )
    assert response.status_code == 200, response.text
    assert search(database, "fade") == []
    [hit] = search(database, "reclaim")
    assert hit.plan.plan_text == "TSLA reclaim 345"


def test_follows_deletes_soft_and_hard(
    database: Database,
    engine: Engine,
    put_plan: PutPlan,
    api_client: TestClient,
    internal_headers: dict[str, str],
) -> None:
    soft = put_plan(coach="d", text="squeeze setup on SMCI")
    hard = put_plan(coach="i", text="squeeze setup on COIN")
    kept = put_plan(coach="s", text="squeeze setup on MSTR")
    response = api_client.request(
        "DELETE",
        f"/internal/plans/{soft['id']}",
        json={"actor": {"user_id": "1001", "display_name": "Dan"}, "message_id": "88"},
        headers=internal_headers,
    )
    assert response.status_code == 200, response.text
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM plan_revisions WHERE plan_id = :id"), {"id": hard["id"]})
        conn.execute(text("DELETE FROM coach_plans WHERE id = :id"), {"id": hard["id"]})
    assert [h.plan.id for h in search(database, "squeeze")] == [kept["id"]]
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:  # raises if the index and the table disagree
            conn.execute(
                text("INSERT INTO coach_plans_fts(coach_plans_fts, rank) VALUES ('integrity-check', 1)")
            )


HOSTILE = [
    '"',
    '"unbalanced',
    "NVDA*",
    "*",
    "NEAR(NVDA AMD, 2)",
    "NVDA NEAR AMD",
    "NVDA AND OR NOT",
    "(((",
    ")",
    "^NVDA",
    "plan_text:NVDA",
    "coach_plans_fts:NVDA",
    "-NVDA",
    "NVDA -",
    "'; DROP TABLE coach_plans; --",
    "\x00",
    "NVDA\x00AMD",
    "{NVDA AMD}",
    "NVDA OR",
    ":",
    "",
    "   ",
    "\u2603 \U0001f680",
    "a" * 10_000,
    "NVDA " * 2_000,
    '" OR "' * 1_000,
]


@pytest.mark.parametrize("query", HOSTILE, ids=lambda q: repr(q[:16]))
def test_hostile_queries_never_fail(database: Database, put_plan: PutPlan, query: str) -> None:
    put_plan(text="NVDA long above 950; AMD below 158")
    hits = search(database, query)
    assert all(hit.plan.plan_text.startswith("NVDA") for hit in hits)


def test_hostile_queries_still_find_their_words(database: Database, put_plan: PutPlan) -> None:
    put_plan(text="NVDA long above 950; AMD below 158")
    for query in ('"NVDA', "NVDA*", "(NVDA", 'NVDA"', "nvda)", "^NVDA", "NVDA:"):
        assert len(search(database, query)) == 1, query


def test_query_builders() -> None:
    assert fts5_query('NVDA "AMD" NEAR(x*) ^y') == '"NVDA" "AMD" "NEAR" "x" "y"'
    assert fts5_query("  ;;  ") == ""
    assert fts5_query("w " * 100).count('"w"') == 32
    assert postgres_query("a\x00b  c") == "a b c"


def test_parse_snippet() -> None:
    assert parse_snippet("go \ue000long\ue001 above \ue000950\ue001") == (
        "go long above 950",
        ((3, 7), (14, 17)),
    )
    assert parse_snippet("\ue001stray\ue000 open") == ("stray open", ())
    assert parse_snippet("plain") == ("plain", ())


# --- the migration: search objects and stored levels -----------------------------------------------
def old_plan(conn: Any, plan_id: int, text_: str, deleted: bool = False) -> None:
    conn.execute(
        text(
            "INSERT INTO coach_plans (id, coach_name, date, plan_text, author, author_id, created_at,"
            " deleted_at) VALUES (:id, 'coach_d', :date, :text, 'Dan', '1', '2026-11-25 10:00:00+00',"
            " :deleted)"
        ),
        {
            "id": plan_id,
            "date": f"2026-11-{plan_id:02d}",
            "text": text_,
            "deleted": "2026-11-26 10:00:00+00" if deleted else None,
        },
    )


def check_migration(url: str) -> None:
    sa_url = make_url(url)
    migrate.upgrade(sa_url, "0003")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            old_plan(conn, 1, "NVDA long above 950, targets 968/985, stop 938; fade AMD below 158")
            old_plan(conn, 2, "Macro: CPI at 8:30 ET, no levels today")
            old_plan(conn, 3, "gone plan with a squeeze", deleted=True)
        migrate.upgrade(sa_url)
        migrate.check(sa_url)  # no drift: the search objects are the migration's own
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, plan_levels FROM coach_plans ORDER BY id"))
            # JSON text on SQLite, already decoded on PostgreSQL
            stored: dict[int, str | list[dict[str, Any]]] = {plan_id: value for plan_id, value in rows}
        levels = {k: json.loads(v) if isinstance(v, str) else v for k, v in stored.items()}
        assert [(t["ticker"], t["bias"], len(t["levels"])) for t in levels[1]] == [
            ("NVDA", "long", 4),
            ("AMD", "short", 1),
        ]
        assert levels[1][0]["levels"][0] == {
            "kind": "entry",
            "condition": "above",
            "value": 950.0,
            "high": None,
            "span": [5, 19],
        }
        assert levels[2] == []
        database = Database(sa_url)
        try:
            assert [h.plan.id for h in search(database, "targets")] == [1]  # existing plans are indexed
            assert search(database, "squeeze") == []  # deleted plans are not found
        finally:
            database.dispose()
        migrate.downgrade(sa_url, "0003")
        columns = {c["name"] for c in inspect(engine).get_columns("coach_plans")}
        assert not columns & {"plan_levels", "plan_search"}
        assert not [t for t in inspect(engine).get_table_names() if t.startswith("coach_plans_fts")]
        migrate.upgrade(sa_url)
        migrate.check(sa_url)
    finally:
        engine.dispose()


def test_migration_backfills_levels_indexes_plans_and_downgrades_on_sqlite(tmp_path: Path) -> None:
    check_migration(f"sqlite:///{tmp_path / 'old.db'}")


@pytest.mark.postgres
def test_migration_backfills_levels_indexes_plans_and_downgrades_on_postgres(postgres_url: str) -> None:
    check_migration(postgres_url)


def test_search_objects_exist_at_head(engine: Engine) -> None:
    """A later migration that rebuilds coach_plans on SQLite (batch mode) would drop the triggers."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            triggers = (
                conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars().all()
            )
            assert set(triggers) >= {
                "coach_plans_fts_insert",
                "coach_plans_fts_update",
                "coach_plans_fts_delete",
            }
        else:
            generated = conn.execute(
                text(
                    "SELECT is_generated FROM information_schema.columns"
                    " WHERE table_name = 'coach_plans' AND column_name = 'plan_search'"
                )
            ).scalar_one()
            assert generated == "ALWAYS"
            indexes = {i["name"] for i in inspect(engine).get_indexes("coach_plans")}
            assert "ix_coach_plans_plan_search" in indexes


# --- GET /api/v1/search ---------------------------------------------------------------------------
def api_search(api_client: TestClient, **params: Any) -> dict[str, Any]:
    response = api_client.get("/api/v1/search", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_search_endpoint_ranks_highlights_and_pages(api_client: TestClient, put_plan: PutPlan) -> None:
    for day in range(1, 6):
        put_plan(coach="d", date=f"2026-11-{day:02d}", text="fade " * day + "AMD below 158")
    put_plan(coach="i", date="2026-11-03", text="NVDA long above 950, targets 968/985")
    first = api_search(api_client, q="fade", limit=2)
    hit = first["items"][0]
    assert hit["plan"]["plan"] == "fade " * 5 + "AMD below 158"
    assert hit["plan"]["levels"][0]["ticker"] == "AMD"
    assert hit["highlights"]
    assert all(hit["snippet"][start:end].lower() == "fade" for start, end in hit["highlights"])
    seen, cursor = [], None
    while True:
        page = api_search(api_client, q="fade", limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [h["plan"]["date"] for h in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [f"2026-11-{day:02d}" for day in range(5, 0, -1)]
    filtered = api_search(api_client, q="fade", coach="D", date_from="2026-11-02", date_to="2026-11-03")
    assert [h["plan"]["date"] for h in filtered["items"]] == ["2026-11-03", "2026-11-02"]
    assert api_search(api_client, q="targets", coach="i")["items"][0]["plan"]["coach"] == "coach_i"
    assert api_search(api_client, q="targets", coach="s") == {"items": [], "next_cursor": None}
    head = api_client.head("/api/v1/search", params={"q": "fade"})
    assert (head.status_code, head.content) == (200, b"")


def test_search_endpoint_follows_edits_and_deletes(
    api_client: TestClient, put_plan: PutPlan, internal_headers: dict[str, str]
) -> None:
    plan = put_plan(text="squeeze setup on SMCI")
    assert len(api_search(api_client, q="squeeze")["items"]) == 1  # now cached
    actor = {"user_id": "1001", "display_name": "Dan"}
    edit = {"plan_text": "gap fill on COIN", "actor": actor, "message_id": "71"}
    assert api_client.patch(f"/internal/plans/{plan['id']}", json=edit, headers=internal_headers).is_success
    assert api_search(api_client, q="squeeze")["items"] == []
    [hit] = api_search(api_client, q="gap fill")["items"]
    assert hit["plan"]["tickers"] == ["COIN"]
    gone = {"actor": actor, "message_id": "72"}
    assert api_client.request(
        "DELETE", f"/internal/plans/{plan['id']}", json=gone, headers=internal_headers
    ).is_success
    assert api_search(api_client, q="gap fill")["items"] == []


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({}, 422, "validation_error"),
        ({"q": ""}, 422, "validation_error"),
        ({"q": "x" * 201}, 422, "validation_error"),
        ({"q": "x", "limit": 0}, 422, "validation_error"),
        ({"q": "x", "limit": 101}, 422, "validation_error"),
        ({"q": "x", "cursor": "nonsense"}, 400, "invalid_cursor"),
        ({"q": "x", "cursor": "nan_5"}, 400, "invalid_cursor"),
        ({"q": "x", "cursor": "1_5_5"}, 400, "invalid_cursor"),
        ({"q": "x", "cursor": " 1.5_5"}, 400, "invalid_cursor"),
        ({"q": "x", "cursor": "1.5_99999999999"}, 400, "invalid_cursor"),
        ({"q": "x", "coach": "zz"}, 400, "unknown_coach"),
        ({"q": "x", "date_from": "2026-02-30"}, 400, "invalid_date"),
    ],
)
def test_search_endpoint_bad_input(
    api_client: TestClient, params: dict[str, Any], status: int, error: str
) -> None:
    response = api_client.get("/api/v1/search", params=params)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["detail"]


def test_search_endpoint_is_rate_limited(database_url: str) -> None:
    with TestClient(create_app(make_settings(database_url, rate_limit_per_minute=2))) as client:
        statuses = [client.get("/api/v1/search", params={"q": "vwap"}).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert client.get("/search", params={"q": "vwap"}).status_code == 429  # the page too


def test_search_endpoint_takes_any_query(api_client: TestClient, put_plan: PutPlan) -> None:
    put_plan(text="NVDA long above 950; AMD below 158")
    for query in HOSTILE:
        response = api_client.get("/api/v1/search", params={"q": query})
        assert response.status_code < 500, (query[:20], response.text)
        if response.status_code == 200:
            assert all(h["plan"]["plan"].startswith("NVDA") for h in response.json()["items"])
        else:
            assert set(response.json()) >= {"error", "detail"}
    assert len(api_search(api_client, q='"NVDA* ((')["items"]) == 1
