"""Engines and sessions: the only place that knows SQLite from PostgreSQL.

SQLite runs in WAL mode with foreign keys on and a busy timeout, so the daemon's
threads and a CLI command can share the file; PostgreSQL goes through psycopg 3.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import mask_url
from monitor.errors import DatabaseError

log = logging.getLogger(__name__)


def normalize_url(url: str) -> str:
    """Pick the psycopg 3 driver for plain ``postgresql://`` URLs, and quote a password
    written with a raw "@" or space (else the rest of it would be read as the host)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url.removeprefix(prefix)
    if url.startswith("postgresql"):
        return _quote_password(url)
    return url


def _quote_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    head, question, query = rest.partition("?")
    at = head.rfind("@")
    userinfo = head[:at]
    if not sep or at < 0 or not ("@" in userinfo or " " in userinfo):
        return url
    user, colon, password = userinfo.partition(":")
    return f"{scheme}://{user}{colon}{quote(password, safe='')}@{head[at + 1:]}{question}{query}"


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
    # no pool_pre_ping: a `SELECT 1` before every checkout cost ~7% of ingest. A pooled
    # connection the server dropped fails its first use as a disconnect, which invalidates
    # the pool (callers that must not lose a request retry once, see intake.ingest)
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
    from monitor.store.predictions import rehash_key, sample_key

    # what PostgreSQL computes in SQL (md5, hashint8extended), SQLite gets from Python
    dbapi_connection.create_function("monitor_sample_key", 2, sample_key, deterministic=True)
    dbapi_connection.create_function("monitor_rehash", 2, rehash_key, deterministic=True)


#: one sessionmaker per engine: making one builds a Session subclass and its event
#: dispatch (~1 ms, as much as storing a 10-row ingest batch)
_FACTORIES: weakref.WeakKeyDictionary[Engine, sessionmaker[Session]] = weakref.WeakKeyDictionary()
_FACTORIES_LOCK = threading.Lock()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (one factory per engine)."""
    factory = _FACTORIES.get(engine)
    if factory is None:
        with _FACTORIES_LOCK:
            factory = _FACTORIES.get(engine)
            if factory is None:
                factory = _FACTORIES[engine] = sessionmaker(engine, expire_on_commit=False)
    return factory


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


#: first and longest pause between attempts of `wait_for_database`
FIRST_DELAY, MAX_DELAY = 1.0, 30.0


def wait_for_database(
    engine: Engine,
    *,
    timeout: float | None = None,
    stop: threading.Event | None = None,
    log: logging.Logger = log,
) -> bool:
    """Wait until the database answers ``SELECT 1``; True once it does.

    Logs one line per failed attempt (the URL masked) and backs off from 1 s, doubling,
    to 30 s. Returns False as soon as `stop` is set; raises DatabaseError when
    `timeout` seconds pass first (None: wait for ever).
    """
    stop = stop or threading.Event()
    url = mask_url(engine.url.render_as_string(hide_password=True))
    deadline = None if timeout is None else time.monotonic() + timeout
    delay, attempt = FIRST_DELAY, 0
    while not stop.is_set():
        attempt += 1
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except (OperationalError, DBAPIError) as err:
            reason = mask_url(str(getattr(err, "orig", None) or err).strip().splitlines()[0])
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise DatabaseError(
                    f"database {url} still unreachable after {attempt} attempts "
                    f"({timeout:g} s): {reason}"
                ) from err
            pause = delay if left is None else min(delay, left)
            log.warning("database %s unreachable (attempt %d): %s; next try in %.0f s",
                        url, attempt, reason, pause)
            stop.wait(pause)
            delay = min(delay * 2, MAX_DELAY)
            continue
        if attempt > 1:
            log.info("database %s reachable after %d attempts", url, attempt)
        return True
    return False


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
