"""partitioned prediction log: daily range partitions on PostgreSQL, prediction_key

PostgreSQL: `prediction` becomes a table partitioned by range of `ts`, one partition
per UTC day (``prediction_pYYYYMMDD``) and a DEFAULT partition, with a BRIN index on
`ts`; its primary key becomes (id, ts) because every unique index of a partitioned
table must hold the partition key. Duplicate request ids are refused by the new,
unpartitioned `prediction_key` (model, request_id, ts) instead of a unique index on
the log. Existing rows are copied with their ids (the id sequence carries on), one
partition is created for every day that holds rows and for the days around today.

SQLite stays one table: the unique index moves to `prediction_key` the same way.

The partition names and bounds are written out here on purpose: a migration must
not change when `monitor.store.maintenance` does.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 02:25:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from alembic import context, op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: days created after today (the daemon's maintenance job keeps creating them ahead)
AHEAD_DAYS = 7


def upgrade() -> None:
    _create_keys()
    if op.get_bind().dialect.name == "postgresql":
        _partition_log()
    else:
        with op.batch_alter_table("prediction", schema=None) as batch_op:
            batch_op.drop_constraint("uq_prediction_model_request_id", type_="unique")
            batch_op.create_index("ix_prediction_ts", ["ts"], unique=False, postgresql_using="brin")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _unpartition_log()
    else:
        with op.batch_alter_table("prediction", schema=None) as batch_op:
            batch_op.drop_index("ix_prediction_ts", postgresql_using="brin")
            batch_op.create_unique_constraint(
                "uq_prediction_model_request_id", ["model", "request_id"]
            )
    with op.batch_alter_table("prediction_key", schema=None) as batch_op:
        batch_op.drop_index("ix_prediction_key_ts", postgresql_using="brin")
    op.drop_table("prediction_key")


def _create_keys() -> None:
    op.create_table(
        "prediction_key",
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=256), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model", "request_id", name=op.f("pk_prediction_key")),
    )
    # the log is unique on (model, request_id) at 0001: every row has exactly one key
    op.execute(
        "INSERT INTO prediction_key (model, request_id, ts) "
        "SELECT model, request_id, ts FROM prediction"
    )
    with op.batch_alter_table("prediction_key", schema=None) as batch_op:
        batch_op.create_index(
            "ix_prediction_key_ts", ["ts"], unique=False, postgresql_using="brin"
        )


def _partition_log() -> None:
    if context.is_offline_mode():
        raise RuntimeError(
            "revision 0002 creates one partition per day present in the prediction log: "
            "run it against the database (`monitor db upgrade`), not with --sql"
        )
    bind = op.get_bind()
    op.execute("ALTER TABLE prediction RENAME TO prediction_0001")
    op.execute("ALTER TABLE prediction_0001 DROP CONSTRAINT uq_prediction_model_request_id")
    op.execute("ALTER TABLE prediction_0001 RENAME CONSTRAINT pk_prediction TO pk_prediction_0001")
    op.execute("DROP INDEX ix_prediction_model_ts")
    op.execute(
        "CREATE TABLE prediction ("
        " id BIGINT NOT NULL DEFAULT nextval('prediction_id_seq'),"
        " model VARCHAR(64) NOT NULL,"
        " request_id VARCHAR(256) NOT NULL,"
        " ts TIMESTAMP WITH TIME ZONE NOT NULL,"
        " received_at TIMESTAMP WITH TIME ZONE NOT NULL,"
        " features JSON NOT NULL,"
        " prediction JSON NOT NULL"
        ") PARTITION BY RANGE (ts)"
    )
    op.execute("ALTER SEQUENCE prediction_id_seq OWNED BY prediction.id")
    op.execute("CREATE TABLE prediction_default PARTITION OF prediction DEFAULT")
    logged = bind.execute(
        sa.text(
            "SELECT DISTINCT (date_trunc('day', ts AT TIME ZONE 'UTC'))::date FROM prediction_0001"
        )
    ).scalars()
    today = datetime.now(UTC).date()
    days = set(logged) | {today + timedelta(days=n) for n in range(-1, AHEAD_DAYS + 1)}
    for day in sorted(days):
        if day < date.max:  # the last representable day stays in DEFAULT
            op.execute(_create_partition(day))
    op.execute(
        "INSERT INTO prediction (id, model, request_id, ts, received_at, features, prediction)"
        " SELECT id, model, request_id, ts, received_at, features, prediction"
        " FROM prediction_0001"
    )
    copied = bind.execute(sa.text("SELECT count(*) FROM prediction")).scalar_one()
    kept = bind.execute(sa.text("SELECT count(*) FROM prediction_0001")).scalar_one()
    if copied != kept:  # cannot happen inside one transaction; checked all the same
        raise RuntimeError(f"partitioning copied {copied} of {kept} prediction rows")
    op.execute("DROP TABLE prediction_0001")
    # indexes after the copy: one build per partition instead of row-by-row upkeep
    op.execute("ALTER TABLE prediction ADD CONSTRAINT pk_prediction PRIMARY KEY (id, ts)")
    op.execute("CREATE INDEX ix_prediction_model_ts ON prediction (model, ts)")
    op.execute("CREATE INDEX ix_prediction_ts ON prediction USING brin (ts)")


def _create_partition(day: date) -> str:
    low = datetime(day.year, day.month, day.day, tzinfo=UTC)
    high = low + timedelta(days=1)
    return (
        f"CREATE TABLE prediction_p{day:%Y%m%d} PARTITION OF prediction"
        f" FOR VALUES FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
    )


def _unpartition_log() -> None:
    bind = op.get_bind()
    op.execute("ALTER TABLE prediction RENAME TO prediction_0002")
    op.execute("ALTER TABLE prediction_0002 RENAME CONSTRAINT pk_prediction TO pk_prediction_0002")
    op.execute("ALTER INDEX ix_prediction_model_ts RENAME TO ix_prediction_model_ts_0002")
    op.execute("DROP INDEX ix_prediction_ts")
    op.create_table(
        "prediction",
        sa.Column(
            "id",
            sa.BigInteger(),
            nullable=False,
            server_default=sa.text("nextval('prediction_id_seq')"),
        ),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=256), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("prediction", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prediction")),
        sa.UniqueConstraint("model", "request_id", name=op.f("uq_prediction_model_request_id")),
    )
    op.execute("ALTER SEQUENCE prediction_id_seq OWNED BY prediction.id")
    op.execute(
        "INSERT INTO prediction (id, model, request_id, ts, received_at, features, prediction)"
        " SELECT id, model, request_id, ts, received_at, features, prediction"
        " FROM prediction_0002"
    )
    copied = bind.execute(sa.text("SELECT count(*) FROM prediction")).scalar_one()
    kept = bind.execute(sa.text("SELECT count(*) FROM prediction_0002")).scalar_one()
    if copied != kept:
        raise RuntimeError(f"unpartitioning copied {copied} of {kept} prediction rows")
    op.execute("DROP TABLE prediction_0002")  # its partitions go with it
    op.execute("CREATE INDEX ix_prediction_model_ts ON prediction (model, ts)")
