"""Read side of runs, alerts and explanations: what the CLI, reports and Slack ask for."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.store.tables import (
    Alert,
    Feedback,
    Prediction,
    Quarantine,
    Run,
    SampleAttribution,
)


def get_run(session: Session, run_id: int) -> Run | None:
    return session.get(Run, run_id)


def latest_explanation(session: Session, model: str, request_id: str) -> tuple[SampleAttribution, Run] | None:
    """The most recent stored attribution of a request, with the run that computed it."""
    row = session.execute(
        select(SampleAttribution, Run)
        .join(Run, Run.id == SampleAttribution.run_id)
        .where(SampleAttribution.model == model, SampleAttribution.request_id == request_id)
        .order_by(Run.window_end.desc(), SampleAttribution.id.desc())
        .limit(1)
    ).first()
    return (row[0], row[1]) if row else None


def find_prediction(session: Session, model: str, request_id: str) -> Prediction | None:
    return session.scalars(
        select(Prediction).where(Prediction.model == model, Prediction.request_id == request_id)
    ).first()


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


def alert_history(session: Session, model: str, limit: int = 50) -> list[tuple[Alert, list[Feedback]]]:
    """Recent alerts of a model with the feedback people gave on each."""
    alerts = list_alerts(session, model=model, limit=limit)
    feedback: dict[int, list[Feedback]] = {a.id: [] for a in alerts}
    if alerts:
        for fb in session.scalars(
            select(Feedback).where(Feedback.alert_id.in_(feedback)).order_by(Feedback.created_at)
        ):
            feedback[fb.alert_id].append(fb)
    return [(a, feedback[a.id]) for a in alerts]


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
