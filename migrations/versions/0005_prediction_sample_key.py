"""prediction sample key: a deterministic 64-bit key per logged row, for sampling in SQL

A run draws its window's sample in the database: the rows with the smallest keys form a
uniform sample without replacement, the same one every time the window is read. The key
is the first 8 bytes of md5(model || U+001F || request_id) as a signed big-endian
integer, so it depends only on the request, never on when or how it was logged
(`monitor.store.predictions.sample_key` computes it at ingest).

The column is added without rewriting the log: an UPDATE of every row would take as
long as a copy of the table, hold its locks and double its size until vacuumed. Rows
logged before keep NULL, and the sampling query computes their key from model and
request id (`predictions.effective_key`: the same md5 in PostgreSQL's SQL, the same
Python function registered on SQLite connections); retention ages them out.
PostgreSQL: added to the partitioned parent, so to every partition.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 05:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("prediction", sa.Column("sample_key", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prediction") as batch:
        batch.drop_column("sample_key")
