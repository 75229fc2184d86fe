"""database identity and change notifications

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 07:40:00.000000

`database_identity` holds one random id per database, written here: a running API compares it
with the one it started on, so a file swapped under it (another database, an old copy restored by
hand) is refused instead of served. On PostgreSQL, a trigger on every plan table announces each
committed change (NOTIFY), so every API process drops its read cache at once, whoever wrote.
"""

import datetime as dt
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "coach_plans_changed"
TABLES = ("coach_plans", "plan_charts", "plan_tickers", "plan_revisions")


def upgrade() -> None:
    identity = op.create_table(
        "database_identity",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_database_identity")),
    )
    op.bulk_insert(identity, [{"id": str(uuid.uuid4()), "created_at": dt.datetime.now(dt.UTC)}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION coach_plans_notify_change() RETURNS trigger AS $$
            BEGIN
                PERFORM pg_notify('{CHANNEL}', '');
                RETURN NULL;
            END
            $$ LANGUAGE plpgsql
            """
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_notify_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
                f" ON {table} FOR EACH STATEMENT EXECUTE FUNCTION coach_plans_notify_change()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_notify_change ON {table}")
        op.execute("DROP FUNCTION IF EXISTS coach_plans_notify_change()")
    op.drop_table("database_identity")
