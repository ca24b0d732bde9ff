"""Model cards in the database, and the evidence a card is built from (read only).

`card_evidence` gathers what `monitor.card` needs from the store: the active
baseline's summary, recent runs' stored documents, the surrogate rows, every alert with
its feedback, and every policy with its audit trail. `save_card` keeps each
regenerated card as a new version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from monitor.store.tables import (
    Alert,
    Baseline,
    Feedback,
    Model,
    ModelCard,
    Policy,
    Run,
    SurrogateResult,
)


@dataclass(frozen=True)
class CardEvidence:
    """Plain records read from the store for one model's card."""

    model: str
    task: str | None
    baseline: dict[str, Any] | None
    #: newest first: {"id", "start", "end", "status", "summary"}
    runs: list[dict[str, Any]]
    surrogates: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    policies: list[dict[str, Any]]
    latest_version: int | None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def card_evidence(session: Session, model: str, recent_runs: int) -> CardEvidence:
    """Everything the card shows that the database knows about `model`."""
    row = session.execute(
        select(Baseline, Model.task)
        .join(Model, Model.id == Baseline.model_id)
        .where(Model.name == model, Baseline.active.is_(True))
    ).first()
    task = session.scalar(select(Model.task).where(Model.name == model))
    baseline = None
    if row is not None:
        b = row[0]
        baseline = {
            "version": b.version,
            "created_at": _iso(b.created_at),
            "created_by": b.created_by,
            "source": b.source,
            "rows": b.rows,
            "feature_stats": dict(b.feature_stats or {}),
            "attribution_method": b.attribution_method,
            "importance": dict(b.global_importance or {}),
            "performance": dict(b.performance or {}),
        }
    runs = [
        {"id": r.id, "start": _iso(r.window_start), "end": _iso(r.window_end), "status": r.status,
         "summary": dict(r.summary or {})}
        for r in session.scalars(
            select(Run).where(Run.model == model).order_by(Run.window_start.desc()).limit(recent_runs)
        )
    ]
    surrogates = [
        {"run_id": s.run_id, "fidelity": s.fidelity, "lower_bound": s.lower_bound, "depth": s.depth,
         "top_feature": s.top_feature, "baseline_top_feature": s.baseline_top_feature,
         "flagged": s.flagged, "rules": list(s.rules or [])}
        for s in session.scalars(
            select(SurrogateResult).where(SurrogateResult.model == model)
            .order_by(SurrogateResult.run_id.desc()).limit(recent_runs)
        )
    ]
    alerts = []
    for a in session.scalars(select(Alert).where(Alert.model == model).order_by(Alert.id.desc()).limit(200)):
        feedback = session.scalars(select(Feedback).where(Feedback.alert_id == a.id).order_by(Feedback.id))
        alerts.append({
            "id": a.id, "kind": a.kind, "feature": a.feature, "severity": a.severity,
            "status": a.status, "title": a.title, "opened_at": _iso(a.opened_at),
            "last_fired_at": _iso(a.last_fired_at), "fire_count": a.fire_count,
            "feedback": [
                {"verdict": f.verdict, "user": f.user_name or f.user_id, "comment": f.comment,
                 "source": f.source, "at": _iso(f.created_at)}
                for f in feedback
            ],
        })
    policies = [
        {"id": p.id, "kind": p.kind, "alert_kind": p.alert_kind, "feature": p.feature, "value": p.value,
         "reason": p.reason, "created_by": p.created_by, "created_at": _iso(p.created_at),
         "until": _iso(p.until), "revoked_at": _iso(p.revoked_at), "revoked_by": p.revoked_by,
         "feedback_id": p.feedback_id}
        for p in session.scalars(select(Policy).where(Policy.model == model).order_by(Policy.id))
    ]
    latest = session.scalar(select(func.max(ModelCard.version)).where(ModelCard.model == model))
    return CardEvidence(model, task, baseline, runs, surrogates, alerts, policies, latest)


def save_card(session: Session, model: str, document: dict[str, Any], *, run_id: int | None,
              now: datetime, keep: int | None = None) -> int:
    """Store `document` as the model's next card version and delete versions older than
    the newest `keep`; returns the version."""
    latest = session.scalar(select(func.max(ModelCard.version)).where(ModelCard.model == model)) or 0
    session.add(ModelCard(model=model, version=latest + 1, created_at=now, run_id=run_id,
                          document=document))
    if keep is not None:
        session.execute(delete(ModelCard).where(ModelCard.model == model,
                                                ModelCard.version <= latest + 1 - keep))
    session.flush()
    return latest + 1


def latest_card(session: Session, model: str) -> ModelCard | None:
    """The newest stored card of `model`, or None."""
    return session.scalars(
        select(ModelCard).where(ModelCard.model == model).order_by(ModelCard.version.desc())
    ).first()
