"""Alembic, driven from monitor: upgrade, current revision, the at-head check.

The schema changes only through the revisions in `migrations/`. Commands that need
the database call `require_current(engine)` and refuse to work on one that is behind.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from monitor.config import mask_url
from monitor.errors import DatabaseError, SchemaNotCurrentError

MIGRATIONS_ENV = "MONITOR_MIGRATIONS"


def migrations_dir() -> Path:
    """The `migrations/` directory: $MONITOR_MIGRATIONS, else next to the package."""
    override = os.environ.get(MIGRATIONS_ENV)
    path = Path(override) if override else Path(__file__).resolve().parents[2] / "migrations"
    if not (path / "env.py").is_file():
        raise DatabaseError(
            f"Alembic migrations not found at {path}; set {MIGRATIONS_ENV} to the "
            "repository's migrations/ directory"
        )
    return path


def alembic_config(engine: Engine) -> Config:
    """An Alembic Config bound to `engine` (env.py uses the connection it is given)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory.from_config(_bare_config()).get_heads()
    if len(heads) != 1:
        raise DatabaseError(f"migrations have {len(heads)} heads {heads}; merge them first")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as err:
        raise DatabaseError(
            f"cannot connect to database {mask_url(str(engine.url))}: {err.orig}"
        ) from err


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the database to `revision`; returns the revision it is at afterwards."""
    try:
        command.upgrade(alembic_config(engine), revision)
    except OperationalError as err:
        raise DatabaseError(
            f"cannot upgrade database {mask_url(str(engine.url))}: {err.orig}"
        ) from err
    return current_revision(engine)


def require_current(engine: Engine) -> None:
    """Raise SchemaNotCurrentError unless the database is at the head revision."""
    head = head_revision()
    current = current_revision(engine)
    if current != head:
        raise SchemaNotCurrentError(mask_url(str(engine.url)), current, head)


def _bare_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    return cfg
