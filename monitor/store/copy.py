"""PostgreSQL bulk load of prediction rows: one COPY buffer per batch.

The rows (already serialized) become one binary-format COPY payload, copied straight
into `prediction` inside a savepoint: the common case (no request id logged before)
costs one COPY. When the unique (model, request_id) index rejects a row (a retried
batch, or a concurrent writer that logged the id first), the savepoint is rolled back
and the payload goes through a temporary table and
``INSERT .. SELECT .. ON CONFLICT DO NOTHING``. Either way no (model, request_id) is
stored twice and the count of new rows is exact. (Each fallback leaves one
duplicate-key error in the PostgreSQL server log.)
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pg_errors

if TYPE_CHECKING:
    from monitor.intake.prepare import LogRow

log = logging.getLogger(__name__)

_TEMP = "_monitor_prediction_copy"
#: fixed-size fields first, so one struct call covers them
_COLUMNS = "ts, received_at, model, request_id, features, prediction, attributes"
_COPY = "COPY {table} (" + _COLUMNS + ") FROM STDIN (FORMAT BINARY)"
_NULL = struct.pack("!i", -1)
_SAVEPOINT = "monitor_prediction_copy"
_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_TRAILER = struct.pack("!h", -1)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_FIXED = struct.Struct("!hiqiqi")  # field count; ts; received_at; length of model
_LENGTH = struct.Struct("!i").pack
#: errors that mean "another writer got there first": retry through ON CONFLICT
_RACES = (pg_errors.UniqueViolation, pg_errors.DeadlockDetected)


def copy_payload(rows: Sequence[LogRow], now: datetime, *, attributes: bool = True) -> bytes:
    """The binary COPY data of `rows` (columns as in `_COLUMNS`): nothing to escape.

    `attributes=False` leaves the last column out (a log at revision 0002 or older)."""
    received = (now - _PG_EPOCH) // _MICROSECOND
    fixed, length = _FIXED.pack, _LENGTH
    fields = 7 if attributes else 6
    names: dict[str, bytes] = {}
    parts = [_HEADER]
    append = parts.append
    for model, request_id, ts, features, prediction, attrs in rows:
        name = names.get(model)
        if name is None:
            name = names[model] = model.encode()
        rid = request_id.encode()
        append(fixed(fields, 8, (ts - _PG_EPOCH) // _MICROSECOND, 8, received, len(name)))
        append(name)
        append(length(len(rid)))
        append(rid)
        append(length(len(features)))
        append(features)
        append(length(len(prediction)))
        append(prediction)
        if attributes:
            if attrs is None:
                append(_NULL)
            else:
                append(length(len(attrs)))
                append(attrs)
    append(_TRAILER)
    return b"".join(parts)


def copy_postgres(raw: psycopg.Connection[Any], rows: Sequence[LogRow], now: datetime) -> int:
    """Load `rows` into `prediction` on a psycopg connection in a transaction; new rows."""
    payload = copy_payload(rows, now)
    with raw.cursor() as cur:
        cur.execute(f"SAVEPOINT {_SAVEPOINT}")
        try:
            with cur.copy(_COPY.format(table="prediction")) as copy:
                copy.write(payload)
        except _RACES as err:
            log.debug("direct COPY hit a logged request id (%s); using ON CONFLICT", err)
            cur.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
            return _copy_via_temp(cur, payload)
        inserted = cur.rowcount
        cur.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        return inserted


def _copy_via_temp(cur: psycopg.Cursor[Any], payload: bytes) -> int:
    cur.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_TEMP} (model text, request_id text,"
        " ts timestamptz, received_at timestamptz, features text, prediction text,"
        " attributes text)"
        " ON COMMIT DELETE ROWS"
    )
    with cur.copy(_COPY.format(table=_TEMP)) as copy:
        copy.write(payload)
    cur.execute(
        f"INSERT INTO prediction ({_COLUMNS})"
        f" SELECT ts, received_at, model, request_id, features::json, prediction::json,"
        f" attributes::json"
        f" FROM {_TEMP} ON CONFLICT (model, request_id) DO NOTHING"
    )
    inserted = cur.rowcount
    cur.execute(f"TRUNCATE {_TEMP}")
    return inserted
