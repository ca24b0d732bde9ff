"""Alert rules and the alert lifecycle, as pure decisions.

`findings(result)` reads a run's typed result and returns what deserves an alert;
`plan(...)` decides, from the model's live alerts, what the run does to them:

- one live alert per de-duplication key (model, kind, feature);
- a finding whose alert is already live updates it (a follow-up, not a new alert);
- a live alert with no finding for `resolve_after` clean windows in a row resolves;
- a muted (model, kind, feature) raises nothing; the mute is a policy with an end date.

The store applies the plan (`monitor.store.alerts.apply_plan`) in the run's transaction
and the cycle queues one outbox event per opened, re-fired or resolved alert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from monitor.result import Gaps, RunResult, Traffic
from monitor.vocab import SEVERITY, AlertKind, AlertStatus, RunStatus, Severity

#: share of quarantined rows in a window that raises a data_quality alert
QUARANTINE_SHARE = 0.01
#: increase of a feature's missing share over the baseline's that raises data_quality
MISSING_INCREASE = 0.1


class Policies(Protocol):
    def is_muted(self, kind: str, feature: str | None) -> bool: ...


@dataclass(frozen=True)
class Finding:
    """Something wrong in one run that deserves an alert."""

    kind: AlertKind
    feature: str | None
    title: str
    details: Mapping[str, Any] = field(default_factory=dict)
    lines: tuple[str, ...] = ()

    @property
    def severity(self) -> Severity:
        return SEVERITY[AlertKind(self.kind)]


def dedup_key(model: str, kind: str, feature: str | None) -> str:
    return f"{model}|{kind}|{feature or '*'}"


def findings(result: RunResult) -> list[Finding]:
    """Every finding in a run's result, most important first."""
    if result.status == RunStatus.FAILED:
        return [run_failed(result.error or "unknown error")]
    found: list[Finding] = []
    report = result.drift
    if report is not None and report.features:
        found.extend(_drift_findings(result.model, report))
    if result.attribution is not None:
        found.extend(_attribution_findings(result.attribution))
    if result.performance is not None:
        found.extend(_performance_findings(result.performance))
    quality = _quality_finding(result)
    if quality:
        found.append(quality)
    if result.traffic is not None and result.traffic.stopped:
        found.append(_no_data_finding(result.end, result.traffic))
    if result.gaps is not None and result.gaps.windows:
        found.append(_gap_finding(result.model, result.gaps))
    found.extend(transparency_findings(result))
    return found


def transparency_findings(result: RunResult) -> list[Finding]:
    """surrogate_fidelity, reason_shift and faithfulness findings of a run."""
    found = []
    if result.surrogate is not None and result.surrogate.flagged:
        found.append(_surrogate_finding(result.surrogate))
    shift = getattr(result.decision_reasons, "shift", None)
    if shift is not None and shift.shifted:
        found.append(_reason_shift_finding(shift))
    if result.faithfulness is not None and result.faithfulness.exceeded:
        f = result.faithfulness
        steps = f"{f.steps} steps" if f.steps else "the configured steps"
        found.append(Finding(
            AlertKind.FAITHFULNESS,
            None,
            f"attributions no longer add up: median completeness error {f.median_error:.3g} "
            f"> tolerance {f.tolerance:g}",
            f.to_dict(),
            (
                f"{f.method} with {steps} on {f.rows} production rows: contributions miss "
                f"{f.median_error:.1%} (median) of the output change they explain; {f.above} of "
                f"{f.rows} rows above the tolerance (sign test p = {f.p_value:.2g})",
                "the stated reasons cannot be trusted: set attribution.steps higher, or check "
                "the model for saturated or non-differentiable parts",
            ),
        ))
    return found


def _surrogate_finding(s: Any) -> Finding:
    tree = s.tree
    lines = []
    if s.fidelity_low:
        lines.append(
            f"surrogate tree (depth {tree.depth}) R^2 {tree.fidelity:.3f} on {tree.test_rows} held-out rows, "
            f"below the baseline's {s.alpha:.0%} quantile {s.lower_bound:.3f} for windows of this size "
            f"(baseline median {_num(s.baseline_median)}, {s.resamples} bootstrap windows)"
        )
    if s.top_split_changed:
        lines.append(
            f"first split on {tree.top_feature!r} instead of {s.baseline_top_feature!r}: "
            f"on the window's held-out rows a split on {s.baseline_top_feature!r} errs more "
            f"(Wilcoxon p = {s.top_split_p_value:.2g})"
        )
    lines.extend(tree.rules[:4])
    what = "harder to summarise" if s.fidelity_low else "summarised by a different first split"
    return Finding(AlertKind.SURROGATE_FIDELITY, None, f"the model's behaviour became {what}",
                   {k: v for k, v in s.to_dict().items() if k != "rules"}, tuple(lines))


