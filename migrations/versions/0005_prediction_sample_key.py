"""prediction sample key: a deterministic 64-bit key per logged row, for sampling in SQL

A run draws its window's sample in the database: the rows with the smallest keys (after
a seed mask) form a uniform sample without replacement, the same one every time the
window is read. The key is the first 8 bytes of md5(model || U+001F || request_id) as a
signed big-endian integer, so it depends only on the request, never on when or how it
was logged (`monitor.store.predictions.sample_key` computes it at ingest; this migration
fills it in for the rows logged before).

PostgreSQL: added to the partitioned parent, so to every partition; the backfill is one
UPDATE computing the same md5 in SQL. SQLite: ADD COLUMN, then the backfill through a
Python function registered on the migration's connection.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 05:30:00
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the key in PostgreSQL's SQL: 16 hex digits of md5, read as a signed 64-bit integer
PG_KEY = "('x' || left(md5(model || chr(31) || request_id), 16))::bit(64)::bigint"


def _key(model: str, request_id: str) -> int:
    """The key as written out here on purpose: a migration must not change with the code."""
    digest = hashlib.md5(
        f"{model}\x1f{request_id}".encode("utf-8", "surrogatepass"), usedforsecurity=False
    ).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def upgrade() -> None:
    op.add_column("prediction", sa.Column("sample_key", sa.BigInteger(), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"UPDATE prediction SET sample_key = {PG_KEY} WHERE sample_key IS NULL")
        return
    bind.connection.driver_connection.create_function("monitor_sample_key", 2, _key, deterministic=True)
    op.execute(
        "UPDATE prediction SET sample_key = monitor_sample_key(model, request_id) WHERE sample_key IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("prediction") as batch:
        batch.drop_column("sample_key")
