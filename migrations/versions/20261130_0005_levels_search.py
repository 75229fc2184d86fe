"""plan levels and full-text search

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 08:00:00

`coach_plans.plan_levels` holds the levels read from the plan text (docs/levels.md), as JSON beside
the plan: they are derived from that one row's text, always read with it and replaced whole on an
edit, and nothing queries inside them (tickers already have `plan_tickers`), so a column costs one
row write where a table would cost a delete and many inserts per edit. NULL means "not read yet".

Full-text search is kept in step by the database itself, so no write path can forget it:
- SQLite: an FTS5 external-content table over `coach_plans.plan_text`, with triggers on insert,
  update of the text, and delete. Alembic's batch mode rebuilds a table to alter it on SQLite and
  a rebuild drops its triggers: a later migration that batch-alters `coach_plans` must create
  them again (the CREATE TRIGGER statements below); tests/api/test_search.py checks they exist at head.
- PostgreSQL: a generated, stored `tsvector` column with a GIN index.
migrations/env.py keeps these objects out of autogenerate's comparison (it cannot represent them).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_SEARCH = [
    "CREATE VIRTUAL TABLE coach_plans_fts USING fts5("
    "plan_text, content='coach_plans', content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER coach_plans_fts_insert AFTER INSERT ON coach_plans BEGIN "
    "INSERT INTO coach_plans_fts(rowid, plan_text) VALUES (new.id, new.plan_text); END",
    "CREATE TRIGGER coach_plans_fts_delete AFTER DELETE ON coach_plans BEGIN "
    "INSERT INTO coach_plans_fts(coach_plans_fts, rowid, plan_text) VALUES ('delete', old.id, old.plan_text); "
    "END",
    "CREATE TRIGGER coach_plans_fts_update AFTER UPDATE OF plan_text ON coach_plans BEGIN "
    "INSERT INTO coach_plans_fts(coach_plans_fts, rowid, plan_text) VALUES ('delete', old.id, old.plan_text); "
    "INSERT INTO coach_plans_fts(rowid, plan_text) VALUES (new.id, new.plan_text); END",
    "INSERT INTO coach_plans_fts(coach_plans_fts) VALUES ('rebuild')",
]
POSTGRES_SEARCH = [
    "ALTER TABLE coach_plans ADD COLUMN plan_search tsvector "
    "GENERATED ALWAYS AS (to_tsvector('english'::regconfig, plan_text)) STORED",
    "CREATE INDEX ix_coach_plans_plan_search ON coach_plans USING gin (plan_search)",
]


def upgrade() -> None:
    op.add_column("coach_plans", sa.Column("plan_levels", sa.JSON(), nullable=True))
    _read_levels_of_existing_plans()
    statements = SQLITE_SEARCH if op.get_bind().dialect.name == "sqlite" else POSTGRES_SEARCH
    for statement in statements:
        op.execute(statement)


def _read_levels_of_existing_plans() -> None:
    from coach_plans_api.levels import extract_levels, levels_to_json
    from coach_plans_api.tickers import DEFAULT_WATCHLIST, parse_watchlist

    conn = op.get_bind()
    watchlist = parse_watchlist(DEFAULT_WATCHLIST)
    plans = sa.table("coach_plans", sa.column("id", sa.Integer), sa.column("plan_levels", sa.JSON))
    rows = conn.execute(sa.text("SELECT id, plan_text FROM coach_plans")).all()
    for start in range(0, len(rows), 1000):
        conn.execute(
            plans.update()
            .where(plans.c.id == sa.bindparam("plan_id"))
            .values(plan_levels=sa.bindparam("levels")),
            [
                {"plan_id": plan_id, "levels": levels_to_json(extract_levels(text, watchlist))}
                for plan_id, text in rows[start : start + 1000]
            ],
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER coach_plans_fts_{trigger}")
        op.execute("DROP TABLE coach_plans_fts")
    else:
        op.execute("DROP INDEX ix_coach_plans_plan_search")
        op.execute("ALTER TABLE coach_plans DROP COLUMN plan_search")
    with op.batch_alter_table("coach_plans", schema=None) as batch_op:
        batch_op.drop_column("plan_levels")
