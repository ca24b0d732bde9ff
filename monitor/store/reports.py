"""Read queries of `monitor report`: the alerts one run touched and the rows it quarantined."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from monitor.store.tables import Alert, Feedback, Quarantine, Run


@dataclass(frozen=True)
class QuarantinedRow:
    """One quarantined row as the report shows it (raw text not yet masked or cut)."""

    reason: str
    detail: str | None
    source: str
    ts: datetime | None
    raw: str


def run_alerts(
    session: Session, run: Run, fired: Iterable[int] = ()
) -> list[tuple[Alert, list[Feedback]]]:
    """The alerts run `run` opened, re-fired, resolved or last updated, each with its
    feedback, newest first. `fired` are alert ids the run's summary says it raised."""
    ids = sorted({int(i) for i in fired})
    touched = or_(Alert.first_run_id == run.id, Alert.last_run_id == run.id)
    if ids:
        touched = or_(touched, Alert.id.in_(ids))
    alerts = list(
        session.scalars(
            select(Alert)
            .where(Alert.model == run.model, touched)
            .order_by(Alert.last_fired_at.desc(), Alert.id.desc())
        )
    )
    feedback: dict[int, list[Feedback]] = {a.id: [] for a in alerts}
    if alerts:
        for fb in session.scalars(
            select(Feedback).where(Feedback.alert_id.in_(feedback)).order_by(Feedback.created_at)
        ):
            feedback[fb.alert_id].append(fb)
    return [(a, feedback[a.id]) for a in alerts]


def _of_run(run: Run):  # noqa: ANN202 - a SQLAlchemy boolean clause
    """Rows the run rejected itself, and rows of its window quarantined at ingest."""
    return or_(
        Quarantine.source == f"run:{run.id}",
        and_(
            Quarantine.model == run.model,
            Quarantine.ts >= run.window_start,
            Quarantine.ts < run.window_end,
            ~Quarantine.source.startswith("run:"),
        ),
    )


def run_quarantine(
    session: Session, run: Run, per_reason: int = 3
) -> tuple[dict[str, int], list[QuarantinedRow]]:
    """Counts by reason of the rows quarantined for run `run`'s window, and up to
    `per_reason` stored rows of each reason (oldest first)."""
    counts = {
        reason: int(n)
        for reason, n in session.execute(
            select(Quarantine.reason, func.count()).where(_of_run(run)).group_by(Quarantine.reason)
        ).all()
    }
    samples: list[QuarantinedRow] = []
    for reason in sorted(counts):
        for row in session.scalars(
            select(Quarantine)
            .where(_of_run(run), Quarantine.reason == reason)
            .order_by(Quarantine.id)
            .limit(per_reason)
        ):
            samples.append(QuarantinedRow(row.reason, row.detail, row.source, row.ts, row.raw))
    return counts, samples
