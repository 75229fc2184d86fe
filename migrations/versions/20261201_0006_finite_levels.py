"""levels read again where a number beyond a float was stored as Infinity

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 00:05:00

Until this revision a number too large for a float ("1" and 309 zeros) was read as a level of
value infinity, and SQLite stored it in `coach_plans.plan_levels` as the token `Infinity`, which
is not JSON: every answer showing that plan carried it. The levels of those plans are set back to
NULL ("not read yet"), so the API reads them again from the text, where such a number is no level
now. PostgreSQL's JSON type refused the token, so no such plan was stored there.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("UPDATE coach_plans SET plan_levels = NULL WHERE plan_levels LIKE '%Infinity%'")


def downgrade() -> None:
    """Nothing to undo: levels left NULL are read from the text when shown."""
