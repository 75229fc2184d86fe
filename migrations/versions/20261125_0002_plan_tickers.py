"""plan tickers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 15:10:03.972628
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "plan_tickers",
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("ticker", sa.String(length=12), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["coach_plans.id"],
            name=op.f("fk_plan_tickers_plan_id_coach_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("plan_id", "ticker", name=op.f("pk_plan_tickers")),
    )
    with op.batch_alter_table("plan_tickers", schema=None) as batch_op:
        batch_op.create_index("ix_plan_tickers_ticker", ["ticker"], unique=False)
    _tag_existing_plans()


def _tag_existing_plans() -> None:
    from coach_plans_api.tickers import DEFAULT_WATCHLIST, extract_tickers, parse_watchlist

    conn = op.get_bind()
    watchlist = parse_watchlist(DEFAULT_WATCHLIST)
    rows = conn.execute(sa.text("SELECT id, plan_text FROM coach_plans")).all()
    tags = [
        {"plan_id": plan_id, "ticker": ticker, "position": position}
        for plan_id, text in rows
        for position, ticker in enumerate(extract_tickers(text, watchlist))
    ]
    if tags:
        conn.execute(
            sa.text(
                "INSERT INTO plan_tickers (plan_id, ticker, position) VALUES (:plan_id, :ticker, :position)"
            ),
            tags,
        )


def downgrade() -> None:
    with op.batch_alter_table("plan_tickers", schema=None) as batch_op:
        batch_op.drop_index("ix_plan_tickers_ticker")

    op.drop_table("plan_tickers")
