"""chart archival

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 15:26:52.206808
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("plan_charts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("archive_status", sa.String(length=16), server_default="pending", nullable=False)
        )
        batch_op.add_column(sa.Column("archive_attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("archive_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("archive_next_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_plan_charts_archive_status", ["archive_status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("plan_charts", schema=None) as batch_op:
        batch_op.drop_index("ix_plan_charts_archive_status")
        batch_op.drop_column("archive_next_at")
        batch_op.drop_column("archive_error")
        batch_op.drop_column("archive_attempts")
        batch_op.drop_column("archive_status")
