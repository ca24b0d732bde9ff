"""heartbeat: the row /healthz writes to prove the database still takes writes

A `SELECT 1` succeeds on a SQLite file that is read-only, on a full disk or locked by
another process, and on a read-only PostgreSQL; only a committed write tells. The
probe upserts one row per writer (`monitor.store.heartbeat`).

Revision ID: 0008
Revises: 0005 (the head: revisions 0006 and 0007 come before 0003)
Create Date: 2026-12-08 00:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "heartbeat",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_heartbeat")),
    )


def downgrade() -> None:
    op.drop_table("heartbeat")
