"""Repository functions for the prediction log, labels and quarantine.

The only code that reads or writes the `prediction`, `label` and `quarantine` tables.
Inserts are built for throughput from rows serialized once (see `monitor.store.copy`
for PostgreSQL's COPY); SQLite gets one executemany of ``INSERT OR IGNORE``. Either
way a request id already logged is kept, not replaced.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Engine, and_, delete, func, insert, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from monitor import clock
from monitor.errors import DatabaseError
from monitor.store.copy import copy_postgres as _copy_postgres
from monitor.store.tables import Label, Prediction, Quarantine

if TYPE_CHECKING:  # the records are duck-typed here, so intake and store import freely
    from monitor.intake.prepare import LogRow
    from monitor.intake.records import LabelRecord, Rejection

log = logging.getLogger(__name__)

_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=_OPTS)


def _sqlite_ts(ts: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores: naive UTC with microseconds."""
    ts = ts.astimezone(UTC)
    return (
        f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d} {ts.hour:02d}:{ts.minute:02d}:"
        f"{ts.second:02d}.{ts.microsecond:06d}"
    )


def insert_log_rows(session: Session, rows: Sequence[LogRow]) -> int:
    """Append pre-serialized rows (model, request_id, ts, features JSON, prediction JSON).

    Returns how many were new; a (model, request_id) already logged is kept, not replaced.
    """
    if not rows:
        return 0
    conn = session.connection()
    raw = conn.connection.driver_connection
    now = clock.utcnow()
    if conn.dialect.name == "postgresql":
        return _copy_postgres(raw, rows, now)
    received = _sqlite_ts(now)
    values = [
        (
            model,
            request_id,
            _sqlite_ts(ts),
            received,
            str(features, "utf-8"),
            str(prediction, "utf-8"),
        )
        for model, request_id, ts, features, prediction in rows
    ]
    cursor = raw.cursor()
    try:
        before = raw.total_changes
        cursor.executemany(
            "INSERT OR IGNORE INTO prediction (model, request_id, ts, received_at, features,"
            " prediction) VALUES (?, ?, ?, ?, ?, ?)",
            values,
        )
        return raw.total_changes - before
    finally:
        cursor.close()


def insert_labels(session: Session, records: Sequence[LabelRecord]) -> int:
    """Store labels (the first one per request id wins); returns how many were new."""
    if not records:
        return 0
    conn = session.connection()
    rows = [
        {
            "model": r.model,
            "request_id": r.request_id,
            "label": r.label,
            "received_at": clock.utcnow(),
        }
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
    engine: Engine, model: str, start: datetime, end: datetime, *, batch: int = 5000
) -> Iterator[tuple[str, datetime, dict[str, Any], Any, Any]]:
    """Stream (request_id, ts, features, prediction, label) of [start, end) in log order.

    Labels are joined here, so a label that arrived before its prediction counts.
    """
    stmt = (
        select(
            Prediction.request_id,
            Prediction.ts,
            Prediction.features,
            Prediction.prediction,
            Label.label,
        )
        .outerjoin(
            Label, and_(Label.model == Prediction.model, Label.request_id == Prediction.request_id)
        )
        .where(Prediction.model == model, Prediction.ts >= start, Prediction.ts < end)
        .order_by(Prediction.ts, Prediction.id)
    )
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=batch).execute(stmt)
        for row in result:
            yield row.request_id, row.ts, row.features, row.prediction, row.label


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
    """Delete predictions, labels and quarantined rows older than `cutoff` (retention)."""
    counts = {}
    for name, stmt in (
        ("prediction", delete(Prediction).where(Prediction.ts < cutoff)),
        ("label", delete(Label).where(Label.received_at < cutoff)),
        ("quarantine", delete(Quarantine).where(Quarantine.received_at < cutoff)),
    ):
        counts[name] = session.execute(stmt).rowcount or 0
    return counts


def ping(engine: Engine) -> None:
    """Raise DatabaseError unless the database answers a trivial query."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as err:
        raise DatabaseError(f"database unreachable: {type(err).__name__}") from err
