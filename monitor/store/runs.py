"""Read side of runs, alerts and explanations: what the CLI, reports and Slack ask for."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.store.tables import (
    Alert,
    Prediction,
    Quarantine,
    Run,
    SampleAttribution,
)


def get_run(session: Session, run_id: int) -> Run | None:
    return session.get(Run, run_id)


def latest_explanation(
    session: Session, model: str | None, request_id: str
) -> tuple[SampleAttribution, Run] | None:
    """The stored attribution of a request from the run of the latest window that
    explained it (any model when `model` is None), with that run. The CLI's and
    Slack's `why` both answer from here."""
    query = (
        select(SampleAttribution, Run)
        .join(Run, Run.id == SampleAttribution.run_id)
        .where(SampleAttribution.request_id == request_id)
        .order_by(Run.window_end.desc(), SampleAttribution.id.desc())
        .limit(1)
    )
    if model is not None:
        query = query.where(SampleAttribution.model == model)
    row = session.execute(query).first()
    return (row[0], row[1]) if row else None


def find_prediction(session: Session, model: str, request_id: str) -> Prediction | None:
    """The logged row of one request (through its key: one partition on PostgreSQL)."""
    from monitor.store.predictions import find_logged

    return find_logged(session, model, request_id)


def list_alerts(
    session: Session, model: str | None = None, status: str | None = None, limit: int = 200
) -> list[Alert]:
    query = select(Alert).order_by(Alert.last_fired_at.desc(), Alert.id.desc()).limit(limit)
    if model:
        query = query.where(Alert.model == model)
    if status == "live":
        query = query.where(Alert.status != "resolved")
    elif status:
        query = query.where(Alert.status == status)
    return list(session.scalars(query))


def explained_requests(session: Session, run_id: int, limit: int = 10) -> list[str]:
    """Request ids a run explained (the ones `monitor why` answers from storage)."""
    return list(
        session.scalars(
            select(SampleAttribution.request_id)
            .where(SampleAttribution.run_id == run_id)
            .order_by(SampleAttribution.id)
            .limit(limit)
        )
    )


def quarantined_in_window(session: Session, model: str, start: Any, end: Any) -> dict[str, int]:
    """Rows of a model quarantined at ingest whose own timestamp falls in [start, end),
    counted by reason (rows a run itself rejected are counted by that run)."""
    rows = session.execute(
        select(Quarantine.reason, func.count())
        .where(
            Quarantine.model == model,
            Quarantine.ts >= start,
            Quarantine.ts < end,
            ~Quarantine.source.startswith("run:"),
        )
        .group_by(Quarantine.reason)
    ).all()
    return {reason: int(n) for reason, n in rows}


def has_run(session: Session, model: str, start: Any, end: Any) -> bool:
    """True when the window [start, end) of `model` has a stored run (of any status)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Run)
            .where(Run.model == model, Run.window_start == start, Run.window_end == end)
        )
        or 0
    ) > 0


def last_runs(session: Session) -> dict[str, Any]:
    """Per model, the status and times of its latest window's run (for /healthz)."""
    latest = select(Run.model, func.max(Run.window_end).label("end")).group_by(Run.model).subquery()
    rows = session.execute(
        select(Run.model, Run.status, Run.window_end, Run.finished_at).join(
            latest, (Run.model == latest.c.model) & (Run.window_end == latest.c.end)
        )
    ).all()
    return {
        model: {
            "status": status,
            "window_end": end.isoformat(),
            "finished_at": finished.isoformat() if finished else None,
        }
        for model, status, end, finished in rows
    }


def latest_run(session: Session, model: str) -> Run | None:
    """The run of `model`'s most recent window."""
    return session.scalars(
        select(Run).where(Run.model == model).order_by(Run.window_end.desc(), Run.id.desc())
    ).first()


def models_with_runs(session: Session) -> list[str]:
    return list(session.scalars(select(Run.model).distinct()))


def recent_runs(session: Session, model: str, before: Any, limit: int) -> list[tuple[int, str]]:
    """(rows, status) of the latest `limit` runs of `model` whose window ended by
    `before`, newest first."""
    return [
        (int(rows), str(status))
        for rows, status in session.execute(
            select(Run.rows, Run.status)
            .where(Run.model == model, Run.window_end <= before)
            .order_by(Run.window_end.desc())
            .limit(limit)
        )
    ]


def had_traffic(session: Session, model: str, before: Any) -> bool:
    """True when some run of `model` whose window ended by `before` saw valid rows."""
    found = session.scalars(
        select(Run.id).where(Run.model == model, Run.window_end <= before, Run.rows > 0).limit(1)
    ).first()
    return found is not None


def previous_window_end(session: Session, model: str, before: Any) -> Any:
    """The end of the latest stored window of `model` that ended by `before` (or None)."""
    latest = select(func.max(Run.window_end)).where(Run.model == model, Run.window_end <= before)
    return session.scalar(latest)


def window_starts(session: Session, model: str, since: Any, until: Any) -> set[Any]:
    """Starts of the stored windows of `model` that start in [since, until)."""
    return set(
        session.scalars(
            select(Run.window_start).where(
                Run.model == model, Run.window_start >= since, Run.window_start < until
            )
        )
    )


def first_window_start(session: Session, model: str) -> Any:
    return session.scalar(select(func.min(Run.window_start)).where(Run.model == model))
