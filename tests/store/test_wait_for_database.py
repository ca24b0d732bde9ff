"""`wait_for_database`: `monitor run` waits for a database that is down, with backoff."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from sqlalchemy import Engine

from monitor.errors import DatabaseError
from monitor.store import make_engine
from monitor.store.engine import wait_for_database

SECRET = "Wa1tS3cret"


def _down_engine() -> Engine:
    # port 1 on loopback: connection refused at once, like a database not started yet
    return make_engine(f"postgresql://postgres@127.0.0.1:1/db?password={SECRET}&connect_timeout=2")


def test_reachable_database_returns_at_once(engine: Engine, caplog) -> None:
    started = time.monotonic()
    assert wait_for_database(engine, timeout=5) is True
    assert time.monotonic() - started < 2
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_down_database_is_retried_with_backoff_then_times_out(caplog) -> None:
    engine = _down_engine()
    caplog.set_level(logging.WARNING, logger="monitor.store.engine")
    started = time.monotonic()
    with pytest.raises(DatabaseError, match="still unreachable") as raised:
        wait_for_database(engine, timeout=3.5)
    elapsed = time.monotonic() - started
    lines = [r.getMessage() for r in caplog.records if "unreachable (attempt" in r.getMessage()]
    # attempts at ~0 s, ~1 s, ~3 s (pauses of 1 s then 2 s), then the deadline
    assert len(lines) == 3, lines
    assert "next try in 1 s" in lines[0] and "next try in 2 s" in lines[1]
    assert 3.0 <= elapsed < 8
    assert all(SECRET not in line and "password=***" in line for line in lines)
    assert SECRET not in str(raised.value)


def test_stop_event_ends_the_wait() -> None:
    engine = _down_engine()
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    assert wait_for_database(engine, stop=stop) is False
    assert time.monotonic() - started < 3
