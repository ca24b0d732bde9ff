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

from monitor.drift.records import plain
from monitor.result import Gaps, QualityTest, RunResult, Traffic
from monitor.vocab import SEVERITY, AlertKind, AlertStatus, RunStatus, Severity


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
    #: when set, replaces the kind's severity (input drift that is dataset drift: critical)
    severity_override: Severity | None = None
    #: the drift report a feature-drift finding came from (to drop muted features)
    report: Any = field(default=None, compare=False, repr=False)

    @property
    def severity(self) -> Severity:
        return self.severity_override or SEVERITY[AlertKind(self.kind)]

    @property
    def features(self) -> tuple[str, ...]:
        """The features this finding is about (its own, or the drifted ones it lists)."""
        if self.feature:
            return (self.feature,)
        return tuple(self.details.get("drifted_features") or ())


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
    found.extend(performance_findings(result.performance, result.estimated))
    quality = _quality_finding(result)
    if quality:
        found.append(quality)
    if result.traffic is not None and result.traffic.stopped:
        found.append(_no_data_finding(result.end, result.traffic))
    if result.gaps is not None and result.gaps.windows:
        found.append(_gap_finding(result.model, result.gaps))
    if result.fairness is not None or result.disparity is not None:
        from monitor.bias_rules import fairness_findings

        found.extend(fairness_findings(result.fairness, result.disparity))
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
    beyond = (f"a clean window of this size exceeds {shift.threshold:.3f} with probability "
              f"{shift.alpha:.2g}" if shift.threshold is not None else f"level {shift.alpha:.2g}")
    lines = [f"total-variation distance {shift.distance:.3f} ({beyond}; permutation p = {shift.p_value:.3g})"]
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
    """Input drift is ONE finding listing the drifted features (dataset drift makes it
    critical); the prediction's drift is another."""
    found = []
    drifted = list(report.drifted_features)
    if drifted:
        found.append(feature_drift_finding(report, drifted))
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


def feature_drift_finding(report: Any, drifted: Sequence[str]) -> Finding:
    """The input-drift finding for `drifted` features of `report` (all drifted ones, or
    what is left of them once muted features are taken out)."""
    features = report.features
    share = len(drifted) / max(len(features), 1)
    dataset = report.dataset_drift and share >= report.share_threshold
    names = ", ".join(drifted[:5]) + (f" and {len(drifted) - 5} more" if len(drifted) > 5 else "")
    title = f"{len(drifted)} of {len(features)} input features drifted ({names})"
    if dataset:
        title = f"dataset drift: {title}"
    return Finding(
        AlertKind.FEATURE_DRIFT,
        None,
        title,
        {
            "drifted_features": list(drifted),
            "drift_share": share,
            "share_threshold": report.share_threshold,
            "dataset_drift": bool(dataset),
            "features": {name: _verdict_details(features[name]) for name in drifted},
        },
        tuple(_drift_line(name, features[name]) for name in drifted),
        severity_override=Severity.CRITICAL if dataset else Severity.WARNING,
        report=report,
    )


def _verdict_details(f: Any) -> dict[str, Any]:
    details = {"method": f.method, "score": plain(f.score), "threshold": plain(f.threshold)}
    if f.p_value is not None:
        details.update(
            p_value=plain(f.p_value),
            alpha=plain(f.alpha),
            min_detectable_shift=plain(f.min_detectable_shift),
            shift_unit=f.shift_unit,
        )
    return details


def _drift_line(name: str, f: Any) -> str:
    line = f"{name}: {f.method} score {_num(f.score)} (threshold {_num(f.threshold)})"
    if f.p_value is not None:
        by = f" ({f.decided_by})" if getattr(f, "decided_by", None) not in (None, f.method) else ""
        line += f", p{by} = {f.p_value:.2g} against a level of {_num(f.alpha)}"
    return line


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else str(value)


