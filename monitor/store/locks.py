"""Locks that keep several daemons from doing the same work twice.

PostgreSQL: a session-level advisory lock per (model, window), held while a run is
computed. SQLite has no such lock: it is meant for a single daemon (the unique key on
runs still refuses a second copy of a window).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Engine, text


@contextmanager
def window_lock(
    engine: Engine, model: str, start: datetime, end: datetime, *, wait: bool = False
) -> Iterator[bool]:
    """PostgreSQL: a session advisory lock per (model, window). SQLite: single daemon."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    digest = hashlib.blake2b(f"{model}|{start.isoformat()}|{end.isoformat()}".encode(), digest_size=8)
    key = int.from_bytes(digest.digest(), "big", signed=True)
    with engine.connect() as conn:
        if wait:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            acquired = True
        else:
            acquired = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        try:
            yield acquired
        finally:
            if acquired:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
