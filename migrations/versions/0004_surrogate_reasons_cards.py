"""surrogate, reasons, model cards: surrogate_result, model_card, sample_attribution.reasons

`surrogate_result` keeps each run's surrogate tree (fidelity, calibrated lower bound,
first split, rules); `model_card` keeps every regenerated version of a model's card;
`sample_attribution.reasons` keeps each explained request's top reasons.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 03:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "surrogate_result",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("fidelity", sa.Float(), nullable=True),
        sa.Column("lower_bound", sa.Float(), nullable=True),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("top_feature", sa.String(length=256), nullable=True),
        sa.Column("baseline_top_feature", sa.String(length=256), nullable=True),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["run.id"], name=op.f("fk_surrogate_result_run_id_run"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surrogate_result")),
    )
    with op.batch_alter_table("surrogate_result", schema=None) as batch_op:
        batch_op.create_index("ix_surrogate_result_run_id", ["run_id"], unique=False)
    op.create_table(
        "model_card",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["run.id"], name=op.f("fk_model_card_run_id_run"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_card")),
        sa.UniqueConstraint("model", "version", name=op.f("uq_model_card_model_version")),
    )
    with op.batch_alter_table("sample_attribution", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reasons", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sample_attribution", schema=None) as batch_op:
        batch_op.drop_column("reasons")
    op.drop_table("model_card")
    with op.batch_alter_table("surrogate_result", schema=None) as batch_op:
        batch_op.drop_index("ix_surrogate_result_run_id")
    op.drop_table("surrogate_result")
