"""Feedback becomes policy: what people answer in Slack changes what the next run does.

- **Expected change** mutes (model, kind, feature) for `mute_days` and offers to adopt
  the window as the new baseline;
- **False alarm**, `false_alarm_count` times within `false_alarm_window_days` for the
  same (model, kind, feature), multiplies its threshold by `threshold_factor`;
- **Retrain needed** flags the model (shown by `monitor status`).

Every policy records who, when and why, and can be revoked (`monitor policy revoke`).
The cycle reads `active_policies(session, model, now)` at the start of each run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from sqlalchemy.orm import Session

from monitor.config import FeedbackConfig
from monitor.errors import MonitorError
from monitor.events import FeedbackUpdate
from monitor.store import feedback as repo
from monitor.store import outbox
from monitor.store.alerts import shares_message
from monitor.store.tables import Alert, Feedback, Policy
from monitor.vocab import AlertStatus

log = logging.getLogger(__name__)

VERDICTS = ("acknowledge", "expected_change", "false_alarm", "retrain_needed", "comment")
SOURCES = ("button", "modal", "thread", "cli", "ui")


class PolicyError(MonitorError):
    """A policy or verdict request cannot be applied (unknown id, unknown verdict)."""


@dataclass(frozen=True)
class ActivePolicies:
    """The policies in force for one model at one moment, as the cycle needs them."""

    muted: frozenset[tuple[str, str | None]] = frozenset()
    threshold_factors: Mapping[tuple[str, str | None], float] = field(
        default_factory=lambda: MappingProxyType({})
    )
    retrain_requested: bool = False

    def is_muted(self, kind: str, feature: str | None) -> bool:
        """True when alerts of this kind (for this feature, or for all) are muted."""
        return (kind, feature) in self.muted or (kind, None) in self.muted

    def factor(self, kind: str, feature: str | None) -> float:
        """The factor to multiply this check's threshold by; 1.0 when no policy says so."""
        value = self.threshold_factors.get((kind, feature), 1.0)
        if feature is not None:
            value *= self.threshold_factors.get((kind, None), 1.0)
        return value


@dataclass(frozen=True)
class FeedbackOutcome:
    """What one answer changed: the stored feedback, the alert status, new policies."""

    feedback_id: int
    duplicate: bool
    alert_status: str
    policy_ids: tuple[int, ...] = ()
    #: set after "Expected change": the run whose window could become the new baseline
    rebaseline_run_id: int | None = None


def active_policies(session: Session, model: str, now: datetime) -> ActivePolicies:
    """The mutes, threshold factors and retrain flag in force for `model` at `now`."""
    muted: set[tuple[str, str | None]] = set()
    factors: dict[tuple[str, str | None], float] = {}
    retrain = False
    for policy in repo.live_policies(session, model, now):
        key = (policy.alert_kind or "", policy.feature)
        if policy.kind == "mute" and policy.alert_kind:
            muted.add(key)
        elif policy.kind == "threshold" and policy.alert_kind and policy.value:
            factors[key] = factors.get(key, 1.0) * float(policy.value)
        elif policy.kind == "retrain":
            retrain = True
    return ActivePolicies(frozenset(muted), MappingProxyType(factors), retrain)


def apply_feedback(
    session: Session,
    alert: Alert,
    verdict: str,
    *,
    user_id: str,
    user_name: str | None,
    comment: str | None,
    source: str,
    external_id: str | None,
    config: FeedbackConfig,
    now: datetime,
    feature: str | None = None,
) -> FeedbackOutcome:
    """Store one answer on `alert`, update its status, derive policies, queue the Slack update.

    `feature` narrows the answer to one feature of an input-drift alert: a mute or a
    threshold then applies to that feature only (the alert itself is marked only when
    the answer is about all of it). "Expected change" on a whole input-drift alert mutes
    each feature it lists, not input drift in general. A replayed `external_id` changes
    nothing and returns the earlier outcome with `duplicate=True`. Runs in the caller's
    transaction.
    """
    if verdict not in VERDICTS:
        raise PolicyError(f"unknown verdict {verdict!r}: expected one of {', '.join(VERDICTS)}")
    if source not in SOURCES:
        raise PolicyError(
            f"unknown feedback source {source!r}: expected one of {', '.join(SOURCES)}"
        )
    if feature is not None and feature not in alert_features(alert):
        listed = ", ".join(alert_features(alert)) or "none"
        raise PolicyError(f"alert {alert.id} is not about feature {feature!r} (its features: {listed})")
    if external_id:
        earlier = repo.feedback_by_external_id(session, external_id)
        if earlier is not None:
            return FeedbackOutcome(earlier.id, True, alert.status)
    row = repo.add_feedback(
        session,
        alert_id=alert.id,
        user_id=user_id,
        user_name=user_name,
        verdict=verdict,
        comment=comment,
        source=source,
        created_at=now,
        external_id=external_id,
        feature=feature,
    )
    who = user_name or user_id
    policies: list[dict[str, Any]] = []
    rebaseline_run = None
    if verdict == "acknowledge" and alert.status == AlertStatus.OPEN:
        alert.status = AlertStatus.ACKNOWLEDGED
    elif verdict == "expected_change":
        if feature is None:
            alert.status = AlertStatus.MUTED
        targets = [feature] if feature else list(alert_features(alert)) or [alert.feature]
        policies.extend(
            _policy(
                alert,
                "mute",
                row,
                who,
                now,
                until=now + timedelta(days=config.mute_days),
                reason=f"expected change (feedback {row.id} on alert {alert.id})",
                feature=target,
            )
            for target in targets
        )
        rebaseline_run = alert.last_run_id
    elif verdict == "false_alarm":
        raised = _maybe_raise_threshold(session, alert, row, who, config, now)
        if raised is not None:
            policies.append(raised)
    elif verdict == "retrain_needed":
        policies.append(
            _policy(
                alert,
                "retrain",
                row,
                who,
                now,
                until=None,
                reason=f"retrain needed (feedback {row.id} on alert {alert.id})",
            )
        )
    stored = repo.add_policies(session, policies)
    queue_feedback_update(session, alert, now)
    log.info(
        "feedback %s on alert %s: %s by %s via %s, %d policy(ies)",
        row.id,
        alert.id,
        verdict,
        who,
        source,
        len(policies),
    )
    return FeedbackOutcome(row.id, False, alert.status, tuple(p.id for p in stored), rebaseline_run)


