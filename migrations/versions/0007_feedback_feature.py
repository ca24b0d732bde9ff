"""feedback.feature: an answer about one feature of an input-drift alert

One window's input drift is one alert listing its features; a person may answer for
the whole alert or for one of its features (`monitor alert ... --feature`, the Slack
"one feature" menu), and policies then apply to that feature only.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 03:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("feature", sa.String(length=256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("feature")
