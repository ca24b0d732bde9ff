"""Frozen results of the fairness engine: per-group metrics, verdicts and findings.

Every record has ``to_dict()`` returning JSON-safe plain data (NaN and infinities
become ``None``); alert rules read `FairnessReport.bias` and `FairnessReport.drift`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.fairness.records import Metric, frozen, plain


@dataclass(frozen=True)
class Bands:
    """The allowed band of each metric (ratio_low..ratio_high, ±difference)."""

    ratio_low: float = 0.8
    ratio_high: float = 1.25
    difference: float = 0.1

    def of(self, metric: Metric) -> tuple[float, float] | None:
        if metric is Metric.SELECTION_RATE:
            return None
        if metric.is_ratio:
            return self.ratio_low, self.ratio_high
        return -self.difference, self.difference


@dataclass(frozen=True)
class GroupMetric:
    """One metric of one group in one window: value, interval, verdicts.

    `bias`: the interval lies wholly outside the band. `drift_p_value`: the change
    against the baseline's value; `drifted` when below the Bonferroni-corrected level.
    """

    metric: Metric
    value: float
    ci_low: float
    ci_high: float
    band: tuple[float, float] | None
    bias: bool
    baseline: float | None = None
    drift_p_value: float | None = None
    drifted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": plain(self.value),
            "ci": [plain(self.ci_low), plain(self.ci_high)],
            "band": list(self.band) if self.band else None,
            "bias": bool(self.bias),
            "baseline": plain(self.baseline),
            "drift_p_value": plain(self.drift_p_value),
            "drifted": bool(self.drifted),
        }


@dataclass(frozen=True)
class GroupFairness:
    """One group of a protected attribute in one window.

    `rows` are sampled rows; `weighted_rows` their weight (the window's estimated rows
    when the sample is stratified). `metrics` is empty when the group has fewer than
    `min_rows` rows; the reference group has only its selection rate.
    """

    group: str
    rows: int
    weighted_rows: float
    labelled_rows: int
    favorable_labels: int
    is_reference: bool
    sufficient: bool
    selection_rate: float
    true_positive_rate: float
    false_positive_rate: float
    metrics: Mapping[Metric, GroupMetric]

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", frozen(self.metrics))

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": int(self.rows),
            "weighted_rows": plain(float(self.weighted_rows)),
            "labelled_rows": int(self.labelled_rows),
            "favorable_labels": int(self.favorable_labels),
            "is_reference": bool(self.is_reference),
            "sufficient": bool(self.sufficient),
            "selection_rate": plain(self.selection_rate),
            "true_positive_rate": plain(self.true_positive_rate),
            "false_positive_rate": plain(self.false_positive_rate),
            "metrics": {m.value: r.to_dict() for m, r in self.metrics.items()},
        }


@dataclass(frozen=True)
class BiasFinding:
    """A group the model disadvantages beyond the band, with confidence.

    Always oriented from the disadvantaged group's side: `value` and the interval are
    its metric against `compared_with` (a ratio below `band[0]`, a difference below
    it). When a group is favoured over the reference beyond the band, the finding names
    the reference group as disadvantaged against it.
    """

    attribute: str
    group: str
    compared_with: str
    metric: Metric
    value: float
    ci_low: float
    ci_high: float
    band: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "attribute": self.attribute,
            "group": self.group,
            "compared_with": self.compared_with,
            "metric": self.metric.value,
            "value": plain(self.value),
            "ci": [plain(self.ci_low), plain(self.ci_high)],
            "band": list(self.band),
        }


@dataclass(frozen=True)
class BiasDrift:
    """A group's metric moved against the baseline's value (p-value below the level)."""

    attribute: str
    group: str
    metric: Metric
    value: float
    baseline: float
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "attribute": self.attribute,
            "group": self.group,
            "metric": self.metric.value,
            "value": plain(self.value),
            "baseline": plain(self.baseline),
            "p_value": plain(self.p_value),
        }


@dataclass(frozen=True)
class AttributeFairness:
    """All groups of one protected attribute in one window, and fairlearn-style summaries.

    The summaries run over the groups with at least `min_rows` rows (max minus min, or
    min over max, of the group rates; equalized odds is the larger of the TPR and FPR
    spreads). `note` says why comparisons are missing (e.g. the reference is too small).
    """

    attribute: str
    reference_group: str | None
    reference_source: str
    groups: Mapping[str, GroupFairness]
    missing_rows: int
    demographic_parity_difference: float
    demographic_parity_ratio: float
    equal_opportunity_difference: float
    equalized_odds_difference: float
    note: str | None = None
    #: level of the groups' intervals: `confidence` made simultaneous (Bonferroni) across
    #: the groups compared with the reference and the metric families judged (selection;
    #: TPR and FPR with labels), so a window has about one chance of a false flag
    interval_level: float = 0.95

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", frozen(self.groups))

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference_group": self.reference_group,
            "reference_source": self.reference_source,
            "groups": {g: r.to_dict() for g, r in self.groups.items()},
            "missing_rows": int(self.missing_rows),
            "demographic_parity_difference": plain(self.demographic_parity_difference),
            "demographic_parity_ratio": plain(self.demographic_parity_ratio),
            "equal_opportunity_difference": plain(self.equal_opportunity_difference),
            "equalized_odds_difference": plain(self.equalized_odds_difference),
            "note": self.note,
            "interval_level": plain(self.interval_level),
        }


@dataclass(frozen=True)
class FairnessReport:
    """Fairness of one window: per protected attribute, per group; and what to alert on."""

    attributes: Mapping[str, AttributeFairness]
    rows: int
    labelled_rows: int
    confidence: float
    resamples: int
    bands: Bands
    drift_p_value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", frozen(self.attributes))

    @property
    def bias(self) -> tuple[BiasFinding, ...]:
        """Every metric whose interval lies wholly outside its band, from the
        disadvantaged group's side (see `BiasFinding`)."""
        found = []
        for attr in self.attributes.values():
            ref = attr.reference_group
            for group in attr.groups.values():
                for m in group.metrics.values():
                    if m.bias and m.band is not None and ref is not None:
                        found.append(_oriented(attr.attribute, group.group, ref, m))
        return tuple(found)

    @property
    def drift(self) -> tuple[BiasDrift, ...]:
        """Every group metric that moved against the baseline beyond chance."""
        return tuple(
            BiasDrift(a.attribute, g.group, m.metric, m.value, m.baseline, m.drift_p_value)
            for a in self.attributes.values()
            for g in a.groups.values()
            for m in g.metrics.values()
            if m.drifted and m.baseline is not None and m.drift_p_value is not None
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "attributes": {name: a.to_dict() for name, a in self.attributes.items()},
            "rows": int(self.rows),
            "labelled_rows": int(self.labelled_rows),
            "confidence": plain(self.confidence),
            "resamples": int(self.resamples),
            "bands": {
                "ratio_low": self.bands.ratio_low,
                "ratio_high": self.bands.ratio_high,
                "difference": self.bands.difference,
            },
            "drift_p_value": plain(self.drift_p_value),
            "bias": [f.to_dict() for f in self.bias],
            "drift": [d.to_dict() for d in self.drift],
        }


def _oriented(attribute: str, group: str, reference: str, m: GroupMetric) -> BiasFinding:
    low, high = m.band  # type: ignore[misc]
    if m.ci_high < low:
        return BiasFinding(attribute, group, reference, m.metric, m.value, m.ci_low, m.ci_high, m.band)
    with np.errstate(divide="ignore"):
        if m.metric.is_ratio:
            flip = (1 / m.value, 1 / m.ci_high, 1 / m.ci_low)
        else:
            flip = (-m.value, -m.ci_high, -m.ci_low)
    return BiasFinding(attribute, reference, group, m.metric, *map(float, flip), m.band)
