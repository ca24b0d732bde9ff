"""performance revisions of past windows, and the audit of corrected labels

`performance_revision`: each revision of a run's realized performance as its labels
arrive (revision 0 is the run's own). `label_audit`: a label replaced by a corrected
one for the same request id.

Revision ID: 0006
Revises: 0002
Create Date: 2026-11-24 03:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "performance_revision",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("labelled_rows", sa.Integer(), nullable=False),
        sa.Column("coverage", sa.Float(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["run.id"], name=op.f("fk_performance_revision_run_id_run"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_performance_revision")),
        sa.UniqueConstraint("run_id", "revision", name=op.f("uq_performance_revision_run_id_revision")),
    )
    op.create_table(
        "label_audit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=256), nullable=False),
        sa.Column("old_label", sa.JSON(), nullable=False),
        sa.Column("new_label", sa.JSON(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_audit")),
    )
    with op.batch_alter_table("label_audit", schema=None) as batch_op:
        batch_op.create_index("ix_label_audit_model_request_id", ["model", "request_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("label_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_label_audit_model_request_id")
    op.drop_table("label_audit")
    op.drop_table("performance_revision")
