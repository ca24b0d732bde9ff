"""The heartbeat: /healthz's proof that the database still takes writes.

`SELECT 1` answers on a SQLite file that is read-only, on a full disk or locked by
another process, and on a read-only PostgreSQL, while every write fails. So the probe
upserts its row of the `heartbeat` table and commits (a write rolled back never
reaches the disk, so it would not meet a full one). A write waits at most `PROBE_WAIT`
for a lock, and an answer is reused for `PROBE_EVERY`: frequent health checks cost one
tiny write every few seconds, never a wait longer than a health checker allows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from monitor import clock
from monitor.store.tables import Heartbeat

log = logging.getLogger(__name__)

#: how long a probe's answer is reused
PROBE_EVERY = timedelta(seconds=5)
#: how long the probe's write waits for a lock held by another connection
PROBE_WAIT = timedelta(seconds=2)

OK, READ_ONLY, UNREACHABLE = "ok", "read-only", "unreachable"


@dataclass(frozen=True)
class DatabaseHealth:
    """What the probe found: `state` is ok, read-only (reads work, writes fail) or
    unreachable; `error` says why when it is not ok."""

    state: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == OK

    def to_dict(self) -> dict[str, Any]:
        """The /healthz fields: ``database`` and, when not ok, ``database_error``."""
        return {"database": self.state} | ({"database_error": self.error} if self.error else {})


class WriteProbe:
    """Probes `engine` with a read and a committed heartbeat write, at most once per
    `every` (callers in between get the last answer). Thread-safe."""

    def __init__(self, engine: Engine, name: str, every: timedelta = PROBE_EVERY):
        self.engine, self.name, self.every = engine, name, every.total_seconds()
        self._lock = threading.Lock()
        self._last: tuple[float, DatabaseHealth] | None = None

    def check(self) -> DatabaseHealth:
        """The database's health, probed now unless the last probe is recent enough."""
        with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < self.every:
                return self._last[1]
            found = self._probe()
            previous = self._last[1] if self._last is not None else None
            self._last = (time.monotonic(), found)
        if not found.ok and found != previous:
            log.warning("health check (%s): database %s: %s", self.name, found.state, found.error)
        elif found.ok and previous is not None and not previous.ok:
            log.info("health check (%s): database takes writes again", self.name)
        return found

    def _probe(self) -> DatabaseHealth:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as err:
            return DatabaseHealth(UNREACHABLE, f"database unreachable: {type(err).__name__}")
        try:
            with self.engine.connect() as conn, _short_lock_wait(conn):
                conn.execute(self._beat())
                conn.commit()
        except SQLAlchemyError as err:
            return DatabaseHealth(READ_ONLY, f"writes fail: {_reason(err)}")
        return DatabaseHealth(OK)

    def _beat(self) -> Any:
        insert = sqlite_insert if self.engine.dialect.name == "sqlite" else pg_insert
        stmt = insert(Heartbeat).values(name=self.name, beat_at=clock.utcnow())
        return stmt.on_conflict_do_update(index_elements=["name"], set_={"beat_at": stmt.excluded.beat_at})


@contextmanager
def _short_lock_wait(conn: Connection) -> Iterator[None]:
    """Within `conn`, a write waits at most PROBE_WAIT for a lock (not the 30 s
    ingest allows on SQLite, nor for ever on PostgreSQL)."""
    wait_ms = int(PROBE_WAIT.total_seconds() * 1000)
    if conn.dialect.name == "sqlite":
        before = int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0)
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {wait_ms}")
        try:
            yield
        finally:
            try:
                conn.rollback()  # a failed write leaves its transaction open
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {before}")
                conn.commit()
            except SQLAlchemyError:
                conn.invalidate()  # never back to the pool with the short wait
                raise
        return
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {wait_ms}")
    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {wait_ms}")
    yield


def _reason(err: SQLAlchemyError) -> str:
    """The database's own first line of the error (no SQL, no parameters)."""
    orig = getattr(err, "orig", None)
    lines = str(orig if orig is not None else err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
