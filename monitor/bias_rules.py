"""Alert rules of the fairness results: `bias`, `bias_drift`, `explanation_disparity`.

Pure functions of a run's typed `FairnessReport` / `DisparityReport` (see
`monitor.fairness`), called by `monitor.alerts.findings`. One finding per attribute
and group (the alert's feature is ``attribute=group``, so feedback, mutes and
resolution stay per group); its lines give the metric, the interval and its level,
the allowed band and the groups compared.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from monitor.alerts import Finding
from monitor.vocab import AlertKind

#: the alert column `feature` holds 256 characters
_FEATURE_LENGTH = 256


def group_key(attribute: str, group: str) -> str:
    """The alert feature of one group of one protected attribute: ``sex=F``."""
    return f"{attribute}={group}"[:_FEATURE_LENGTH]


def _num(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, int | float) and value == value else "n/a"


def bias_findings(report: Any) -> list[Finding]:
    """One `bias` finding per disadvantaged (attribute, group): every metric whose
    simultaneous interval lies wholly outside its band."""
    by_group: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for finding in report.bias:
        by_group[(finding.attribute, finding.group)].append(finding)
    found = []
    for (attribute, group), items in by_group.items():
        level = report.attributes[attribute].interval_level
        lines = []
        metrics = {}
        for f in items:
            low, high = f.band
            lines.append(
                f"{attribute}={group} vs {attribute}={f.compared_with}: {f.metric.value} "
                f"{_num(f.value)} ({level:.1%} interval {_num(f.ci_low)}..{_num(f.ci_high)}), "
                f"allowed band {_num(low)}..{_num(high)}"
            )
            metrics[f.metric.value] = f.to_dict()
        attr = report.attributes[attribute]
        rows = attr.groups[group].rows if group in attr.groups else None
        lines.append(
            f"{rows} sampled rows in {attribute}={group}; intervals are simultaneous over the "
            f"groups of {attribute} (bootstrap, {report.resamples} resamples)"
        )
        worst = items[0]
        found.append(
            Finding(
                AlertKind.BIAS,
                group_key(attribute, group),
                f"bias against {attribute}={group}: {worst.metric.value} {_num(worst.value)} "
                f"outside {_num(worst.band[0])}..{_num(worst.band[1])} "
                f"(vs {attribute}={worst.compared_with})",
                {
                    "attribute": attribute,
                    "group": group,
                    "compared_with": worst.compared_with,
                    "interval_level": level,
                    "metrics": metrics,
                },
                tuple(lines),
            )
        )
    return found


def bias_drift_findings(report: Any) -> list[Finding]:
    """One `bias_drift` finding per (attribute, group) whose metrics moved against the
    baseline's values beyond chance (Bonferroni across the attribute's tests)."""
    by_group: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for drift in report.drift:
        by_group[(drift.attribute, drift.group)].append(drift)
    found = []
    for (attribute, group), items in by_group.items():
        lines = tuple(
            f"{attribute}={group}: {d.metric.value} {_num(d.baseline)} in the baseline -> "
            f"{_num(d.value)} now (p = {d.p_value:.2g}, level {report.drift_p_value:g} "
            "Bonferroni-corrected)"
            for d in items
        )
        found.append(
            Finding(
                AlertKind.BIAS_DRIFT,
                group_key(attribute, group),
                f"fairness of {attribute}={group} moved against the baseline "
                f"({', '.join(d.metric.value for d in items)})",
                {"attribute": attribute, "group": group, "drift": [d.to_dict() for d in items]},
                lines,
            )
        )
    return found


def disparity_findings(report: Any) -> list[Finding]:
    """One `explanation_disparity` finding per (attribute, group): denied for other
    reasons than the other groups (or than in the baseline), or a feature whose
    influence differs by group (a possible proxy for the attribute)."""
    by_group: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for item in report.findings:
        by_group[(item.attribute, item.group)].append(item)
    found = []
    for (attribute, group), items in by_group.items():
        lines = []
        for item in items:
            if hasattr(item, "feature"):
                lines.append(_influence_line(attribute, group, item))
            else:
                top = ", ".join(f"{k} {v:.0%}" for k, v in list(item.group_reasons.items())[:3])
                other = ", ".join(f"{k} {v:.0%}" for k, v in list(item.other_reasons.items())[:3])
                against = "the other groups" if item.compared_with == "other_groups" else "its baseline"
                if item.judged == "change":
                    judged = (f"total variation {_num(item.distance)}, up from "
                              f"{_num(item.baseline_distance)} in the baseline (a growth above the "
                              f"calibrated {_num(item.threshold)}, p = {item.p_value:.2g})")
                else:
                    judged = (f"total variation {_num(item.distance)} > calibrated threshold "
                              f"{_num(item.threshold)} (p = {item.p_value:.2g})")
                lines.append(
                    f"reasons for unfavorable decisions in {attribute}={group} ({item.rows} rows: "
                    f"{top}) differ from {against} ({item.other_rows} rows: {other}): {judged}"
                )
        found.append(
            Finding(
                AlertKind.EXPLANATION_DISPARITY,
                group_key(attribute, group),
                f"{attribute}={group} is treated for different reasons",
                {"attribute": attribute, "group": group, "findings": [i.to_dict() for i in items]},
                tuple(lines),
            )
        )
    return found


def _influence_line(attribute: str, group: str, item: Any) -> str:
    """One feature whose influence differs by group: its gap, and since when it grew."""
    now = (f"{item.feature}: mean |attribution| {_num(item.group_mean_abs)} in {attribute}={group} "
           f"vs {_num(item.other_mean_abs)} in the other groups")
    if item.judged == "change":
        return (f"{now}, was {_num(item.baseline_group_mean_abs)} vs "
                f"{_num(item.baseline_other_mean_abs)} in the baseline (change of the gap "
                f"{_num(item.statistic)} standard errors, calibrated threshold {_num(item.threshold)}, "
                f"p = {item.p_value:.2g}): a possible proxy for {attribute}, more than before")
    return (f"{now} (Welch t {_num(item.statistic)}, calibrated threshold {_num(item.threshold)}, "
            f"p = {item.p_value:.2g}): a possible proxy for {attribute}")


def fairness_findings(fairness: Any, disparity: Any) -> list[Finding]:
    """Every fairness finding of a run (bias first)."""
    found: list[Finding] = []
    if fairness is not None:
        found += bias_findings(fairness)
        found += bias_drift_findings(fairness)
    if disparity is not None:
        found += disparity_findings(disparity)
    return found