def _policy(
    alert: Alert,
    kind: str,
    row: Feedback,
    who: str,
    now: datetime,
    *,
    until: datetime | None,
    reason: str,
    value: float | None = None,
    feature: str | None = None,
) -> dict[str, Any]:
    """The column values of a policy derived from feedback `row` on `alert` (about
    `feature` of it when given)."""
    if row.comment:
        reason = f"{reason}: {row.comment}"
    return dict(
        model=alert.model,
        kind=kind,
        alert_kind=alert.kind if kind != "retrain" else None,
        feature=(feature or alert.feature) if kind != "retrain" else None,
        value=value,
        reason=reason,
        created_by=who,
        created_at=now,
        until=until,
        feedback_id=row.id,
    )


def _maybe_raise_threshold(
    session: Session, alert: Alert, row: Feedback, who: str, config: FeedbackConfig, now: datetime
) -> dict[str, Any] | None:
    """A threshold policy when enough false alarms accumulated since the last raise (for
    the answer's feature when it names one, else for the alert)."""
    target = row.feature or alert.feature
    last = repo.last_threshold_policy(session, alert.model, alert.kind, target)
    since = now - timedelta(days=config.false_alarm_window_days)
    count = repo.count_verdicts(
        session,
        alert.model,
        alert.kind,
        target,
        "false_alarm",
        since,
        after_id=last.feedback_id if last else None,
    )
    if count < config.false_alarm_count:
        return None
    return _policy(
        alert,
        "threshold",
        row,
        who,
        now,
        until=None,
        value=config.threshold_factor,
        reason=(
            f"{count} false alarms within {config.false_alarm_window_days} days: "
            f"threshold x{config.threshold_factor:g}"
        ),
        feature=target,
    )


def alert_features(alert: Alert) -> tuple[str, ...]:
    """The features an alert is about: its own, or the drifted ones an input-drift alert lists."""
    if alert.feature:
        return (alert.feature,)
    return tuple((alert.details or {}).get("drifted_features") or ())


def queue_feedback_update(session: Session, alert: Alert, now: datetime) -> None:
    """Queue the `feedback_update` event that rewrites the alert's Slack message.

    Only alerts that were posted to Slack (they have a ts) have a message to update.
    """
    if not alert.slack_ts:
        return
    from monitor.alerts import alert_view

    answers = [
        {
            "user_id": f.user_id,
            "user_name": f.user_name,
            "verdict": f.verdict,
            "comment": f.comment,
            "feature": f.feature,
            "at": f.created_at.isoformat(),
        }
        for f in repo.feedback_for_alert(session, alert.id)
    ]
    event = FeedbackUpdate(alert_view(alert), alert.status, answers, shared=shares_message(session, alert))
    outbox.queue(session, event, ["slack"], now, alert_id=alert.id)


def record_rebaseline(
    session: Session, alert: Alert, run_id: int, baseline_id: int, *, user: str, now: datetime
) -> Policy:
    """Keep a record that `user` adopted run `run_id` as baseline `baseline_id`."""
    (policy,) = repo.add_policies(session, [dict(
        model=alert.model,
        kind="rebaseline",
        alert_kind=alert.kind,
        feature=alert.feature,
        value=float(baseline_id),
        created_by=user,
        created_at=now,
        until=now,
        reason=f"window of run {run_id} adopted as baseline {baseline_id} (alert {alert.id})",
    )])
    return policy


def revoke_policy(session: Session, policy_id: int, *, by: str, now: datetime) -> Policy:
    """Revoke a policy; it stops applying from the next run. Returns the policy."""
    policy = repo.get_policy(session, policy_id)
    if policy is None:
        raise PolicyError(f"policy {policy_id} does not exist: see `monitor policy list`")
    if policy.revoked_at is not None:
        raise PolicyError(
            f"policy {policy_id} was already revoked by {policy.revoked_by} "
            f"at {policy.revoked_at.isoformat()}"
        )
    policy.revoked_at, policy.revoked_by = now, by
    log.info(
        "policy %s (%s %s/%s for %s) revoked by %s",
        policy.id,
        policy.kind,
        policy.alert_kind,
        policy.feature,
        policy.model,
        by,
    )
    return policy
