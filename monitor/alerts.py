"""Alert rules and the alert lifecycle.

Rules read a run's summary (the documented `monitor once --json` document) and return
findings; `reconcile` turns findings into alerts inside the run's transaction:

- one live alert per de-duplication key (model, kind, feature);
- a finding whose alert is already live updates it (a follow-up, not a new alert);
- a live alert with no finding for `resolve_after` clean windows in a row resolves;
- a muted (model, kind, feature) raises nothing; the mute is a policy with an end date.

Every opened, re-fired or resolved alert queues one outbox row per notification channel.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.store.tables import Alert, Outbox, Run

log = logging.getLogger(__name__)

KINDS = (
    "feature_drift",
    "dataset_drift",
    "prediction_drift",
    "attribution_drift",
    "performance_drop",
    "data_quality",
    "run_failed",
)
SEVERITY = {
    "feature_drift": "warning",
    "dataset_drift": "critical",
    "prediction_drift": "warning",
    "attribution_drift": "warning",
    "performance_drop": "critical",
    "data_quality": "warning",
    "run_failed": "critical",
}
#: share of quarantined rows in a window that raises a data_quality alert
QUARANTINE_SHARE = 0.01
#: increase of a feature's missing share over the baseline's that raises data_quality
MISSING_INCREASE = 0.1


class Policies(Protocol):
    def is_muted(self, kind: str, feature: str | None) -> bool: ...


@dataclass(frozen=True)
class Finding:
    """Something wrong in one run that deserves an alert."""

    kind: str
    feature: str | None
    title: str
    details: Mapping[str, Any] = field(default_factory=dict)
    lines: tuple[str, ...] = ()

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]


def dedup_key(model: str, kind: str, feature: str | None) -> str:
    return f"{model}|{kind}|{feature or '*'}"


def findings(summary: Mapping[str, Any]) -> list[Finding]:
    """Every finding in a run summary, most important first."""
    model = summary["model"]
    found: list[Finding] = []
    drift = summary.get("drift") or {}
    features = drift.get("features") or {}
    drifted = [name for name, f in features.items() if f.get("drifted")]
    if drift.get("dataset_drift"):
        share = drift.get("drift_share", 0.0)
        found.append(
            Finding(
                "dataset_drift",
                None,
                f"{len(drifted)} of {len(features)} features drifted ({share:.0%})",
                {
                    "drift_share": share,
                    "share_threshold": drift.get("share_threshold"),
                    "drifted_features": drifted,
                },
                tuple(_drift_line(n, features[n]) for n in drifted),
            )
        )
    for name in drifted:
        f = features[name]
        found.append(
            Finding(
                "feature_drift",
                name,
                f"input feature '{name}' drifted",
                {k: f.get(k) for k in ("method", "score", "threshold")},
                (_drift_line(name, f),),
            )
        )
    pred = summary.get("prediction_drift")
    if pred and pred.get("drifted"):
        found.append(
            Finding(
                "prediction_drift",
                None,
                f"the model's predictions of '{model}' drifted",
                {k: pred.get(k) for k in ("method", "score", "threshold")},
                (_drift_line("prediction", pred),),
            )
        )
    found.extend(_attribution_findings(summary.get("attribution")))
    found.extend(_performance_findings(summary.get("performance")))
    quality = _quality_finding(summary)
    if quality:
        found.append(quality)
    return found


def _drift_line(name: str, f: Mapping[str, Any]) -> str:
    method, score, threshold = f.get("method"), f.get("score"), f.get("threshold")
    return f"{name}: {method} score {_num(score)} (threshold {_num(threshold)})"


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else str(value)


def _attribution_findings(attribution: Mapping[str, Any] | None) -> list[Finding]:
    if not attribution or not attribution.get("drifted"):
        return []
    feats = attribution.get("features") or {}
    changes = sorted(
        ((name, f.get("current", 0.0) - f.get("baseline", 0.0)) for name, f in feats.items()),
        key=lambda item: -abs(item[1]),
    )
    lines = [
        f"nDCG of the importance ranking {attribution['ndcg']:.3f} "
        f"(threshold {attribution.get('threshold', 0.9):.3g})"
    ]
    for name, delta in changes[:3]:
        word = "gained" if delta > 0 else "lost"
        f = feats[name]
        lines.append(f"{name} {word} influence: {f.get('baseline', 0):.4g} -> {f.get('current', 0):.4g}")
    return [
        Finding(
            "attribution_drift",
            None,
            "the model's reasoning shifted (feature importance ranking changed)",
            {
                "ndcg": attribution["ndcg"],
                "threshold": attribution.get("threshold"),
                "top_changes": [name for name, _ in changes[:3]],
            },
            tuple(lines),
        )
    ]


def _performance_findings(performance: Mapping[str, Any] | None) -> list[Finding]:
    if not performance:
        return []
    degraded = {m: v for m, v in performance.items() if isinstance(v, Mapping) and v.get("degraded")}
    if not degraded:
        return []
    lines = tuple(f"{m}: {_num(v.get('baseline'))} -> {_num(v.get('current'))}" for m, v in degraded.items())
    return [
        Finding(
            "performance_drop",
            None,
            f"performance dropped ({', '.join(degraded)})",
            {"metrics": {m: dict(v) for m, v in degraded.items()}},
            lines,
        )
    ]


def _quality_finding(summary: Mapping[str, Any]) -> Finding | None:
    quality = summary.get("quality") or {}
    total = (summary.get("rows") or 0) + (summary.get("quarantined") or 0)
    quarantined = summary.get("quarantined") or 0
    lines = []
    if total and quarantined / total >= QUARANTINE_SHARE:
        reasons = ", ".join(f"{r} {n}" for r, n in (summary.get("reasons") or {}).items())
        lines.append(f"{quarantined} of {total} rows quarantined ({reasons})")
    for name, values in (quality.get("unseen") or {}).items():
        if values:
            shown = ", ".join(map(str, list(values)[:5]))
            lines.append(f"{name}: categories never seen in the baseline: {shown}")
    for name, share in (quality.get("missing_increase") or {}).items():
        if share >= MISSING_INCREASE:
            lines.append(f"{name}: {share:.0%} more missing values than the baseline")
    if not lines:
        return None
    return Finding(
        "data_quality",
        None,
        "data quality problems in the window",
        {"quarantined": quarantined, "rows": total},
        tuple(lines),
    )


@dataclass(frozen=True)
class Reconciled:
    opened: tuple[int, ...]
    refired: tuple[int, ...]
    resolved: tuple[int, ...]
    muted: tuple[str, ...]


def reconcile(
    session: Session,
    run: Run,
    found: Sequence[Finding],
    *,
    policies: Policies,
    resolve_after: int,
    channels: Iterable[str],
    context: Mapping[str, Any],
    now: datetime,
    count_clean: bool = True,
) -> Reconciled:
    """Apply a run's findings to the alerts of its model; queue their notifications.

    `context` is merged into every outbox payload (run, drift, attribution, quality,
    report hint). With `count_clean=False` (a window with too little data to judge)
    alerts without a finding are left as they are. Runs inside the caller's
    transaction; flushes to get alert ids.
    """
    channels = list(channels)
    live = {
        a.dedup_key: a
        for a in session.scalars(select(Alert).where(Alert.model == run.model, Alert.status != "resolved"))
    }
    opened, refired, muted = [], [], []
    seen: set[str] = set()
    for finding in found:
        key = dedup_key(run.model, finding.kind, finding.feature)
        seen.add(key)
        if policies.is_muted(finding.kind, finding.feature):
            muted.append(key)
            continue
        alert = live.get(key)
        if alert is None:
            alert = _open(session, run, finding, key, now)
            live[key] = alert
            opened.append(alert)
        else:
            if alert.status == "muted":  # its mute ended: it is news again
                alert.status = "open"
            _refire(alert, run, finding, now)
            refired.append(alert)
    resolved = []
    for key, alert in live.items():
        if key in seen or not count_clean:
            continue
        if alert.kind == "run_failed" and run.status == "failed":
            continue
        alert.clean_windows += 1
        if alert.clean_windows >= resolve_after or alert.kind == "run_failed":
            alert.status, alert.resolved_at = "resolved", now
            resolved.append(alert)
    session.flush()
    for event, alerts in (("alert_opened", opened), ("alert_refired", refired), ("alert_resolved", resolved)):
        for alert in alerts:
            queue(session, alert, event, channels, context, now)
    if muted:
        log.info("run %s: %d finding(s) muted by policy: %s", run.id, len(muted), ", ".join(muted))
    return Reconciled(
        tuple(a.id for a in opened),
        tuple(a.id for a in refired),
        tuple(a.id for a in resolved),
        tuple(muted),
    )


def _open(session: Session, run: Run, finding: Finding, key: str, now: datetime) -> Alert:
    alert = Alert(
        model=run.model,
        kind=finding.kind,
        feature=finding.feature,
        dedup_key=key,
        severity=finding.severity,
        status="open",
        title=finding.title,
        details={**finding.details, "lines": list(finding.lines)},
        first_run_id=run.id,
        last_run_id=run.id,
        opened_at=now,
        last_fired_at=now,
        fire_count=1,
        clean_windows=0,
    )
    session.add(alert)
    return alert


def _refire(alert: Alert, run: Run, finding: Finding, now: datetime) -> None:
    alert.fire_count += 1
    alert.last_fired_at, alert.last_run_id, alert.clean_windows = now, run.id, 0
    alert.title = finding.title
    alert.details = {**finding.details, "lines": list(finding.lines)}


def alert_view(alert: Alert) -> dict[str, Any]:
    """The JSON-safe description of an alert used in payloads and listings."""
    return {
        "id": alert.id,
        "model": alert.model,
        "kind": alert.kind,
        "feature": alert.feature,
        "severity": alert.severity,
        "status": alert.status,
        "title": alert.title,
        "fire_count": alert.fire_count,
        "opened_at": alert.opened_at.isoformat() if alert.opened_at else None,
    }


def queue(
    session: Session,
    alert: Alert,
    event: str,
    channels: Iterable[str],
    context: Mapping[str, Any],
    now: datetime,
) -> None:
    """One outbox row per channel for this alert event, in the caller's transaction."""
    lines = list((alert.details or {}).get("lines", []))
    details = {k: v for k, v in (alert.details or {}).items() if k != "lines"}
    payload = {**context, "alert": alert_view(alert), "lines": lines, "details": details}
    for channel in channels:
        session.add(
            Outbox(
                alert_id=alert.id,
                event=event,
                channel=channel,
                payload=payload,
                created_at=now,
                next_attempt_at=now,
            )
        )
