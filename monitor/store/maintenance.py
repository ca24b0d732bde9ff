"""Upkeep of the time-partitioned prediction log on PostgreSQL: partitions and retention.

The log is partitioned by range of `ts`, one partition per UTC day. A day fits how the
log is used: windows are hours to a day, so a run reads one or two partitions;
retention is counted in days, so it drops whole partitions, and a day of even a few
million rows indexes and drops quickly. `ensure_partitions` creates the days ahead
(the daemon's maintenance job calls it daily); rows that arrive for a day without a
partition (late, backfilled or mis-clocked) land in the DEFAULT partition instead of
failing, and are moved into their day's partition once it is created. `purge_log`
drops the partitions wholly older than the retention cutoff instead of deleting rows.

SQLite keeps one unpartitioned table: partition upkeep is a no-op there and retention
deletes rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from psycopg.errors import LockNotAvailable
from sqlalchemy import Connection, Engine, delete, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from monitor.store.tables import DEFAULT_PARTITION, PARTITION_PREFIX, Prediction, PredictionKey

log = logging.getLogger(__name__)

#: days of partitions kept ready after today
AHEAD = timedelta(days=7)
#: how long a partition change waits for a lock before giving up until the next run:
#: a long query holding the log must not queue ingest behind a waiting DROP or CREATE
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True)
class PartitionUpkeep:
    """What `ensure_partitions` did: days created, rows moved out of DEFAULT, days it
    could not lock (retried on the next run)."""

    created: tuple[date, ...]
    moved_rows: int
    skipped: tuple[date, ...]


def partition_name(day: date) -> str:
    """The partition holding the rows of UTC `day`."""
    return f"{PARTITION_PREFIX}{day:%Y%m%d}"


def partition_days(conn: Connection) -> list[date]:
    """The days the prediction log has a partition for, oldest first."""
    names = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'prediction'::regclass"
        )
    ).scalars()
    days = []
    for name in names:
        digits = name.removeprefix(PARTITION_PREFIX)
        if digits != name and len(digits) == 8 and digits.isdigit():
            days.append(datetime.strptime(digits, "%Y%m%d").replace(tzinfo=UTC).date())
    return sorted(days)


def ensure_partitions(
    engine: Engine, now: datetime, *, ahead: timedelta = AHEAD
) -> PartitionUpkeep:
    """Create the log's partitions from yesterday to `now + ahead` (UTC days).

    Rows waiting in the DEFAULT partition for a day between the oldest partition and
    the last one created are moved into their day's new partition. Each day is one
    short transaction; a day whose locks are not granted within LOCK_TIMEOUT is
    skipped and reported (the next run creates it). A no-op on SQLite.
    """
    if engine.dialect.name != "postgresql":
        return PartitionUpkeep((), 0, ())
    today = now.astimezone(UTC).date()
    last = (now + ahead).astimezone(UTC).date()
    wanted = {today + timedelta(days=n) for n in range(-1, (last - today).days + 1)}
    with engine.connect() as conn:
        existing = set(partition_days(conn))
        oldest = min(existing | wanted)
        waiting = conn.execute(
            text(
                f"SELECT DISTINCT (date_trunc('day', ts AT TIME ZONE 'UTC'))::date"
                f" FROM {DEFAULT_PARTITION} WHERE ts >= :low AND ts < :high"
            ),
            {"low": _midnight(oldest), "high": _midnight(last + timedelta(days=1))},
        ).scalars()
        wanted |= set(waiting)
    created, skipped, moved = [], [], 0
    for day in sorted(wanted - existing):
        try:
            with engine.begin() as conn:
                conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                rows = _create_partition(conn, day)
        except OperationalError as err:
            if not isinstance(err.orig, LockNotAvailable):
                raise
            log.warning("partition for %s not created: the log is busy (%s)", day, err.orig)
            skipped.append(day)
            continue
        if rows is not None:
            created.append(day)
            moved += rows
    if created:
        log.info(
            "prediction log: created %d daily partitions (%s .. %s), moved %d rows from %s",
            len(created),
            created[0],
            created[-1],
            moved,
            DEFAULT_PARTITION,
        )
    return PartitionUpkeep(tuple(created), moved, tuple(skipped))


def _create_partition(conn: Connection, day: date) -> int | None:
    """Create and attach `day`'s partition, moving that day's rows out of DEFAULT.

    Returns how many rows moved (None: another daemon created it meanwhile). Built
    beside the log and attached, not created as a partition: ATTACH takes a lock on
    the log that reads and writes pass (CREATE .. PARTITION OF would block them), and
    the CHECK spares it a scan of the new table.
    """
    name, low, high = partition_name(day), _midnight(day), _midnight(day + timedelta(days=1))
    params = {"low": low, "high": high}
    # one daemon at a time; a partition another one made meanwhile is left alone
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('monitor.prediction.partitions'))"))
    if conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is not None:
        return None
    conn.execute(
        text(f"CREATE TABLE {name} (LIKE prediction INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    )
    conn.execute(
        text(
            f"ALTER TABLE {name} ADD CONSTRAINT {name}_bounds"
            f" CHECK (ts >= '{low.isoformat()}' AND ts < '{high.isoformat()}')"
        )
    )
    # ATTACH refuses while DEFAULT holds a row of the day: move them first, with
    # writers to DEFAULT held off until the partition takes over
    conn.execute(text(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE"))
    moved = conn.execute(
        text(
            f"WITH gone AS (DELETE FROM {DEFAULT_PARTITION} WHERE ts >= :low AND ts < :high"
            f" RETURNING *) INSERT INTO {name} SELECT * FROM gone"
        ),
        params,
    ).rowcount
    conn.execute(
        text(
            f"ALTER TABLE prediction ATTACH PARTITION {name}"
            f" FOR VALUES FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
        )
    )
    conn.execute(text(f"ALTER TABLE {name} DROP CONSTRAINT {name}_bounds"))
    return int(moved or 0)


def purge_log(session: Session, cutoff: datetime) -> dict[str, int]:
    """Retention of the prediction log and its keys: rows older than `cutoff` go.

    PostgreSQL drops each daily partition that ends by the cutoff's UTC midnight (the
    partition holding the cutoff stays until the next day, so rows are kept up to a
    day longer than retention) and deletes older rows from DEFAULT; a partition whose
    lock is not granted within LOCK_TIMEOUT stays, with every newer row, until the
    next run. SQLite deletes rows older than `cutoff`. Returns row counts by table and
    the partitions dropped under ``prediction_partitions``.
    """
    if session.get_bind().dialect.name != "postgresql":
        rows = session.execute(delete(Prediction).where(Prediction.ts < cutoff)).rowcount
        keys = session.execute(delete(PredictionKey).where(PredictionKey.ts < cutoff)).rowcount
        return {"prediction": rows or 0, "prediction_key": keys or 0}
    conn = session.connection()
    limit = _midnight(cutoff.astimezone(UTC).date())
    rows = dropped = 0
    conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    for day in partition_days(conn):
        if _midnight(day + timedelta(days=1)) > limit:
            break
        name = partition_name(day)
        savepoint = conn.begin_nested()
        try:
            count = conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
            conn.execute(text(f"DROP TABLE {name}"))
        except OperationalError as err:
            savepoint.rollback()
            if not isinstance(err.orig, LockNotAvailable):
                raise
            log.warning("retention: %s not dropped, the log is busy (%s)", name, err.orig)
            limit = _midnight(day)  # keys and DEFAULT rows of the days kept stay too
            break
        savepoint.commit()
        rows, dropped = rows + count, dropped + 1
    conn.execute(text("SET LOCAL lock_timeout TO DEFAULT"))
    rows += conn.execute(
        text(f"DELETE FROM {DEFAULT_PARTITION} WHERE ts < :limit"), {"limit": limit}
    ).rowcount
    keys = conn.execute(delete(PredictionKey).where(PredictionKey.ts < limit)).rowcount
    return {"prediction": rows, "prediction_partitions": dropped, "prediction_key": keys or 0}


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
