"""The time-partitioned prediction log: migration of a populated log, partition upkeep,
duplicates across partitions, and retention by dropping partitions (SQLite: deleting)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from alembic import command
from sqlalchemy import Engine, select, text

from monitor.intake.ingest import ingest_predictions, parse_body, validators_for
from monitor.intake.prepare import prepare_predictions
from monitor.intake.records import IngestResult
from monitor.store import make_engine, transaction, upgrade
from monitor.store.copy import copy_payload
from monitor.store.maintenance import ensure_partitions, partition_days, partition_name
from monitor.store.migrate import alembic_config
from monitor.store.predictions import (
    effective_key,
    find_logged,
    insert_log_rows,
    purge_before,
    sample_key,
)
from monitor.store.tables import DEFAULT_PARTITION, Prediction
from tests.intake.helpers import cancer_rows, model_config

MODELS = [model_config(), model_config("other")]
DAY = timedelta(days=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:
    """An engine on a database with no tables yet (migrated by the test)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'log.db'}"
    else:
        url = request.getfixturevalue("fresh_pg_url")
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _rows(days: list[datetime], per_day: int = 40, prefix: str = "r") -> list[dict[str, Any]]:
    """Rows for both models on each day (the same request ids in both: per-model keys)."""
    rows = []
    for n, day in enumerate(days):
        batch = cancer_rows(per_day, start=day, step=timedelta(minutes=7), prefix=f"{prefix}{n}-")
        rows += batch + [{**row, "model": "other"} for row in batch[::3]]
    return rows


def _log_at_0001(engine: Engine, rows: list[dict[str, Any]]) -> int:
    """Store rows as revision 0001's ingest did: the intake's own decoding, then a binary
    COPY into the log (PostgreSQL) or an INSERT (SQLite), unique on (model, request_id)."""
    prepared = prepare_predictions(
        parse_body(orjson.dumps(rows)), validators_for(MODELS), source="test"
    ).rows
    now = datetime.now(UTC)
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        if engine.dialect.name == "postgresql":
            columns = "ts, received_at, model, request_id, features, prediction"
            with raw.cursor() as cur, cur.copy(
                f"COPY prediction ({columns}) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.write(copy_payload(prepared, now, attributes=False, keys=False))
        else:
            stamp = "%Y-%m-%d %H:%M:%S.%f"
            raw.executemany(
                "INSERT INTO prediction (model, request_id, ts, received_at, features,"
                " prediction) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (m, r, ts.strftime(stamp), now.strftime(stamp), bytes(f).decode(), p.decode())
                    for m, r, ts, f, p, *_ in prepared
                ],
            )
    return len(prepared)


def _ingest(engine: Engine, rows: list[dict[str, Any]]) -> IngestResult:
    """Through the real ingest path (validation, the log's writer, labels, quarantine)."""
    return ingest_predictions(engine, MODELS, [(row, None) for row in rows], source="test")


def _snapshot(engine: Engine) -> list[tuple]:
    """Every logged row, every column, features and prediction as stored text."""
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                text(
                    "SELECT id, model, request_id, ts, received_at, CAST(features AS TEXT),"
                    " CAST(prediction AS TEXT) FROM prediction ORDER BY id"
                )
            )
        ]


def _keys(engine: Engine) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        return {tuple(r) for r in conn.execute(text("SELECT model, request_id FROM prediction_key"))}


def _logged(engine: Engine) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        return {tuple(r) for r in conn.execute(text("SELECT model, request_id FROM prediction"))}


def _where(engine: Engine) -> dict[str, str]:
    """PostgreSQL: the partition each request id (of model cancer) is stored in."""
    with engine.connect() as conn:
        return dict(
            conn.execute(
                text(
                    "SELECT request_id, tableoid::regclass::text FROM prediction"
                    " WHERE model = 'cancer'"
                )
            ).all()
        )


