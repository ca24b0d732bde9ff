"""The outbox table: notifications written in the same transaction as what they announce,
claimed and marked by the delivery loop (`monitor.notify`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from monitor.store.engine import is_sqlite
from monitor.store.tables import Outbox


def queue(
    session: Session,
    event: Any,
    channels: Iterable[str],
    now: datetime,
    *,
    alert_id: int | None = None,
) -> None:
    """One outbox row per channel for `event` (an `monitor.events` record)."""
    payload = event.payload()
    for channel in channels:
        session.add(
            Outbox(
                alert_id=alert_id,
                event=str(event.name),
                channel=channel,
                payload=payload,
                created_at=now,
                next_attempt_at=now,
            )
        )


def claim_next(
    session: Session, channels: list[str], skipped: set[int], engine: Engine, now: datetime
) -> Outbox | None:
    """The oldest due row for these channels whose alert has no earlier undelivered row.

    Locked with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so several daemons never
    deliver the same row; rows in `skipped` (failed in this pass) are passed over.
    """
    earlier = aliased(Outbox)
    blocked = exists().where(
        and_(
            earlier.alert_id == Outbox.alert_id,
            earlier.channel == Outbox.channel,
            earlier.id < Outbox.id,
            earlier.delivered_at.is_(None),
        )
    )
    query = (
        select(Outbox)
        .where(
            Outbox.delivered_at.is_(None),
            Outbox.next_attempt_at <= now,
            Outbox.channel.in_(channels),
            ~blocked,
        )
        .order_by(Outbox.id)
        .limit(1)
    )
    if skipped:
        query = query.where(Outbox.id.not_in(skipped))
    if not is_sqlite(engine):
        query = query.with_for_update(skip_locked=True, of=Outbox)
    return session.scalars(query).first()


def pending_count(engine: Engine) -> int:
    """Undelivered outbox rows (the backlog /metrics reports)."""
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(Outbox).where(Outbox.delivered_at.is_(None))) or 0


def rows_for_alert(session: Session, alert_id: int) -> list[Outbox]:
    return list(session.scalars(select(Outbox).where(Outbox.alert_id == alert_id).order_by(Outbox.id)))
