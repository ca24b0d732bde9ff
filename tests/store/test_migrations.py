"""The schema: migrations create every table, agree with the ORM, and are enforced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from monitor.errors import SchemaNotCurrentError
from monitor.store import current_revision, head_revision, make_engine, require_current, transaction, upgrade
from monitor.store.tables import Base, Model, include_name


def _fresh_url(request, tmp_path, backend):
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return request.getfixturevalue("fresh_pg_url")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_creates_every_table_and_matches_the_models(request, tmp_path, backend):
    engine = make_engine(_fresh_url(request, tmp_path, backend))
    try:
        assert current_revision(engine) is None
        with pytest.raises(SchemaNotCurrentError, match="run `monitor db upgrade`"):
            require_current(engine)
        assert upgrade(engine) == head_revision()
        require_current(engine)
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with engine.connect() as conn:
            # the log's daily partitions are not model tables (env.py filters them too)
            opts = {"compare_type": True, "include_name": include_name}
            diff = compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata)
        assert diff == [], f"tables.py and migrations/ disagree: {diff}"
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_downgrade_to_base_and_back(request, tmp_path, backend):
    engine = make_engine(_fresh_url(request, tmp_path, backend))
    try:
        upgrade(engine)
        from alembic import command

        from monitor.store.migrate import alembic_config

        command.downgrade(alembic_config(engine), "base")
        assert current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        assert upgrade(engine) == head_revision()
    finally:
        engine.dispose()


def test_timestamps_round_trip_as_aware_utc(engine):
    created = datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    with transaction(engine) as session:
        session.add(Model(name="m", task="regression", created_at=created))
    with transaction(engine) as session:
        stored = session.scalars(select(Model)).one().created_at
    assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    assert stored == created.astimezone(UTC)


def test_naive_timestamps_are_refused(engine):
    with pytest.raises(Exception, match="naive datetime"), transaction(engine) as session:
        session.add(Model(name="m", task="regression", created_at=datetime(2026, 1, 1)))
        session.flush()


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
