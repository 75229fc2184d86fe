"""The API suite runs on a temporary SQLite file and again on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from coach_plans_api import migrate
from tests.conftest import create_postgres_database, drop_postgres_database

TABLES = "plan_revisions, plan_tickers, plan_charts, coach_plans, bot_heartbeats"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of this run's own, migrated from empty once per run."""
    url = create_postgres_database("api")
    migrate.upgrade(make_url(url))
    yield url
    drop_postgres_database(url)


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