def _attribution_findings(attribution: Any) -> list[Finding]:
    """One finding when the importance ranking changed (nDCG) or a feature's influence
    changed beyond its calibrated sampling error, even with the ranking unchanged."""
    shifted = attribution.shifted_features
    if not attribution.drifted and not shifted:
        return []
    feats = attribution.feature_table()
    changes = sorted(
        ((name, (f.get("current") or 0.0) - (f.get("baseline") or 0.0)) for name, f in feats.items()),
        key=lambda item: -abs(item[1]),
    )
    threshold = attribution.threshold if attribution.threshold is not None else 0.9
    ndcg = float(attribution.drift.ndcg)
    lines = [f"nDCG of the importance ranking {ndcg:.3f} (threshold {threshold:.3g})"]
    named = list(shifted) + [name for name, _ in changes[:3] if name not in shifted]
    for name in named[: max(3, len(shifted))]:
        f = feats[name]
        before, after = f.get("baseline") or 0.0, f.get("current") or 0.0
        word = "gained" if after > before else "lost"
        line = f"{name} {word} influence: {before:.4g} -> {after:.4g}"
        if f.get("p_value") is not None:
            line += f" (p = {f['p_value']:.2g}{', beyond sampling error' if f.get('drifted') else ''})"
        lines.append(line)
    if attribution.drifted:
        title = "the model's reasoning shifted (feature importance ranking changed)"
    else:
        title = f"the model's reasoning shifted ({', '.join(shifted)} changed influence)"
    return [
        Finding(
            AlertKind.ATTRIBUTION_DRIFT,
            None,
            title,
            {
                "ndcg": ndcg,
                "threshold": attribution.threshold,
                "top_changes": [name for name, _ in changes[:3]],
                "shifted_features": list(shifted),
            },
            tuple(lines),
        )
    ]


def performance_findings(realized: Any, estimated: Any) -> list[Finding]:
    """`performance_drop` of a window: on its realized metrics when it has them (labels
    trump estimates), else on its estimate."""
    if realized is not None:
        return _performance_findings(realized)
    if estimated is not None:
        return _estimated_findings(estimated)
    return []


def _performance_findings(performance: Any) -> list[Finding]:
    degraded = {name: m for name, m in performance.metrics.items() if m.degraded}
    if not degraded:
        return []
    lines = tuple(_metric_line(name, m) for name, m in degraded.items())
    return [
        Finding(
            AlertKind.PERFORMANCE_DROP,
            None,
            f"performance dropped ({', '.join(degraded)})",
            {"basis": "realized", "metrics": {name: m.to_dict() for name, m in degraded.items()}},
            lines,
        )
    ]


def _estimated_findings(estimated: Any) -> list[Finding]:
    """A drop of estimated performance, only when the whole band is beyond the limit."""
    from monitor.performance import ASSUMPTION

    degraded = estimated.degraded
    if not degraded:
        return []
    metrics = estimated.estimate.metrics
    lines = [
        f"{name}: {_num(c.baseline)} -> {_num(c.value)} (band {_num(c.lower)} .. {_num(c.upper)}, "
        f"limit {_num(c.limit)})"
        for name, c in degraded.items()
    ]
    lines.append(
        f"{ASSUMPTION}: {estimated.estimate.method.value.upper()} on {estimated.estimate.rows} rows "
        "without labels; labels arriving later revise this window"
    )
    return [
        Finding(
            AlertKind.PERFORMANCE_DROP,
            None,
            f"performance dropped ({', '.join(degraded)}; {ASSUMPTION})",
            {
                "basis": "estimated",
                "assumption": "no concept drift",
                "method": estimated.estimate.method.value,
                "metrics": {name: {**metrics[name].to_dict(), **c.to_dict()} for name, c in degraded.items()},
            },
            tuple(lines),
        )
    ]


def _metric_line(name: str, m: Any) -> str:
    line = f"{name}: {_num(m.baseline)} -> {_num(m.current)}"
    ci = getattr(m, "ci", None)
    if ci is not None:
        level = getattr(m, "ci_level", None) or 0.95
        # a budget's level is close to 1 (99.991%): "100%" would claim certainty
        line += f" ({100 * level:.6g}% interval {_num(ci[0])} .. {_num(ci[1])})"
    return line


