"""The schema comes only from Alembic: upgrade, no drift, downgrade, on both databases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from coach_plans_api import migrate
from coach_plans_api.app import create_app
from tests.api.test_v1 import strict_json
from tests.conftest import INTERNAL_TOKEN, REPO, make_settings, plan_body

TABLES = {
    "coach_plans",
    "plan_charts",
    "plan_tickers",
    "plan_revisions",
    "bot_heartbeats",
    "alembic_version",
}


def test_upgrade_check_downgrade_on_the_test_database(database_url: str) -> None:
    url = make_url(database_url)
    migrate.check(url)  # raises on drift between models and migrations
    engine = create_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
        migrate.downgrade(url, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(url)
        assert set(inspect(engine).get_table_names()) >= TABLES
        indexes = {i["name"]: i for i in inspect(engine).get_indexes("coach_plans")}
        assert indexes["uq_coach_plans_live"]["unique"]
        assert {"ix_coach_plans_coach_name_date", "ix_coach_plans_date"} <= set(indexes)
    finally:
        engine.dispose()


def test_alembic_command_line(tmp_path: Path) -> None:
    env = {"DATABASE_PATH": str(tmp_path / "cli.db"), "MOCK_MODE": "true", "PATH": "/usr/bin:/bin"}
    alembic = [sys.executable, "-m", "alembic"]
    for args in (["upgrade", "head"], ["check"], ["downgrade", "base"]):
        result = subprocess.run([*alembic, *args], cwd=REPO, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    assert (
        "No new upgrade operations detected"
        in subprocess.run(
            [*alembic, "upgrade", "head"], cwd=REPO, env=env, capture_output=True, text=True
        ).stderr
        + subprocess.run([*alembic, "check"], cwd=REPO, env=env, capture_output=True, text=True).stdout
    )


def test_ticker_migration_tags_existing_plans(tmp_path: Path) -> None:
    url = make_url(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(url, "0001")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO coach_plans (coach_name, date, plan_text, author, author_id, created_at)"
                " VALUES ('coach_d', '2024-05-10', 'NVDA above 950, $amd weak', 'Dan', '1',"
                " '2024-05-10 10:00:00')"
            )
        migrate.upgrade(url)
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT ticker FROM plan_tickers ORDER BY position").all()
        assert [r[0] for r in rows] == ["NVDA", "AMD"]
    finally:
        engine.dispose()


def test_levels_stored_with_infinity_are_read_again_from_the_text(tmp_path: Path) -> None:
    """Before 0006 a number beyond a float ("1" and 309 zeros) became a level of value Infinity,
    which SQLite kept as that token: not JSON. The migration has such plans read again."""
    url = make_url(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(url, "0005")
    broken = (
        '[{"ticker":"NVDA","bias":"long","levels":[{"kind":"entry","condition":"above","value":950.0,'
        '"high":null,"span":[5,19]},{"kind":"target","condition":null,"value":Infinity,"high":null,'
        '"span":[21,337]}]}]'
    )
    text = "NVDA long above 950, target 1" + "0" * 309
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for day, levels in (("2024-05-10", broken), ("2024-05-11", "[]")):
                conn.exec_driver_sql(
                    "INSERT INTO coach_plans (coach_name, date, plan_text, author, author_id, created_at,"
                    " plan_levels) VALUES ('coach_d', ?, ?, 'Dan', '1', '2024-05-10 10:00:00', ?)",
                    (day, text, levels),
                )
        migrate.upgrade(url)
        with engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT date, plan_levels FROM coach_plans ORDER BY date").all()
        assert stored == [("2024-05-10", None), ("2024-05-11", "[]")]  # only the broken one
    finally:
        engine.dispose()
    with TestClient(create_app(make_settings(url.render_as_string()))) as client:
        shown = strict_json(client.get("/api/v1/plans", params={"date": "2024-05-10"}))["items"][0]
    assert [(level["kind"], level["value"]) for level in shown["levels"][0]["levels"]] == [("entry", 950.0)]


def test_writes_on_an_older_schema_are_503_not_500(postgres_url: str) -> None:
    """A database at an older migration cannot be used: every request says so (503), writes too
    (on PostgreSQL a write went straight to the database and failed on a missing column: 500)."""
    url = make_url(postgres_url)
    migrate.upgrade(url, "0003")
    app = create_app(make_settings(postgres_url))
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
        response = client.put("/internal/plans/d/2026-11-25", json=plan_body(), headers=headers)
        assert (response.status_code, response.json()["error"]) == (503, "storage_unavailable")
        assert "this service needs" in response.json()["detail"]
        assert client.get("/health").status_code == 503
        migrate.upgrade(url)
        app.state.core.service.storage.probe()
        response = client.put("/internal/plans/d/2026-11-25", json=plan_body(), headers=headers)
        assert response.status_code == 201
