"""Fixtures shared by the whole suite: real SQLite and PostgreSQL through the real
migrations, a config file writer, and the `monitor` command run as a user runs it.

PostgreSQL: a fresh database is created per test session and dropped afterwards.
Without a server the PostgreSQL cases are skipped locally; with CI=true they fail.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from monitor import clock
from monitor.store import make_engine, upgrade
from monitor.store.tables import Base
from tests.cli import run_cli
from tests.factories import T0, MovableClock

# trained-model fixtures shared by tests/cycle and tests/slack (one training per session)
pytest_plugins = ["tests.models"]

@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> MovableClock:
    """Freeze monitor's clock at T0; `frozen.advance(minutes=5)` moves it."""
    fake = MovableClock(T0)
    monkeypatch.setattr(clock, "utcnow", fake)
    return fake

PG_ADMIN_URL = os.environ.get(
    "MONITOR_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parents[1]

# WebClient reads HTTP(S)_PROXY and ignores NO_PROXY: loopback tests must not use one
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_var, None)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _pg_unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


class PgServer:
    """Creates and drops databases on the test PostgreSQL server."""

    def __init__(self, admin_url: str):
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def create(self, prefix: str = "monitor_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.admin.url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[-1]
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.created:
            self.created.remove(name)

    def close(self) -> None:
        for name in list(self.created):
            with self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer(PG_ADMIN_URL)
    try:
        with server.admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as err:  # noqa: BLE001 - any connection failure means "no server"
        server.admin.dispose()
        _pg_unavailable(str(err).splitlines()[0])
    yield server
    server.close()


@pytest.fixture(scope="session")
def pg_session_url(pg_server: PgServer) -> str:
    """One migrated PostgreSQL database for the session (tables emptied after each test)."""
    url = pg_server.create()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def fresh_pg_url(pg_server: PgServer) -> Iterator[str]:
    """An empty PostgreSQL database (no tables) for this test only."""
    url = pg_server.create("monitor_empty")
    yield url
    pg_server.drop(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database URL: a fresh SQLite file, or the session's PostgreSQL database
    (emptied after the test). Tests using it run once per backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'monitor.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        return
    url = request.getfixturevalue("pg_session_url")
    yield url
    _truncate_all(url)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An Engine on a migrated database, for each backend."""
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def _truncate_all(url: str) -> None:
    eng = make_engine(url)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with eng.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    eng.dispose()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a config.toml into tmp_path and return its path."""

    def write(body: str, name: str = "config.toml") -> Path:
        path = tmp_path / name
        path.write_text(body, encoding="utf-8")
        return path

    return write


@pytest.fixture
def run_monitor(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the `monitor` command in a subprocess from tmp_path (see tests/cli.py)."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
            check: bool = False) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, cwd=tmp_path, env=env, timeout=timeout, check=check)

    return run


_PG_FIXTURES = {"pg_server", "pg_session_url", "fresh_pg_url"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs the PostgreSQL server `postgres` (the PostgreSQL case
    of `db_url`, or a PostgreSQL fixture), so `-m "not postgres"` runs without one."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        fixtures = set(getattr(item, "fixturenames", ()))
        if params.get("db_url") == "postgresql" or fixtures & _PG_FIXTURES:
            item.add_marker(pytest.mark.postgres)
