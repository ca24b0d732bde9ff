"""The write probe behind /healthz: a committed heartbeat, answers reused for a few
seconds, and a database that stops taking writes seen as read-only, then ok again."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import select

from monitor.store import transaction
from monitor.store.heartbeat import WriteProbe
from monitor.store.tables import Heartbeat


def test_probe_commits_its_heartbeat_row(engine, frozen):
    assert WriteProbe(engine, "server", every=timedelta(0)).check().ok
    frozen.advance(seconds=7)
    assert WriteProbe(engine, "server", every=timedelta(0)).check().to_dict() == {"database": "ok"}
    with transaction(engine) as session:
        rows = [(b.name, b.beat_at) for b in session.scalars(select(Heartbeat))]
    assert rows == [("server", frozen.now)]  # upserted, not inserted twice


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_probe_sees_a_write_lock_and_the_recovery(engine):
    fresh = WriteProbe(engine, "server", every=timedelta(0))
    cached = WriteProbe(engine, "server", every=timedelta(hours=1))
    assert fresh.check().ok and cached.check().ok
    holder = sqlite3.connect(engine.url.database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        locked = fresh.check()
        assert cached.check().ok  # the answer of the last probe, within `every`
    finally:
        holder.rollback()
        holder.close()
    assert (locked.state, locked.error) == ("read-only", "writes fail: database is locked")
    assert fresh.check().ok
    with engine.connect() as conn:  # the pooled connection got its 30 s busy timeout back
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
