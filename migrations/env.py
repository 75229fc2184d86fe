"""Alembic environment: the URL comes from the caller or from the service settings."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from coach_plans_api.db import make_engine
from coach_plans_api.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from coach_plans_api.config import load_settings

    return load_settings().sqlalchemy_url.render_as_string(hide_password=False)


# Full-text search objects that autogenerate cannot represent: the FTS5 virtual table and its
# shadow tables on SQLite, the generated tsvector column and its GIN index on PostgreSQL.
# Migration 0005 creates them; tests/api/test_search.py checks they exist and work.
SEARCH_OBJECTS = ("coach_plans_fts", "plan_search", "ix_coach_plans_plan_search")


def _include_name(name: str | None, _type: str, _parents: object) -> bool:
    return name is None or not name.startswith(SEARCH_OBJECTS)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=_include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from sqlalchemy.engine import make_url

    engine = make_engine(make_url(_url()))
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
run_migrations_online()