def _quality_finding(result: RunResult) -> Finding | None:
    """One data_quality finding listing the window's checks that exceed the baseline's
    own rate (missing values, unseen values) or the quarantine rate, each at its share
    of the alert budget (`WindowQuality.checks`), in words with size and p-value."""
    quality = result.quality
    flagged = quality.flagged if quality is not None else ()
    if not flagged:
        return None
    lines = tuple(quality_line(c) for c in flagged)
    named = [c.feature or "quarantine" for c in flagged]
    first = flagged[0]
    title = f"data quality: {_quality_title(first)}"
    if len(flagged) > 1:
        title += f" and {len(flagged) - 1} more ({', '.join(named[1:4])}{'...' if len(named) > 4 else ''})"
    total = result.rows + result.quarantined
    return Finding(
        AlertKind.DATA_QUALITY,
        None,
        title,
        {
            "quarantined": result.quarantined,
            "rows": total,
            "features": sorted({c.feature for c in flagged if c.feature}),
            "checks": [c.to_dict() for c in flagged],
            "alpha": plain(quality.alpha),
        },
        lines,
    )


def _quality_title(c: Any) -> str:
    if c.test == QualityTest.MISSING:
        return f"{c.feature} missing in {c.share:.1%} of rows (baseline {c.expected:.1%})"
    if c.test == QualityTest.UNSEEN:
        return f"{c.feature} has values the baseline never had in {c.share:.1%} of rows"
    return f"{c.share:.1%} of rows quarantined"


def quality_line(c: Any) -> str:
    """A data-quality check in words: what, how much, against what, how sure."""
    sure = f"p = {c.p_value:.2g} (level {c.alpha:.2g})"
    if c.test == QualityTest.MISSING:
        return (f"{c.feature}: {c.share:.1%} missing ({c.count} of {c.rows} rows) vs "
                f"{c.expected:.1%} in the baseline ({c.baseline_count} of {c.baseline_rows}), {sure}")
    if c.test == QualityTest.UNSEEN:
        shown = ", ".join(repr(v) for v in c.values[:5]) + (" ..." if len(c.values) > 5 else "")
        return (f"{c.feature}: {c.count} rows ({c.share:.1%}) with values the baseline never had: "
                f"{shown}; a baseline of {c.baseline_rows} values with {c.baseline_count} seen once "
                f"expects {c.expected:.2%}, {sure}")
    reasons = ", ".join(f"{r} {n}" for r, n in c.reasons.items())
    return (f"{c.count} of {c.rows} rows quarantined ({c.share:.1%}: {reasons}) vs at most "
            f"{c.expected:.1%} expected from a working sender, {sure}")


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
        kept, muted_features = _without_muted_features(finding, policies)
        muted.extend(dedup_key(model, finding.kind, name) for name in muted_features)
        if kept is None or policies.is_muted(kept.kind, kept.feature):
            if kept is not None or not muted_features:
                muted.append(key)
        elif key in by_key:
            refire.append((by_key[key].id, kept))
        else:
            opened[key] = kept
    clean = []
    count_clean = run_status == RunStatus.SUCCEEDED
    for key, alert in by_key.items():
        if key in seen or not count_clean:
            continue
        windows = alert.clean_windows + 1
        resolves = windows >= resolve_after or alert.kind == AlertKind.RUN_FAILED
        clean.append((alert.id, windows, resolves))
    return AlertPlan(tuple(opened.items()), tuple(refire), tuple(clean), tuple(muted))


def _without_muted_features(finding: Finding, policies: Policies) -> tuple[Finding | None, list[str]]:
    """An input-drift finding without the features a policy mutes (None: all muted)."""
    if finding.kind != AlertKind.FEATURE_DRIFT or finding.feature or finding.report is None:
        return finding, []
    listed = finding.features
    muted = [name for name in listed if policies.is_muted(finding.kind, name)]
    if not muted:
        return finding, []
    kept = [name for name in listed if name not in muted]
    return (feature_drift_finding(finding.report, kept) if kept else None), muted


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
    "performance_findings",
    "plan",
    "run_failed",
]
