"""Retention: what the daemon's daily job deletes once it is older than the cutoff."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from monitor.store.predictions import purge_before
from monitor.store.tables import Outbox, ProcessedEvent, Run


def purge_older_than(session: Session, cutoff: datetime) -> dict[str, int]:
    """Delete predictions, labels and quarantined rows, runs, delivered outbox rows and
    processed Slack events older than `cutoff`; returns the counts by kind."""
    return {
        **purge_before(session, cutoff),
        "runs": session.execute(delete(Run).where(Run.window_end < cutoff)).rowcount,
        "outbox": session.execute(
            delete(Outbox).where(Outbox.delivered_at.is_not(None), Outbox.delivered_at < cutoff)
        ).rowcount,
        "events": session.execute(delete(ProcessedEvent).where(ProcessedEvent.received_at < cutoff)).rowcount,
    }
