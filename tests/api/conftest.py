"""The API suite runs on a temporary SQLite file and again on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from coach_plans_api import migrate
from tests.conftest import PG_URL, require_service

TABLES = "plan_revisions, plan_tickers, plan_charts, coach_plans, bot_heartbeats"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The test database, migrated from an empty schema once per run."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    migrate.upgrade(make_url(PG_URL))
    yield PG_URL
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "plans.db"
        path.write_bytes(sqlite_template.read_bytes())
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url
