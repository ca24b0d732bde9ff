"""Engines and sessions: the only place that knows SQLite from PostgreSQL.

SQLite runs in WAL mode with foreign keys on and a busy timeout, so the daemon's
threads and a CLI command can share the file; PostgreSQL goes through psycopg 3.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import mask_url
from monitor.errors import DatabaseError

log = logging.getLogger(__name__)


def normalize_url(url: str) -> str:
    """Pick the psycopg 3 driver for plain ``postgresql://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def make_engine(url: str, *, echo: bool = False, **kwargs: Any) -> Engine:
    """An Engine for `url`, configured for monitor's use of that database."""
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise DatabaseError(f"database url {mask_url(url)!r} is not a valid SQLAlchemy URL") from err
    if parsed.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
        engine = create_engine(url, echo=echo, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise DatabaseError(
            f"database url {mask_url(url)!r}: only sqlite and postgresql are supported"
        )
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, echo=echo, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine_or_factory: Engine | sessionmaker[Session]) -> Iterator[Session]:
    """One session, one transaction: committed on success, rolled back on error."""
    factory = (
        session_factory(engine_or_factory)
        if isinstance(engine_or_factory, Engine)
        else engine_or_factory
    )
    with factory.begin() as session:
        yield session


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