def test_upgrade_keeps_every_row_of_a_populated_log_and_round_trips(empty_engine):
    engine = empty_engine
    upgrade(engine, "0001")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [
        datetime(2026, 3, 1, 23, 30, tzinfo=UTC),  # crosses midnight: two partitions
        datetime(2026, 3, 4, 8, tzinfo=UTC),
        today - 40 * DAY,
        today + timedelta(hours=1),
        datetime(2031, 6, 1, tzinfo=UTC),  # beyond the days created ahead
    ]
    stored = _log_at_0001(engine, _rows(days))
    before = _snapshot(engine)
    assert len(before) == stored == 5 * (40 + 14)

    assert upgrade(engine, "0002") == "0002"
    assert _snapshot(engine) == before
    assert _keys(engine) == _logged(engine) and len(_keys(engine)) == stored
    if engine.dialect.name == "postgresql":
        where = _where(engine)
        with engine.connect() as conn:
            assert conn.execute(text(f"SELECT count(*) FROM {DEFAULT_PARTITION}")).scalar() == 0
            created = set(partition_days(conn))
        for row in _rows(days):  # every row sits in the partition of its own UTC day
            day = datetime.fromisoformat(row["timestamp"]).astimezone(UTC).date()
            assert where[row["request_id"]] == partition_name(day)
        assert {today.date() + n * DAY for n in range(-1, 8)} <= created

    # the upgraded log (at head: 0003 adds attributes) refuses every request id again,
    # and takes new ones after the old ids
    upgrade(engine)
    again = _ingest(engine, _rows(days))
    assert again.accepted == 0 and again.reasons["duplicate"] == stored
    fresh = _ingest(engine, _rows([today], 5, prefix="new"))
    assert fresh.accepted == 5 + 2
    after = _snapshot(engine)
    assert after[: len(before)] == before
    # 0005 did not rewrite the log: rows logged before have no stored sampling key, and
    # the database computes the same key ingest stores for the rows logged after it
    with engine.connect() as conn:
        keyed = conn.execute(
            select(Prediction.model, Prediction.request_id, Prediction.sample_key,
                   effective_key(engine.dialect.name))
        ).all()
    assert len(keyed) == len(after)
    assert sum(stored is None for _, _, stored, _ in keyed) == len(before)
    assert all(key == sample_key(model, rid) for model, rid, _, key in keyed)
    assert all(stored == key for _, _, stored, key in keyed if stored is not None)
    assert min(row[0] for row in after[len(before) :]) > max(row[0] for row in before)

    command.downgrade(alembic_config(engine), "0001")
    assert _snapshot(engine) == after
    assert upgrade(engine, "0002") == "0002"
    assert _snapshot(engine) == after
    assert len(_keys(engine)) == len(after)


def test_a_request_id_is_logged_once_whichever_day_it_comes_back_on(engine):
    first = cancer_rows(10, start=datetime(2026, 3, 1, tzinfo=UTC), prefix="dup")
    later = cancer_rows(10, start=datetime(2026, 9, 1, tzinfo=UTC), prefix="dup")  # same ids
    assert _ingest(engine, first).accepted == 10
    result = _ingest(engine, later + cancer_rows(3, prefix="x"))
    assert result.accepted == 3 and result.reasons == {"duplicate": 10}
    assert len(_logged(engine)) == 13 and _keys(engine) == _logged(engine)
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT min(ts) FROM prediction WHERE request_id = 'dup0'"))
        assert kept.scalar() is not None


@pytest.fixture
def head_engine(empty_engine: Engine) -> Engine:
    upgrade(empty_engine)
    return empty_engine


def test_rows_outside_every_partition_are_kept_then_moved_into_their_day(head_engine):
    engine = head_engine
    now = datetime(2031, 5, 10, 9, tzinfo=UTC)
    rows = cancer_rows(30, start=now - timedelta(hours=2), step=timedelta(minutes=1))
    assert _ingest(engine, rows).accepted == 30
    before = _snapshot(engine)

    upkeep = ensure_partitions(engine, now, ahead=2 * DAY)
    assert _snapshot(engine) == before
    if engine.dialect.name == "sqlite":
        assert upkeep.created == () and upkeep.moved_rows == 0
        return
    expected = [now.date() + n * DAY for n in range(-1, 3)]
    assert list(upkeep.created) == expected and upkeep.moved_rows == 30
    assert set(_where(engine).values()) == {partition_name(now.date())}
    # idempotent; a partition made ahead takes new rows directly
    assert ensure_partitions(engine, now, ahead=2 * DAY).created == ()
    later = cancer_rows(4, start=now + DAY, prefix="next")
    assert _ingest(engine, later).accepted == 4
    assert _where(engine)["next0"] == partition_name(now.date() + DAY)


