"""Repository functions for the prediction log, labels and quarantine.

The only code that reads or writes the `prediction`, `prediction_key`, `label` and
`quarantine` tables. Inserts are built for throughput from rows serialized once.
A row is logged only when its (model, request_id) enters `prediction_key` first: the
log itself is partitioned by time on PostgreSQL, where no unique index can span
partitions, so the key table is what keeps a request id from being logged twice, on
both databases. A request id already logged is kept, not replaced.

PostgreSQL: the keys and then the rows are loaded with binary COPY inside a savepoint
(the common case, no key seen before: two COPYs). When a key is refused (a retried
batch, or a concurrent writer that logged it first) the savepoint is rolled back and
the batch goes through a temporary table: ``INSERT .. ON CONFLICT DO NOTHING
RETURNING`` on the keys decides which rows are new. A batch of at most `SMALL_BATCH`
rows takes one statement instead (the rows as one JSON document, the same ON CONFLICT
decision): its cost is round trips, not rows. SQLite: ``INSERT OR IGNORE ..
RETURNING`` on the keys, then the new rows.

Every row carries its sampling key (`sample_key`); a window's sample is drawn here, in
the database (`sample_log_window`, and per stratum `class_counts` /
`attribute_candidates`), so a run reads `sample_size` rows whatever its window holds.
"""

from __future__ import annotations

import hashlib
import logging
import math
import struct
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
from psycopg import errors as pg_errors
from sqlalchemy import (
    Engine,
    Text,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from monitor import clock
from monitor.store.copy import COLUMNS as _ROW_COLUMNS
from monitor.store.copy import copy_payload
from monitor.store.tables import Label, LabelAudit, Prediction, PredictionKey, Quarantine

if TYPE_CHECKING:  # the records are duck-typed here, so intake and store import freely
    from monitor.intake.prepare import LogRow
    from monitor.intake.records import LabelRecord, Rejection

log = logging.getLogger(__name__)

_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=_OPTS)


