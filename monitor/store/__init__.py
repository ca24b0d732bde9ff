"""The store: the only package that talks to the database."""

from monitor.store.engine import is_sqlite, make_engine, session_factory, transaction
from monitor.store.migrate import current_revision, head_revision, require_current, upgrade

__all__ = [
    "current_revision",
    "head_revision",
    "is_sqlite",
    "make_engine",
    "require_current",
    "session_factory",
    "transaction",
    "upgrade",
]