def test_retention_drops_whole_days_and_their_keys(head_engine):
    engine = head_engine
    d = datetime(2026, 3, 20, tzinfo=UTC)
    days = [d - 10 * DAY, d - 5 * DAY, d - 3 * DAY + timedelta(hours=1), d - DAY, d]
    ancient = cancer_rows(5, start=datetime(2020, 1, 1, tzinfo=UTC), prefix="ancient-")
    rows = _rows(days, per_day=20) + ancient  # ancient: older than every partition
    assert _ingest(engine, rows).accepted == len(rows)
    ensure_partitions(engine, d - 10 * DAY, ahead=11 * DAY)
    cutoff = d - 3 * DAY + timedelta(hours=12)
    with transaction(engine) as session:
        counts = purge_before(session, cutoff)

    survivors = {rid.split("-")[0] for _model, rid in _logged(engine)}
    if engine.dialect.name == "postgresql":
        # the day holding the cutoff stays whole until the next day's run
        assert survivors == {"r2", "r3", "r4"}
        assert counts["prediction_partitions"] == 8  # d-11 .. d-4, made by ensure_partitions
    else:
        assert survivors == {"r3", "r4"}
    assert counts["prediction"] == len(rows) - len(_logged(engine))
    assert _keys(engine) == _logged(engine)
    # a purged request id is new again
    assert _ingest(engine, rows[:1]).accepted == 1


def test_find_logged_reads_a_row_through_its_key(engine):
    rows = cancer_rows(6, start=datetime(2026, 3, 1, 23, 58, tzinfo=UTC), step=timedelta(minutes=1))
    assert _ingest(engine, rows).accepted == 6
    with transaction(engine) as session:
        found = find_logged(session, "cancer", "r4")
        assert found is not None
        assert found.ts == datetime.fromisoformat(rows[4]["timestamp"])
        assert found.features["clinic"] == rows[4]["features"]["clinic"]
        assert find_logged(session, "other", "r4") is None
        assert find_logged(session, "cancer", "r99") is None


def test_a_key_repeated_in_one_batch_keeps_its_first_row(engine):
    """The store's own guarantee, without the intake's de-duplication in front of it."""
    rows = prepare_predictions(
        [(row, None) for row in cancer_rows(4, prefix="k")], validators_for(MODELS), source="t"
    ).rows
    model, rid, ts, features, *_ = rows[0]
    again = (model, rid, ts + DAY, features, b"0.25", None)  # same key, another day and answer
    with transaction(engine) as session:
        assert insert_log_rows(session, [rows[0], again, rows[1]]) == 2
    with transaction(engine) as session:  # a logged key forces the ON CONFLICT path
        assert insert_log_rows(session, [again, rows[2], rows[3], rows[3]]) == 2
    with transaction(engine) as session:
        assert float(find_logged(session, model, rid).prediction) == orjson.loads(rows[0][4])
    assert len(_logged(engine)) == 4 and _keys(engine) == _logged(engine)


def test_retention_keeps_a_busy_partition_and_every_newer_key(head_engine, monkeypatch):
    engine = head_engine
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite deletes rows; there is no partition to lock")
    from monitor.store import maintenance

    monkeypatch.setattr(maintenance, "LOCK_TIMEOUT", "200ms")
    d = datetime(2026, 3, 20, tzinfo=UTC)
    days = [d - 6 * DAY, d - 5 * DAY, d - 4 * DAY]
    assert _ingest(engine, _rows(days, per_day=10)).accepted == 3 * (10 + 4)
    ensure_partitions(engine, d - 6 * DAY, ahead=3 * DAY)
    busy = partition_name((d - 5 * DAY).date())
    with engine.connect() as reader:
        reader.execute(text(f"SELECT count(*) FROM {busy}"))  # holds a lock until rollback
        with transaction(engine) as session:
            counts = purge_before(session, d)
        reader.rollback()
    survivors = {rid.split("-")[0] for _model, rid in _logged(engine)}
    assert survivors == {"r1", "r2"}  # d-6 dropped; d-5 busy, so d-5 and d-4 stay
    assert counts["prediction_partitions"] == 2  # d-7 (empty) and d-6
    assert _keys(engine) == _logged(engine)