def sample_key(model: str, request_id: str) -> int:
    """The row's sampling key: the first 8 bytes of md5(model, U+001F, request_id) as a
    signed big-endian integer (migration 0005 computes the same in SQL).

    Uniform over 64 bits whatever the ids look like, and a function of the request
    alone: a window's sample (its rows with the smallest keys) is reproducible.
    """
    digest = hashlib.md5(
        f"{model}\x1f{request_id}".encode("utf-8", "surrogatepass"), usedforsecurity=False
    ).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _sqlite_ts(ts: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores: naive UTC with microseconds."""
    ts = ts.astimezone(UTC)
    return (
        f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d} {ts.hour:02d}:{ts.minute:02d}:"
        f"{ts.second:02d}.{ts.microsecond:06d}"
    )


def insert_log_rows(session: Session, rows: Sequence[LogRow]) -> int:
    """Append pre-serialized rows (model, request_id, ts, features JSON, prediction JSON).

    Returns how many were new; a (model, request_id) already logged, or repeated in
    `rows`, is kept once (its first row), not replaced.
    """
    stored = log_rows(session, rows)
    return len(rows) if stored is None else len(stored)


def log_rows(session: Session, rows: Sequence[LogRow]) -> set[tuple[str, str]] | None:
    """`insert_log_rows`, telling which rows were new: the (model, request_id) keys
    logged, or None when every row was (no key repeated, none logged before)."""
    if not rows:
        return set()
    conn = session.connection()
    raw = conn.connection.driver_connection
    now = clock.utcnow()
    if conn.dialect.name == "postgresql":
        return _insert_postgres(raw, rows, now)
    return _insert_sqlite(raw, rows, now)


# -- PostgreSQL -----------------------------------------------------------------------

_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_KEY_COPY = "COPY prediction_key (ts, model, request_id) FROM STDIN (FORMAT BINARY)"
_ROW_COPY = "COPY {table} (" + _ROW_COLUMNS + ") FROM STDIN (FORMAT BINARY)"
_KEY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_KEY_FIXED = struct.Struct("!hiqi")  # 3 fields; ts; length of model
_LENGTH = struct.Struct("!i").pack
_SAVEPOINT = "monitor_prediction_keys"
_BATCH_TABLE = "_monitor_prediction_batch"
#: errors that mean "this key is logged already": decide row by row with ON CONFLICT
_RACES = (pg_errors.UniqueViolation, pg_errors.DeadlockDetected)


def _key_payload(rows: Sequence[LogRow]) -> bytes:
    """The binary COPY data of the rows' (ts, model, request_id)."""
    fixed, length = _KEY_FIXED.pack, _LENGTH
    names: dict[str, bytes] = {}
    parts = [_KEY_HEADER]
    append = parts.append
    for model, request_id, ts, *_ in rows:
        name = names.get(model)
        if name is None:
            name = names[model] = model.encode()
        rid = request_id.encode()
        append(fixed(3, 8, (ts - _PG_EPOCH) // _MICROSECOND, len(name)))
        append(name)
        append(length(len(rid)))
        append(rid)
    append(b"\xff\xff")
    return b"".join(parts)


#: batches up to this many rows go in one statement (`_insert_small_postgres`)
SMALL_BATCH = 64

_SMALL_INSERT = (
    "WITH batch AS (SELECT * FROM json_to_recordset(%s::json)"
    " AS b(ts timestamptz, sample_key bigint, model text, request_id text, features json,"
    " prediction json, attributes json, n bigint)),"
    " fresh AS (INSERT INTO prediction_key (model, request_id, ts)"
    " SELECT DISTINCT ON (model, request_id) model, request_id, ts FROM batch"
    " ORDER BY model, request_id, n ON CONFLICT DO NOTHING RETURNING model, request_id)"
    f" INSERT INTO prediction ({_ROW_COLUMNS})"
    " SELECT DISTINCT ON (b.model, b.request_id) b.ts, %s, b.sample_key, b.model, b.request_id,"
    " b.features, b.prediction, b.attributes"
    " FROM batch b JOIN fresh f ON f.model = b.model AND f.request_id = b.request_id"
    " ORDER BY b.model, b.request_id, b.n RETURNING model, request_id"
)


def _insert_small_postgres(
    raw: psycopg.Connection[Any], rows: Sequence[LogRow], now: datetime
) -> set[tuple[str, str]] | None:
    """A few rows in one statement, one round trip instead of a savepoint and two COPYs
    (the rows travel as one JSON document, their features and prediction JSON embedded
    as they are): the keys that are new decide which rows are logged, the first row of
    a repeated key."""
    fragment = orjson.Fragment
    document = _dumps([
        {
            "n": n, "ts": ts, "sample_key": sample_key(model, request_id), "model": model,
            "request_id": request_id, "features": fragment(bytes(features)),
            "prediction": fragment(prediction),
            "attributes": None if attributes is None else fragment(attributes),
        }
        for n, (model, request_id, ts, features, prediction, attributes) in enumerate(rows)
    ])
    with raw.cursor() as cur:
        cur.execute(_SMALL_INSERT, (document.decode(), now))
        fresh = {(model, request_id) for model, request_id in cur.fetchall()}
    return None if len(fresh) == len(rows) else fresh


def _has_nul_escape(row: LogRow) -> bool:
    """Whether a row's JSON holds a \\u0000 escape: `json` columns keep it as sent (COPY
    stores it), but `json_to_recordset` refuses to read it, so such a batch takes COPY."""
    # bytes(): features may be a memoryview, whose `in` compares single bytes
    return any(part is not None and b"\\u0000" in bytes(part) for part in row[3:6])


def _insert_postgres(
    raw: psycopg.Connection[Any], rows: Sequence[LogRow], now: datetime
) -> set[tuple[str, str]] | None:
    if len(rows) <= SMALL_BATCH and not any(_has_nul_escape(row) for row in rows):
        return _insert_small_postgres(raw, rows, now)
    keys = _key_payload(rows)
    with raw.cursor() as cur:
        cur.execute(f"SAVEPOINT {_SAVEPOINT}")
        try:
            with cur.copy(_KEY_COPY) as copy:
                copy.write(keys)
        except _RACES as err:
            log.debug("a request id of the batch is logged already (%s); using ON CONFLICT", err)
            cur.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
            return _insert_new_postgres(cur, copy_payload(rows, now))
        cur.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        with cur.copy(_ROW_COPY.format(table="prediction")) as copy:
            copy.write(copy_payload(rows, now))
        return None


def _insert_new_postgres(cur: psycopg.Cursor[Any], payload: bytes) -> set[tuple[str, str]]:
    """Log the rows whose key is new (the first row of a key repeated in the batch)."""
    cur.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_BATCH_TABLE} (ts timestamptz,"
        " received_at timestamptz, sample_key bigint, model text, request_id text, features text,"
        " prediction text, attributes text, n bigint GENERATED ALWAYS AS IDENTITY)"
        " ON COMMIT DELETE ROWS"
    )
    with cur.copy(_ROW_COPY.format(table=_BATCH_TABLE)) as copy:
        copy.write(payload)
    cur.execute(
        f"WITH fresh AS ("
        f" INSERT INTO prediction_key (model, request_id, ts)"
        f" SELECT DISTINCT ON (model, request_id) model, request_id, ts FROM {_BATCH_TABLE}"
        f" ORDER BY model, request_id, n"
        f" ON CONFLICT DO NOTHING RETURNING model, request_id)"
        f" INSERT INTO prediction ({_ROW_COLUMNS})"
        f" SELECT DISTINCT ON (b.model, b.request_id) b.ts, b.received_at, b.sample_key, b.model,"
        f" b.request_id, b.features::json, b.prediction::json, b.attributes::json"
        f" FROM {_BATCH_TABLE} b JOIN fresh f"
        f" ON f.model = b.model AND f.request_id = b.request_id"
        f" ORDER BY b.model, b.request_id, b.n"
        f" RETURNING model, request_id"
    )
    fresh = {(model, request_id) for model, request_id in cur.fetchall()}
    cur.execute(f"TRUNCATE {_BATCH_TABLE}")
    return fresh


# -- SQLite ---------------------------------------------------------------------------

#: rows per key statement: 3 parameters each, well under SQLite's 32,766
_SQLITE_CHUNK = 2000


def _insert_sqlite(raw: Any, rows: Sequence[LogRow], now: datetime) -> set[tuple[str, str]]:
    received = _sqlite_ts(now)
    stamps = [_sqlite_ts(row[2]) for row in rows]
    cursor = raw.cursor()
    try:
        fresh: set[tuple[str, str]] = set()
        for start in range(0, len(rows), _SQLITE_CHUNK):
            chunk = range(start, min(start + _SQLITE_CHUNK, len(rows)))
            params: list[Any] = []
            for i in chunk:
                params += (rows[i][0], rows[i][1], stamps[i])
            cursor.execute(
                "INSERT OR IGNORE INTO prediction_key (model, request_id, ts) VALUES "
                + ",".join(["(?, ?, ?)"] * len(chunk))
                + " RETURNING model, request_id",
                params,
            )
            fresh.update(cursor.fetchall())
        values = []
        for (model, request_id, _ts, features, prediction, attrs), ts in zip(rows, stamps, strict=True):
            if (model, request_id) in fresh:
                fresh.discard((model, request_id))  # the first row of a repeated key wins
                values.append(
                    (model, request_id, ts, received, str(features, "utf-8"), str(prediction, "utf-8"),
                     None if attrs is None else str(attrs, "utf-8"), sample_key(model, request_id))
                )
        cursor.executemany(
            "INSERT INTO prediction (model, request_id, ts, received_at, features,"
            " prediction, attributes, sample_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            values,
        )
        return {(value[0], value[1]) for value in values}
    finally:
        cursor.close()


def insert_labels(session: Session, records: Sequence[LabelRecord]) -> int:
    """Store labels; returns how many were stored (new, or corrected).

    A label for a request id that already has one with another value is a correction:
    the new value replaces the old one and a `label_audit` row keeps both. The same
    value sent again is a duplicate (not counted). Within a batch the first label per
    request id wins.
    """
    if not records:
        return 0
    first: dict[tuple[str, str], LabelRecord] = {}
    for r in records:
        first.setdefault((r.model, r.request_id), r)
    existing = _stored_labels(session, list(first))
    now = clock.utcnow()
    fresh = [r for key, r in first.items() if key not in existing]
    corrected = [r for key, r in first.items() if key in existing and existing[key] != r.label]
    inserted = _insert_new_labels(session, fresh, now)
    for r in corrected:
        session.execute(
            update(Label)
            .where(Label.model == r.model, Label.request_id == r.request_id)
            .values(label=r.label, received_at=now)
        )
    if corrected:
        session.connection().execute(
            insert(LabelAudit.__table__),
            [
                {
                    "model": r.model,
                    "request_id": r.request_id,
                    "old_label": existing[(r.model, r.request_id)],
                    "new_label": r.label,
                    "changed_at": now,
                }
                for r in corrected
            ],
        )
        log.info("%d label(s) corrected (old values kept in label_audit)", len(corrected))
    return inserted + len(corrected)


def _stored_labels(session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """The labels already stored for (model, request_id) keys."""
    by_model: dict[str, list[str]] = {}
    for model, request_id in keys:
        by_model.setdefault(model, []).append(request_id)
    found: dict[tuple[str, str], Any] = {}
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        # never a prepared statement: its generic plan, made while the table was small,
        # would scan the whole table long after (until an ANALYZE: seconds per batch on
        # a large label table when autovacuum is off); planned each time, it probes the
        # unique (model, request_id) index
        with conn.connection.driver_connection.cursor() as cur:
            for model, ids in by_model.items():
                cur.execute(
                    "SELECT request_id, label FROM label WHERE model = %s AND request_id = ANY(%s)",
                    (model, ids), prepare=False,
                )
                found.update(((model, rid), value) for rid, value in cur.fetchall())
        return found
    for model, ids in by_model.items():
        for i in range(0, len(ids), 500):
            stmt = select(Label.request_id, Label.label).where(
                Label.model == model, Label.request_id.in_(ids[i:i + 500])
            )
            found.update(((model, rid), value) for rid, value in session.execute(stmt))
    return found


def _insert_new_labels(session: Session, records: Sequence[LabelRecord], now: datetime) -> int:
    """Insert labels for request ids without one (a concurrent writer's first wins)."""
    if not records:
        return 0
    conn = session.connection()
    rows = [
        {"model": r.model, "request_id": r.request_id, "label": r.label, "received_at": now}
        for r in records
    ]
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(Label.__table__).on_conflict_do_nothing(
            index_elements=["model", "request_id"]
        )
    else:
        stmt = insert(Label.__table__).prefix_with("OR IGNORE")
    # executemany rowcount is -1 on psycopg; RETURNING counts the rows really inserted
    return len(conn.execute(stmt.returning(Label.__table__.c.id), rows).all())


def quarantine_rows(session: Session, rejected: Iterable[Rejection], *, source: str) -> int:
    """Keep rejected rows with their reason; returns how many were stored.

    `source` says where they were rejected (http, file:<path>, client, run:<id>);
    a rejection that came from elsewhere keeps that origin in its detail.
    """
    now = clock.utcnow()
    rows = []
    for r in rejected:
        detail = r.detail if r.source in ("", source) else f"[{r.source}] {r.detail}"
        model = r.model if r.model is None or len(r.model) <= 64 else None
        rows.append(
            {
                "model": model if model is None or storable_text(model) == model else None,
                "ts": r.ts,
                "source": storable_text(source)[:512],
                "received_at": now,
                "reason": storable_text(r.reason)[:64],
                "detail": storable_text(detail),
                "raw": storable_text(r.raw),
            }
        )
    if rows:
        session.connection().execute(insert(Quarantine.__table__), rows)
    return len(rows)


def known_rejections(session: Session, source: str, raws: Iterable[str]) -> set[str]:
    """Which of `raws` (as given) are already quarantined from `source`: a rerun of a
    file load quarantines nothing twice."""
    wanted: dict[str, str] = {storable_text(raw): raw for raw in raws}
    found: set[str] = set()
    keys = list(wanted)
    for i in range(0, len(keys), 500):
        stmt = select(Quarantine.raw).where(
            Quarantine.source == storable_text(source)[:512], Quarantine.raw.in_(keys[i:i + 500])
        )
        found.update(wanted[raw] for raw in session.execute(stmt).scalars() if raw in wanted)
    return found


def storable_text(text: str) -> str:
    """`text` as any database's text column takes it: a NUL becomes the JSON escape
    ``\\u0000`` and a lone surrogate a backslash escape (PostgreSQL refuses both)."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode()
    return text


def iter_log_window(
    engine: Engine,
    model: str,
    start: datetime,
    end: datetime,
    *,
    batch: int = 5000,
    attributes: bool = False,
) -> Iterator[tuple[str, datetime, dict[str, Any], Any, Any, dict[str, Any] | None]]:
    """Stream (request_id, ts, features, prediction, label, attributes) of [start, end)
    in log order; attributes are read only when asked for (else None).

    Labels are joined here, so a label that arrived before its prediction counts.
    """
    columns = [Prediction.request_id, Prediction.ts, Prediction.features, Prediction.prediction, Label.label]
    if attributes:
        columns.append(Prediction.attributes)
    stmt = (
        select(*columns)
        .outerjoin(
            Label, and_(Label.model == Prediction.model, Label.request_id == Prediction.request_id)
        )
        .where(Prediction.model == model, Prediction.ts >= start, Prediction.ts < end)
        .order_by(Prediction.ts, Prediction.id)
    )
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=batch).execute(stmt)
        for row in result:
            extra = row[5] if attributes else None
            yield row[0], row[1], row[2], row[3], row[4], extra


_MASK64 = (1 << 64) - 1


def rehash_key(key: int | None, seed: int) -> int | None:
    """SQLite's ``monitor_rehash``: `key` mixed with `seed` (splitmix64's finalizer), as
    a signed 64-bit integer. PostgreSQL uses its own ``hashint8extended`` instead: each
    database draws a reproducible sample per seed, not the same one."""
    if key is None:
        return None
    z = (key + (seed + 1) * 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return z - (1 << 64) if z >> 63 else z


#: PostgreSQL's `sample_key` of a row logged before revision 0005 (same value as ingest's)
_PG_KEY = "('x' || left(md5(model || chr(31) || request_id), 16))::bit(64)::bigint"


def effective_key(dialect: str) -> Any:
    """A row's sampling key in SQL: the stored one, or for a row logged before revision
    0005 (which added the column without rewriting the log) the same value computed
    from its model and request id: md5 in PostgreSQL, `sample_key` itself in SQLite."""
    if dialect == "postgresql":
        computed: Any = text(_PG_KEY)
    else:
        computed = func.monitor_sample_key(Prediction.model, Prediction.request_id)
    return func.coalesce(Prediction.sample_key, computed)


def _sample_order(engine: Engine, seed: int) -> Any:
    """What a window's sample is ordered by: the key itself for seed 0 (the default),
    else the key re-hashed with the seed (another, independent uniform sample)."""
    key = effective_key(engine.dialect.name)
    if not seed:
        return key
    function = "hashint8extended" if engine.dialect.name == "postgresql" else "monitor_rehash"
    return getattr(func, function)(key, int(seed))


_KEY_MIN, _KEY_MAX, _KEY_SPAN = -(2**63), 2**63 - 1, 2**64


def key_bound(count: int, wanted: int) -> int | None:
    """A sampling key up to which (inclusive) a stratum of `count` rows almost surely holds
    at least `wanted` keys (None: `wanted` is too close to `count`, rank the whole stratum).

    The keys are uniform over the 64-bit range, so the number up to the bound is binomial
    with mean `wanted` plus a margin of five standard deviations (and 10): fewer fall
    under it once in millions of draws, and the caller then ranks the stratum whole.
    Ranking only the keys up to the bound gives the same rows as ranking them all
    whenever at least `wanted` are up to it, and lets the database sort a few times
    `wanted` rows instead of the whole stratum."""
    if wanted <= 0:
        return _KEY_MIN
    if count <= wanted:
        return None
    share = (wanted + 5 * math.sqrt(wanted) + 10) / count
    if share >= 1:
        return None
    return _KEY_MIN + math.ceil(share * _KEY_SPAN) - 1


def sample_log_window(
    engine: Engine,
    model: str,
    start: datetime,
    end: datetime,
    size: int,
    *,
    seed: int = 0,
    attributes: bool = False,
    quotas: tuple[str, dict[int, int]] | None = None,
    counts: dict[int, int] | None = None,
) -> tuple[int, list[tuple[str, datetime, dict[str, Any], Any, Any, dict[str, Any] | None]]]:
    """(rows logged in [start, end), the window's sample drawn in the database with its
    labels joined, in log order), on one connection.

    The sample is the `size` rows of [start, end) with the smallest `sample_key`
    (re-hashed with a non-zero `seed`): a uniform sample without replacement, as the
    keys are uniform hashes of the request ids, and the same one every time the window
    is read. Only those rows leave the database; the label join runs on them alone.

    With `quotas` (task, {class: rows}), each predicted class gives its quota of smallest
    keys; with the classes' `counts` too, only keys up to each class's `key_bound` are
    ranked (the same rows, unless a class falls short: then it is drawn again unbounded).
    """
    count = select(func.count()).select_from(Prediction).where(
        Prediction.model == model, Prediction.ts >= start, Prediction.ts < end
    )
    bounds, wanted = None, 0
    if quotas is not None and counts:
        bounds = {k: key_bound(counts.get(k, 0), q) for k, q in quotas[1].items()}
        bounds = {k: b for k, b in bounds.items() if b is not None} or None
        wanted = sum(min(q, counts.get(k, 0)) for k, q in quotas[1].items())
    with engine.connect() as conn:
        rows = int(conn.execute(count).scalar_one())
        sample = _sample_rows(conn, sample_statement(
            engine, model, start, end, size, seed=seed, attributes=attributes, quotas=quotas,
            bounds=bounds), attributes)
        if bounds is not None and len(sample) < wanted:  # a class had too few keys under its bound
            log.info("model %s: the class-stratified sample came up short under its key bounds; "
                     "drawing it again over every row of the window (same sample, slower)", model)
            sample = _sample_rows(conn, sample_statement(
                engine, model, start, end, size, seed=seed, attributes=attributes, quotas=quotas),
                attributes)
    # a row logged between the two statements may be sampled but not counted
    return max(rows, len(sample)), sample


def _sample_rows(conn: Any, stmt: Any, attributes: bool) -> list[tuple[Any, ...]]:
    return [(row[0], row[1], row[2], row[3], row[4], row[5] if attributes else None)
            for row in conn.execute(stmt)]


#: the predicted class of a logged prediction, as `intake.sources._stratum` computes it
#: from the validated one: binary, P(positive) >= 0.5; multiclass, the class index or the
#: first highest score
_CLASS_SQL = {
    ("postgresql", "binary_classification"):
        "CASE WHEN (prediction::text)::float8 >= 0.5 THEN 1 ELSE 0 END",
    ("sqlite", "binary_classification"):
        "CASE WHEN CAST(prediction AS REAL) >= 0.5 THEN 1 ELSE 0 END",
    ("postgresql", "multiclass_classification"):
        "CASE WHEN json_typeof(prediction) = 'number' THEN (prediction::text)::int"
        " ELSE (SELECT (e.o - 1)::int FROM json_array_elements_text(prediction)"
        " WITH ORDINALITY AS e(v, o) ORDER BY e.v::float8 DESC, e.o LIMIT 1) END",
    ("sqlite", "multiclass_classification"):
        "CASE WHEN json_type(prediction) = 'integer' THEN CAST(prediction AS INTEGER)"
        " ELSE (SELECT CAST(e.key AS INTEGER) FROM json_each(prediction) AS e"
        " ORDER BY CAST(e.value AS REAL) DESC, e.key LIMIT 1) END",
}


def predicted_class(dialect: str, task: str) -> Any:
    """The SQL expression of a logged row's predicted class (classification tasks)."""
    return literal_column(_CLASS_SQL[(dialect, task)])


def class_counts(engine: Engine, model: str, task: str, start: datetime, end: datetime) -> dict[int, int]:
    """Rows of [start, end) per predicted class, counted in the database."""
    stratum = predicted_class(engine.dialect.name, task).label("stratum")
    stmt = (
        select(stratum, func.count())
        .where(Prediction.model == model, Prediction.ts >= start, Prediction.ts < end)
        .group_by(literal_column("stratum"))
    )
    with engine.connect() as conn:
        return {int(k): int(n) for k, n in conn.execute(stmt) if k is not None}


def _attribute_texts(dialect: str, names: Sequence[str]) -> list[Any]:
    """Each declared attribute of a logged row as its JSON text ('"F"', '40', 'null'),
    NULL when the row has none: the same text in both databases."""
    if dialect == "postgresql":
        return [cast(Prediction.attributes.op("->")(literal(name, Text)), Text) for name in names]
    paths = ['$."' + name.replace("\\", "\\\\").replace('"', '\\"') + '"' for name in names]
    return [Prediction.attributes.op("->", return_type=Text)(literal(path, Text)) for path in paths]


def attribute_counts(
    engine: Engine, model: str, names: Sequence[str], start: datetime, end: datetime
) -> list[tuple[tuple[str | None, ...], int]]:
    """Rows of [start, end) per combination of the attributes' JSON texts."""
    texts = _attribute_texts(engine.dialect.name, names)
    labelled = [t.label(f"a{i}") for i, t in enumerate(texts)]
    stmt = (
        select(*labelled, func.count())
        .where(Prediction.model == model, Prediction.ts >= start, Prediction.ts < end)
        .group_by(*(literal_column(f"a{i}") for i in range(len(texts))))
    )
    with engine.connect() as conn:
        return [(tuple(row[:-1]), int(row[-1])) for row in conn.execute(stmt)]


def attribute_candidates(
    engine: Engine,
    model: str,
    names: Sequence[str],
    start: datetime,
    end: datetime,
    per_value: int,
    *,
    seed: int = 0,
    counts: Sequence[tuple[tuple[str | None, ...], int]] | None = None,
) -> list[tuple[Any, ...]]:
    """For each combination of the attributes' JSON texts, its `per_value` rows of smallest
    (seeded) sampling key, labels joined: (request_id, ts, features, prediction, label,
    attributes, texts, key), in log order.

    With the combinations' `counts` (`attribute_counts`), only the keys up to each
    one's `key_bound` are ranked: the same rows, unless one falls short (then all are)."""
    if per_value <= 0:
        return []
    texts = _attribute_texts(engine.dialect.name, names)
    bounds = []
    for combination, rows in sorted(counts or (), key=lambda item: -item[1]):
        bound = key_bound(rows, per_value)
        if bound is not None:  # the most common first: most rows match the first test
            same = [t.is_(None) if v is None else t == v for t, v in zip(texts, combination, strict=True)]
            bounds.append((and_(*same), literal(bound)))
    with engine.connect() as conn:
        found = _attribute_candidates(conn, engine, model, texts, start, end, per_value, seed, bounds)
        if bounds and len(found) < sum(min(rows, per_value) for _, rows in counts or ()):
            log.info("model %s: the attribute-stratified sample came up short under its key "
                     "bounds; drawing it again over every row of the window (same sample, slower)",
                     model)
            found = _attribute_candidates(conn, engine, model, texts, start, end, per_value, seed, [])
    return found


def _attribute_candidates(
    conn: Any, engine: Engine, model: str, texts: list[Any], start: datetime, end: datetime,
    per_value: int, seed: int, bounds: list[tuple[Any, Any]],
) -> list[tuple[Any, ...]]:
    order = _sample_order(engine, seed)
    bounded = (order <= case(*bounds, else_=literal(_KEY_MAX)),) if bounds else ()
    ranked = select(
        Prediction.id, Prediction.request_id, Prediction.ts, Prediction.features,
        Prediction.prediction, Prediction.attributes, Prediction.model,
        *(t.label(f"a{i}") for i, t in enumerate(texts)),
        order.label("okey"),
        func.row_number().over(partition_by=texts, order_by=(order, Prediction.id)).label("rank"),
    ).where(Prediction.model == model, Prediction.ts >= start, Prediction.ts < end,
            *bounded).subquery("ranked")
    stmt = (
        select(
            ranked.c.request_id, ranked.c.ts, ranked.c.features, ranked.c.prediction, Label.label,
            ranked.c.attributes, *(ranked.c[f"a{i}"] for i in range(len(texts))), ranked.c.okey,
        )
        .outerjoin(Label, and_(Label.model == ranked.c.model, Label.request_id == ranked.c.request_id))
        .where(ranked.c.rank <= per_value)
        .order_by(ranked.c.ts, ranked.c.id)
    )
    n = len(texts)
    return [(*row[:6], tuple(row[6:6 + n]), row[6 + n]) for row in conn.execute(stmt)]


def sample_statement(
    engine: Engine, model: str, start: datetime, end: datetime, size: int, *, seed: int = 0,
    attributes: bool = False, quotas: tuple[str, dict[int, int]] | None = None,
    bounds: dict[int, int] | None = None,
) -> Any:
    """The SELECT of `sample_log_window`: the window's `size` smallest keys, then labels.

    With `quotas` (task, {class: rows}): the smallest keys of each predicted class, as
    many as its quota (a stratified sample, still drawn in the database); with `bounds`
    ({class: key}), only the keys up to its class's bound are ranked (`key_bound`)."""
    order = _sample_order(engine, seed)
    columns = (
        Prediction.id, Prediction.request_id, Prediction.ts, Prediction.features,
        Prediction.prediction, Prediction.attributes, Prediction.model,
    )
    window = (Prediction.model == model, Prediction.ts >= start, Prediction.ts < end)
    if quotas is None:
        picked = select(*columns).where(*window).order_by(order, Prediction.id).limit(size).subquery("picked")
    else:
        task, per_class = quotas
        stratum = predicted_class(engine.dialect.name, task)
        bounded = () if not bounds else (
            order <= case({k: literal(v) for k, v in bounds.items()}, value=stratum,
                          else_=literal(_KEY_MAX)),
        )
        ranked = select(
            *columns,
            func.row_number().over(partition_by=stratum, order_by=(order, Prediction.id)).label("rank"),
            stratum.label("stratum"),
        ).where(*window, *bounded).subquery("ranked")
        quota = case({k: v for k, v in per_class.items()}, value=ranked.c.stratum, else_=0)
        picked = select(*(ranked.c[c.key] for c in columns)).where(ranked.c.rank <= quota).subquery("picked")
    columns = [picked.c.request_id, picked.c.ts, picked.c.features, picked.c.prediction, Label.label]
    if attributes:
        columns.append(picked.c.attributes)
    stmt = (
        select(*columns)
        .outerjoin(Label, and_(Label.model == picked.c.model, Label.request_id == picked.c.request_id))
        .order_by(picked.c.ts, picked.c.id)
    )
    return stmt


def find_logged(session: Session, model: str, request_id: str) -> Prediction | None:
    """The logged row of one request id, or None.

    The log has no index on request ids (PostgreSQL could only have one per partition):
    the key gives the row's time, so the lookup reads one partition through the
    (model, ts) index instead of every partition.
    """
    ts = session.scalar(
        select(PredictionKey.ts).where(
            PredictionKey.model == model, PredictionKey.request_id == request_id
        )
    )
    if ts is None:
        return None
    stmt = select(Prediction).where(
        Prediction.model == model, Prediction.ts == ts, Prediction.request_id == request_id
    )
    return session.scalars(stmt).first()


def first_logged(session: Session, model: str, since: datetime) -> datetime | None:
    """The time of `model`'s earliest prediction logged at or after `since` (None: none).

    Cheap on a large log: the (model, ts) index gives each partition's first row (on
    PostgreSQL, partitions before `since` are pruned; one index descent on SQLite).
    """
    return session.scalar(
        select(func.min(Prediction.ts)).where(Prediction.model == model, Prediction.ts >= since)
    )


def count_predictions(engine: Engine, model: str | None = None) -> int:
    """Rows in the prediction log (for one model when given)."""
    stmt = select(func.count()).select_from(Prediction)
    if model is not None:
        stmt = stmt.where(Prediction.model == model)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def quarantined(engine: Engine, model: str | None = None, limit: int = 100) -> list[Quarantine]:
    """The most recent quarantined rows, newest first."""
    stmt = select(Quarantine).order_by(Quarantine.id.desc()).limit(limit)
    if model is not None:
        stmt = stmt.where(Quarantine.model == model)
    with Session(engine) as session:
        return list(session.scalars(stmt))


def purge_before(session: Session, cutoff: datetime) -> dict[str, int]:
    """Retention: remove predictions, labels and quarantined rows older than `cutoff`.

    The log goes by whole daily partitions on PostgreSQL (`maintenance.purge_log`);
    labels and quarantine are deleted row by row.
    """
    from monitor.store.maintenance import purge_log

    counts = purge_log(session, cutoff)
    for name, stmt in (
        ("label", delete(Label).where(Label.received_at < cutoff)),
        ("quarantine", delete(Quarantine).where(Quarantine.received_at < cutoff)),
    ):
        counts[name] = session.execute(stmt).rowcount or 0
    return counts

