"""Repository functions for revisions of a window's realized performance.

Revision 0 is what the run itself measured; `monitor labels refresh` (and the daemon's
`label_refresh` job) stores the next ones when the window's labelled rows changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from monitor.store.tables import Label, PerformanceRevision, Prediction, Run
from monitor.vocab import RunStatus


@dataclass(frozen=True)
class Stale:
    """A stored window whose labels changed since its latest revision."""

    run_id: int
    start: datetime
    end: datetime
    revision: int
    labelled_rows: int
    #: labelled rows in the window now
    labelled_now: int


def labelled_in_window(session: Session, model: str, start: datetime, end: datetime) -> int:
    """Logged predictions of [start, end) that have a label."""
    stmt = (
        select(func.count())
        .select_from(Prediction)
        .join(Label, and_(Label.model == Prediction.model, Label.request_id == Prediction.request_id))
        .where(Prediction.model == model, Prediction.ts >= start, Prediction.ts < end)
    )
    return int(session.scalar(stmt) or 0)


def save_revision(
    session: Session,
    run_id: int,
    revision: int,
    labelled_rows: int,
    coverage: float | None,
    metrics: Mapping[str, Any],
    now: datetime,
) -> PerformanceRevision:
    row = PerformanceRevision(
        run_id=run_id,
        revision=revision,
        labelled_rows=labelled_rows,
        coverage=coverage,
        metrics=dict(metrics),
        computed_at=now,
    )
    session.add(row)
    session.flush()
    return row


def _latest(session: Session, model: str, since: datetime | None = None) -> dict[int, PerformanceRevision]:
    """The latest revision of each of the model's runs (ending at or after `since`)."""
    newest = (
        select(PerformanceRevision.run_id, func.max(PerformanceRevision.revision).label("revision"))
        .join(Run, Run.id == PerformanceRevision.run_id)
        .where(Run.model == model)
        .group_by(PerformanceRevision.run_id)
    )
    if since is not None:
        newest = newest.where(Run.window_end >= since)
    newest = newest.subquery()
    stmt = select(PerformanceRevision).join(
        newest,
        and_(
            PerformanceRevision.run_id == newest.c.run_id,
            PerformanceRevision.revision == newest.c.revision,
        ),
    )
    return {row.run_id: row for row in session.scalars(stmt)}


def stale_windows(session: Session, model: str, since: datetime) -> list[Stale]:
    """Succeeded runs of `model` ending at or after `since` whose labelled-row count
    changed (or whose labels were corrected) since their latest revision, oldest first."""
    counts = (
        select(
            Run.id.label("run_id"),
            func.count(Label.id).label("labelled"),
            func.max(Label.received_at).label("last_label"),
        )
        .select_from(Run)
        .join(
            Prediction,
            and_(
                Prediction.model == Run.model,
                Prediction.ts >= Run.window_start,
                Prediction.ts < Run.window_end,
            ),
        )
        .join(Label, and_(Label.model == Prediction.model, Label.request_id == Prediction.request_id))
        .where(Run.model == model, Run.status == str(RunStatus.SUCCEEDED), Run.window_end >= since)
        .group_by(Run.id)
    )
    now_counts = {row.run_id: (int(row.labelled), row.last_label) for row in session.execute(counts)}
    latest = _latest(session, model, since)
    runs = session.scalars(
        select(Run)
        .where(Run.model == model, Run.status == str(RunStatus.SUCCEEDED), Run.window_end >= since)
        .order_by(Run.window_start)
    )
    stale = []
    for run in runs:
        labelled, last_label = now_counts.get(run.id, (0, None))
        rev = latest.get(run.id)
        done_rows = rev.labelled_rows if rev is not None else 0
        corrected = rev is not None and last_label is not None and last_label > rev.computed_at
        if labelled != done_rows or corrected:
            stale.append(
                Stale(
                    run.id,
                    run.window_start,
                    run.window_end,
                    rev.revision if rev is not None else -1,
                    done_rows,
                    labelled,
                )
            )
    return stale


def model_performance(session: Session, model: str) -> list[tuple[Run, PerformanceRevision | None]]:
    """Each succeeded run of `model` with its latest revision, oldest window first."""
    latest = _latest(session, model)
    runs = session.scalars(
        select(Run)
        .where(Run.model == model, Run.status == str(RunStatus.SUCCEEDED))
        .order_by(Run.window_start)
    )
    return [(run, latest.get(run.id)) for run in runs]


def revision_count(session: Session, run_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(PerformanceRevision).where(PerformanceRevision.run_id == run_id)
        )
        or 0
    )