def _reason_shift_finding(shift: Any) -> Finding:
    win, base = shift.shares(shift.window), shift.shares(shift.baseline)
    names = sorted(set(win) | set(base), key=lambda n: -abs(win.get(n, 0.0) - base.get(n, 0.0)))
    lines = [
        f"total-variation distance {shift.distance:.3f} (a clean window of this size exceeds "
        f"{shift.threshold:.3f} with probability {shift.alpha:g}; permutation p = {shift.p_value:.3g})"
    ]
    for name in names[:3]:
        lines.append(f"{name}: top reason of {base.get(name, 0.0):.0%} -> {win.get(name, 0.0):.0%} "
                     "of unfavourable decisions")
    return Finding(AlertKind.REASON_SHIFT, None, "the reasons behind unfavourable decisions changed",
                   shift.to_dict(), tuple(lines))


def _no_data_finding(end: datetime, traffic: Traffic) -> Finding:
    quiet = traffic.quiet_windows
    return Finding(
        AlertKind.NO_DATA,
        None,
        f"no predictions received for {quiet} window(s) in a row",
        {"quiet_windows": quiet, "until": end.isoformat()},
        (
            f"the last {quiet} window(s) up to {end.isoformat()} had no valid prediction; "
            "is the serving app still sending them?",
        ),
    )


def _gap_finding(model: str, gaps: Gaps) -> Finding:
    start, end = gaps.start.isoformat(), gaps.end.isoformat()
    return Finding(
        AlertKind.DATA_GAP,
        None,
        f"{len(gaps.windows)} window(s) were never computed ({start} .. {end})",
        {"missed_windows": len(gaps.windows), "start": start, "end": end},
        (
            f"monitor was not running from {start} to {end}: nothing was judged there",
            f"compute them with: monitor backfill {model} --start {start} --end {end}",
        ),
    )


def run_failed(message: str) -> Finding:
    return Finding(
        AlertKind.RUN_FAILED,
        None,
        f"monitoring run failed: {message[:200]}",
        {"error": message[:2000]},
        (message[:500],),
    )


def _drift_findings(model: str, report: Any) -> list[Finding]:
    found = []
    features = report.features
    drifted = list(report.drifted_features)
    if report.dataset_drift:
        found.append(
            Finding(
                AlertKind.DATASET_DRIFT,
                None,
                f"{len(drifted)} of {len(features)} features drifted ({report.drift_share:.0%})",
                {
                    "drift_share": report.drift_share,
                    "share_threshold": report.share_threshold,
                    "drifted_features": drifted,
                },
                tuple(_drift_line(n, features[n]) for n in drifted),
            )
        )
    for name in drifted:
        f = features[name]
        found.append(
            Finding(
                AlertKind.FEATURE_DRIFT,
                name,
                f"input feature '{name}' drifted",
                _verdict_details(f),
                (_drift_line(name, f),),
            )
        )
    pred = report.prediction
    if pred is not None and pred.drifted:
        found.append(
            Finding(
                AlertKind.PREDICTION_DRIFT,
                None,
                f"the model's predictions of '{model}' drifted",
                _verdict_details(pred),
                (_drift_line("prediction", pred),),
            )
        )
    return found


def _verdict_details(f: Any) -> dict[str, Any]:
    from monitor.drift.records import plain

    return {"method": f.method, "score": plain(f.score), "threshold": plain(f.threshold)}


def _drift_line(name: str, f: Any) -> str:
    return f"{name}: {f.method} score {_num(f.score)} (threshold {_num(f.threshold)})"


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else str(value)


