"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 14:56:11.460280
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "bot_heartbeats",
        sa.Column("bot_id", sa.String(length=64), nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("mock_mode", sa.Boolean(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bot_id", name=op.f("pk_bot_heartbeats")),
    )
    op.create_table(
        "coach_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("coach_name", sa.String(length=32), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("plan_text", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=100), nullable=False),
        sa.Column("author_id", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=100), nullable=True),
        sa.Column("channel_id", sa.String(length=32), nullable=True),
        sa.Column("source_message_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coach_plans")),
    )
    with op.batch_alter_table("coach_plans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_coach_plans_author_id"), ["author_id"], unique=False)
        batch_op.create_index("ix_coach_plans_coach_name_date", ["coach_name", "date"], unique=False)
        batch_op.create_index("ix_coach_plans_date", ["date"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_coach_plans_source_message_id"), ["source_message_id"], unique=False
        )
        batch_op.create_index(
            "uq_coach_plans_live",
            ["coach_name", "date"],
            unique=True,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )

    op.create_table(
        "plan_charts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("chart_url", sa.Text(), nullable=False),
        sa.Column("chart_order", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("content_type", sa.String(length=100), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["coach_plans.id"],
            name=op.f("fk_plan_charts_plan_id_coach_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_charts")),
    )
    with op.batch_alter_table("plan_charts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_charts_plan_id"), ["plan_id"], unique=False)

    op.create_table(
        "plan_revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("plan_text", sa.Text(), nullable=False),
        sa.Column("charts_json", sa.Text(), nullable=False),
        sa.Column("editor", sa.String(length=100), nullable=False),
        sa.Column("editor_id", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=True),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["coach_plans.id"],
            name=op.f("fk_plan_revisions_plan_id_coach_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_revisions")),
    )
    with op.batch_alter_table("plan_revisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_revisions_message_id"), ["message_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_plan_revisions_plan_id"), ["plan_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("plan_revisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_revisions_plan_id"))
        batch_op.drop_index(batch_op.f("ix_plan_revisions_message_id"))

    op.drop_table("plan_revisions")
    with op.batch_alter_table("plan_charts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_charts_plan_id"))

    op.drop_table("plan_charts")
    with op.batch_alter_table("coach_plans", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_coach_plans_live",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_coach_plans_source_message_id"))
        batch_op.drop_index("ix_coach_plans_date")
        batch_op.drop_index("ix_coach_plans_coach_name_date")
        batch_op.drop_index(batch_op.f("ix_coach_plans_author_id"))

    op.drop_table("coach_plans")
    op.drop_table("bot_heartbeats")
