"""prediction attributes: a nullable JSON column for attributes that are not model inputs

A record may carry attributes (``{"sex": "F", "age_band": "40-60"}``) that segments and
fairness group by but that are never fed to the model; `[models.segments] attributes`
names the ones kept. Rows logged before carry none (NULL).

PostgreSQL: `prediction` is partitioned (0002); a column added to the partitioned
parent is added to every partition. SQLite: a plain ADD COLUMN.

Revision ID: 0003
Revises: 0007
Create Date: 2026-11-24 03:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("prediction", sa.Column("attributes", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prediction") as batch:
        batch.drop_column("attributes")