def _attribution_findings(attribution: Any) -> list[Finding]:
    if not attribution.drifted:
        return []
    feats = attribution.feature_table()
    changes = sorted(
        ((name, (f.get("current") or 0.0) - (f.get("baseline") or 0.0)) for name, f in feats.items()),
        key=lambda item: -abs(item[1]),
    )
    threshold = attribution.threshold if attribution.threshold is not None else 0.9
    ndcg = float(attribution.drift.ndcg)
    lines = [f"nDCG of the importance ranking {ndcg:.3f} (threshold {threshold:.3g})"]
    for name, delta in changes[:3]:
        word = "gained" if delta > 0 else "lost"
        f = feats[name]
        lines.append(f"{name} {word} influence: {f.get('baseline') or 0:.4g} -> {f.get('current') or 0:.4g}")
    return [
        Finding(
            AlertKind.ATTRIBUTION_DRIFT,
            None,
            "the model's reasoning shifted (feature importance ranking changed)",
            {
                "ndcg": ndcg,
                "threshold": attribution.threshold,
                "top_changes": [name for name, _ in changes[:3]],
            },
            tuple(lines),
        )
    ]


def _performance_findings(performance: Any) -> list[Finding]:
    degraded = {name: m for name, m in performance.metrics.items() if m.degraded}
    if not degraded:
        return []
    lines = tuple(f"{name}: {_num(m.baseline)} -> {_num(m.current)}" for name, m in degraded.items())
    return [
        Finding(
            AlertKind.PERFORMANCE_DROP,
            None,
            f"performance dropped ({', '.join(degraded)})",
            {"metrics": {name: m.to_dict() for name, m in degraded.items()}},
            lines,
        )
    ]


def _quality_finding(result: RunResult) -> Finding | None:
    total = result.rows + result.quarantined
    quarantined = result.quarantined
    lines = []
    if total and quarantined / total >= QUARANTINE_SHARE:
        reasons = ", ".join(f"{r} {n}" for r, n in result.reasons.items())
        lines.append(f"{quarantined} of {total} rows quarantined ({reasons})")
    quality = result.quality
    if quality is not None:
        for name, values in quality.unseen.items():
            if values:
                shown = ", ".join(map(str, list(values)[:5]))
                lines.append(f"{name}: categories never seen in the baseline: {shown}")
        for name, share in quality.missing_increase.items():
            if share >= MISSING_INCREASE:
                lines.append(f"{name}: {share:.0%} more missing values than the baseline")
    if not lines:
        return None
    return Finding(
        AlertKind.DATA_QUALITY,
        None,
        "data quality problems in the window",
        {"quarantined": quarantined, "rows": total},
        tuple(lines),
    )


@dataclass(frozen=True)
class LiveAlert:
    """What the lifecycle needs to know of an alert that is not resolved."""

    id: int
    key: str
    kind: str
    status: str
    clean_windows: int


@dataclass(frozen=True)
class AlertPlan:
    """What one run does to its model's alerts; the store applies it."""

    #: findings without a live alert: new alerts
    open: tuple[tuple[str, Finding], ...] = ()
    #: (alert id, finding): live alerts that fired again
    refire: tuple[tuple[int, Finding], ...] = ()
    #: (alert id, clean windows now, resolves): live alerts that did not fire
    clean: tuple[tuple[int, int, bool], ...] = ()
    #: dedup keys whose finding a policy muted
    muted: tuple[str, ...] = ()


def plan(
    model: str,
    live: Sequence[LiveAlert],
    found: Sequence[Finding],
    *,
    policies: Policies,
    resolve_after: int,
    run_status: str,
) -> AlertPlan:
    """Decide what a run's findings do to the model's live alerts.

    A window with too little data to judge leaves alerts without a finding as they are;
    a failed run does not resolve its own `run_failed` alert, a good one resolves it at once.
    """
    by_key = {a.key: a for a in live}
    opened: dict[str, Finding] = {}
    refire, muted = [], []
    seen: set[str] = set()
    for finding in found:
        key = dedup_key(model, finding.kind, finding.feature)
        seen.add(key)
        if policies.is_muted(finding.kind, finding.feature):
            muted.append(key)
        elif key in by_key:
            refire.append((by_key[key].id, finding))
        else:
            opened[key] = finding
    clean = []
    count_clean = run_status == RunStatus.SUCCEEDED
    for key, alert in by_key.items():
        if key in seen or not count_clean:
            continue
        windows = alert.clean_windows + 1
        resolves = windows >= resolve_after or alert.kind == AlertKind.RUN_FAILED
        clean.append((alert.id, windows, resolves))
    return AlertPlan(tuple(opened.items()), tuple(refire), tuple(clean), tuple(muted))


def alert_view(alert: Any) -> dict[str, Any]:
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


__all__ = [
    "AlertPlan",
    "AlertStatus",
    "Finding",
    "LiveAlert",
    "alert_view",
    "dedup_key",
    "findings",
    "plan",
    "run_failed",
]
