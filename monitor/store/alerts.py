"""Alerts in the database: the live ones a run reconciles with, applying the lifecycle
plan `monitor.alerts.plan` decided, and the look-ups the CLI, Slack and status need."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.alerts import AlertPlan, Finding, LiveAlert
from monitor.store.tables import Alert, Run
from monitor.vocab import AlertStatus


def live_alerts(session: Session, model: str) -> list[Alert]:
    """Alerts of `model` that are not resolved, oldest first."""
    return list(
        session.scalars(
            select(Alert).where(Alert.model == model, Alert.status != AlertStatus.RESOLVED).order_by(Alert.id)
        )
    )


def as_live(alerts: list[Alert]) -> list[LiveAlert]:
    return [LiveAlert(a.id, a.dedup_key, a.kind, a.status, a.clean_windows) for a in alerts]


@dataclass(frozen=True)
class Applied:
    """The alerts a plan opened, re-fired and resolved (ORM rows, ids assigned)."""

    opened: tuple[Alert, ...]
    refired: tuple[Alert, ...]
    resolved: tuple[Alert, ...]


def apply_plan(
    session: Session, run: Run, plan: AlertPlan, live: list[Alert], *, now: datetime
) -> Applied:
    """Write a lifecycle plan: new alerts, follow-ups, clean-window counts, resolutions."""
    by_id = {a.id: a for a in live}
    opened = []
    for key, finding in plan.open:
        alert = Alert(
            model=run.model,
            kind=str(finding.kind),
            feature=finding.feature,
            dedup_key=key,
            severity=str(finding.severity),
            status=AlertStatus.OPEN,
            title=finding.title,
            details=_details(finding),
            first_run_id=run.id,
            last_run_id=run.id,
            opened_at=now,
            last_fired_at=now,
            fire_count=1,
            clean_windows=0,
        )
        session.add(alert)
        opened.append(alert)
    refired = []
    for alert_id, finding in plan.refire:
        alert = by_id[alert_id]
        if alert.status == AlertStatus.MUTED:  # its mute ended: it is news again
            alert.status = AlertStatus.OPEN
        alert.fire_count += 1
        alert.last_fired_at, alert.last_run_id, alert.clean_windows = now, run.id, 0
        alert.title = finding.title
        alert.details = _details(finding)
        refired.append(alert)
    resolved = []
    for alert_id, windows, resolves in plan.clean:
        alert = by_id[alert_id]
        alert.clean_windows = windows
        if resolves:
            alert.status, alert.resolved_at = AlertStatus.RESOLVED, now
            resolved.append(alert)
    session.flush()
    return Applied(tuple(opened), tuple(refired), tuple(resolved))


def _details(finding: Finding) -> dict[str, Any]:
    return {**finding.details, "lines": list(finding.lines)}


def raised_views(alerts: tuple[Alert, ...]) -> list[dict[str, Any]]:
    """The `alerts` list of a run's document: what it opened or re-fired."""
    raised = []
    for alert in sorted(alerts, key=lambda a: a.id):
        details = alert.details or {}
        features = (
            [alert.feature]
            if alert.feature
            else details.get("drifted_features") or details.get("top_changes") or []
        )
        raised.append(
            {
                "id": alert.id,
                "kind": alert.kind,
                "severity": alert.severity,
                "features": list(features),
                "status": alert.status,
            }
        )
    return raised


def get_alert(session: Session, alert_id: int) -> Alert | None:
    return session.get(Alert, alert_id)


def alert_for_message(session: Session, channel: str | None, ts: str | None) -> Alert | None:
    """The alert whose Slack message is (channel, ts), if monitor posted it."""
    if not channel or not ts:
        return None
    return session.scalars(select(Alert).where(Alert.slack_channel == channel, Alert.slack_ts == ts)).first()


def channel_has_alerts(session: Session, channel: str | None) -> bool:
    """True when monitor posted at least one alert in `channel`."""
    found = session.scalars(select(Alert.id).where(Alert.slack_channel == channel).limit(1)).first()
    return found is not None


def attach_to_message(session: Session, alert_ids: list[int], channel: str | None, ts: str | None) -> None:
    """Give alerts without a Slack message of their own the message (channel, ts) that
    announced them, so answers in its thread reach them."""
    if not alert_ids or not ts:
        return
    for alert in session.scalars(select(Alert).where(Alert.id.in_(alert_ids), Alert.slack_ts.is_(None))):
        alert.slack_channel, alert.slack_ts = channel, ts


def shares_message(session: Session, alert: Alert) -> bool:
    """True when other alerts were announced in the same Slack message as `alert`."""
    if not alert.slack_ts:
        return False
    other = session.scalars(
        select(Alert.id)
        .where(
            Alert.slack_channel == alert.slack_channel,
            Alert.slack_ts == alert.slack_ts,
            Alert.id != alert.id,
        )
        .limit(1)
    ).first()
    return other is not None
