"""baseline_fit: what a check fitted on a baseline, kept across processes

A calibrated drift null per (column, method, window-size bucket) and the surrogate's
bootstrap range per bucket are built once per baseline and settings (`fingerprint`)
and read back by every later run, restart, `monitor once` and `backfill`. Deleting a
baseline deletes its fits.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "baseline_fit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("baseline_id", sa.Integer(), nullable=False),
        sa.Column("check_name", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["baseline_id"], ["baseline.id"], name=op.f("fk_baseline_fit_baseline_id_baseline"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_baseline_fit")),
        sa.UniqueConstraint(
            "baseline_id", "check_name", "key", "fingerprint",
            name=op.f("uq_baseline_fit_baseline_id_check_name_key_fingerprint"),
        ),
    )


def downgrade() -> None:
    op.drop_table("baseline_fit")
