"""Per-baseline fits in the database: a check's calibrated nulls and bootstrap ranges.

One row per (baseline, check, key, fingerprint) holds the bytes a check wrote
(`monitor.drift.fitted`). Two processes that build the same fit at once both insert it;
the second insert does nothing (``ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL),
so a race never fails a run. Saving a fit removes the same key's fits under other
fingerprints (built under settings no longer in force).
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from monitor.store.engine import transaction
from monitor.store.tables import BaselineFit, utcnow

log = logging.getLogger(__name__)


def load_fit(session: Session, baseline_id: int, check: str, key: str, fingerprint: str) -> bytes | None:
    """The payload of one fit, None when it was never kept."""
    return session.scalar(
        select(BaselineFit.payload).where(
            BaselineFit.baseline_id == baseline_id,
            BaselineFit.check_name == check,
            BaselineFit.key == key,
            BaselineFit.fingerprint == fingerprint,
        )
    )


def save_fit(
    session: Session, baseline_id: int, check: str, key: str, fingerprint: str, payload: bytes
) -> None:
    """Keep one fit (an identical one kept meanwhile by another process wins, silently)
    and drop the key's fits under other fingerprints."""
    session.execute(
        delete(BaselineFit).where(
            BaselineFit.baseline_id == baseline_id,
            BaselineFit.check_name == check,
            BaselineFit.key == key,
            BaselineFit.fingerprint != fingerprint,
        )
    )
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(
        dialect.insert(BaselineFit)
        .values(
            baseline_id=baseline_id,
            check_name=check,
            key=key,
            fingerprint=fingerprint,
            payload=payload,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing()
    )


def count_fits(session: Session, baseline_id: int, check: str | None = None) -> int:
    """How many fits the baseline keeps (of `check` only, when given)."""
    query = select(func.count()).select_from(BaselineFit).where(BaselineFit.baseline_id == baseline_id)
    if check is not None:
        query = query.where(BaselineFit.check_name == check)
    return int(session.scalar(query) or 0)


class BaselineFits:
    """The fits of one baseline as an engine's `FitStore`: each read and each save in its
    own short transaction, apart from the run's (a fit is true whatever the run does).

    A fit is a cache: when the database cannot read or keep one, the failure is logged
    with its traceback and the fit is built (or kept in memory only) instead."""

    def __init__(self, engine: Engine, baseline_id: int):
        self.engine, self.baseline_id = engine, baseline_id

    def load(self, check: str, key: str, fingerprint: str) -> bytes | None:
        try:
            with transaction(self.engine) as session:
                return load_fit(session, self.baseline_id, check, key, fingerprint)
        except SQLAlchemyError:
            log.warning("baseline %d: could not read the %s fit %s; building it instead",
                        self.baseline_id, check, key, exc_info=True)
            return None

    def save(self, check: str, key: str, fingerprint: str, payload: bytes) -> None:
        try:
            with transaction(self.engine) as session:
                save_fit(session, self.baseline_id, check, key, fingerprint, payload)
        except SQLAlchemyError:
            log.warning("baseline %d: could not keep the %s fit %s; the next process builds it again",
                        self.baseline_id, check, key, exc_info=True)

    def __repr__(self) -> str:
        return f"BaselineFits(baseline={self.baseline_id})"
