"""Repository functions for feedback, policies and processed inbound events.

Everything here runs inside the caller's session/transaction; nothing commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from monitor.store.tables import Alert, Feedback, Policy, ProcessedEvent


def feedback_by_external_id(session: Session, external_id: str) -> Feedback | None:
    """The feedback stored for this Slack event id / action key, if any."""
    return session.scalars(select(Feedback).where(Feedback.external_id == external_id)).first()


def feedback_for_alert(session: Session, alert_id: int) -> list[Feedback]:
    """Every answer given on an alert, oldest first."""
    return list(
        session.scalars(select(Feedback).where(Feedback.alert_id == alert_id).order_by(Feedback.id))
    )


def count_verdicts(
    session: Session,
    model: str,
    kind: str,
    feature: str | None,
    verdict: str,
    since: datetime,
    *,
    after_id: int | None = None,
) -> int:
    """How many `verdict` answers alerts of (model, kind, feature) received since `since`
    (and, with `after_id`, after that feedback row)."""
    # an answer about one feature of an alert counts for that feature
    about = func.coalesce(Feedback.feature, Alert.feature)
    feature_match = about.is_(None) if feature is None else about == feature
    return (
        session.scalar(
            select(func.count())
            .select_from(Feedback)
            .join(Alert, Alert.id == Feedback.alert_id)
            .where(
                Alert.model == model,
                Alert.kind == kind,
                feature_match,
                Feedback.verdict == verdict,
                Feedback.created_at >= since,
                Feedback.id > (after_id or 0),
            )
        )
        or 0
    )


def live_policies(session: Session, model: str | None, now: datetime) -> list[Policy]:
    """Policies not revoked and not expired at `now` (all models when `model` is None)."""
    query = select(Policy).where(
        Policy.revoked_at.is_(None), or_(Policy.until.is_(None), Policy.until > now)
    )
    if model is not None:
        query = query.where(Policy.model == model)
    return list(session.scalars(query.order_by(Policy.id)))


def all_policies(session: Session, model: str | None = None) -> list[Policy]:
    """Every policy ever recorded (revoked and expired ones too), oldest first."""
    query = select(Policy).order_by(Policy.id)
    if model is not None:
        query = query.where(Policy.model == model)
    return list(session.scalars(query))


def is_processed(session: Session, key: str) -> bool:
    """Whether an inbound event/action with this key was already handled."""
    return session.get(ProcessedEvent, key) is not None


def mark_processed(session: Session, key: str, now: datetime) -> None:
    """Record `key` as handled; a concurrent duplicate fails on the primary key at flush."""
    session.add(ProcessedEvent(key=key, received_at=now))
    session.flush()


def add_feedback(session: Session, **fields: object) -> Feedback:
    """Insert one answer on an alert (flushed, so its id is known)."""
    row = Feedback(**fields)
    session.add(row)
    session.flush()
    return row


def add_policies(session: Session, policies: list[dict[str, object]]) -> list[Policy]:
    """Insert policies given as column values (flushed, ids known)."""
    rows = [Policy(**fields) for fields in policies]
    session.add_all(rows)
    session.flush()
    return rows


def get_policy(session: Session, policy_id: int) -> Policy | None:
    return session.get(Policy, policy_id)


def last_threshold_policy(
    session: Session, model: str, alert_kind: str, feature: str | None
) -> Policy | None:
    """The newest threshold policy of (model, alert kind, feature), revoked or not."""
    feature_match = Policy.feature.is_(None) if feature is None else Policy.feature == feature
    return session.scalars(
        select(Policy)
        .where(
            Policy.model == model,
            Policy.kind == "threshold",
            Policy.alert_kind == alert_kind,
            feature_match,
        )
        .order_by(Policy.id.desc())
    ).first()
