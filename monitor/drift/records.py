"""Frozen result records of the drift engine: what the store saves and alert rules read.

Every record has ``to_dict()`` returning JSON-safe plain data (NaN and infinities
become ``None``, numpy scalars become Python numbers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

Kind = Literal["numeric", "categorical"]


def plain(value: Any) -> Any:
    """A JSON-safe version of a scalar: numpy -> Python, NaN/inf -> None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class FeatureDrift:
    """The verdict of one stat test on one column (a feature or the prediction).

    `threshold` is the effective one (after any feedback factor); `p_value_test` says
    whether a LOW score means drift (p-values) or a HIGH one does (distances).
    `score` is NaN when the test could not run; `note` then says why.

    In calibrated mode `p_value` is the tail probability of the statistic under the
    resampled null at this window's size, `alpha` the per-test level it was compared
    with (family budget, multiple-testing correction and feedback factor applied),
    `threshold` the score at which the test turns significant at `alpha` (never below
    the fixed threshold for distances: a practical-significance floor), and
    `min_detectable_shift` the smallest shift this window detects with 90% power, in
    `shift_unit`: "sd" (baseline standard deviations) or "mass" (share of the category
    mass moved). All four are None in fixed mode or when the method is not calibrated.
    `decided_by` names the test whose p-value that is: the method itself, or "ks" for a
    continuous column scored with Evidently's default distance (exact for any shape).
    """

    method: str
    score: float
    threshold: float
    drifted: bool
    kind: Kind
    p_value_test: bool
    note: str | None = None
    p_value: float | None = None
    alpha: float | None = None
    min_detectable_shift: float | None = None
    shift_unit: str | None = None
    decided_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "score": plain(self.score),
            "threshold": plain(self.threshold),
            "drifted": bool(self.drifted),
            "kind": self.kind,
            "p_value_test": bool(self.p_value_test),
            "note": self.note,
            "p_value": plain(self.p_value),
            "alpha": plain(self.alpha),
            "min_detectable_shift": plain(self.min_detectable_shift),
            "shift_unit": self.shift_unit,
            "decided_by": self.decided_by,
        }


@dataclass(frozen=True)
class FeatureQuality:
    """Data quality of one feature in a window, against the baseline."""

    missing_share: float
    #: numeric: finite values below the baseline's minimum or above its maximum
    out_of_range: int = 0
    #: values never seen in the baseline (sorted, as text, at most 20), for a categorical
    #: feature or a numeric one with few distinct values (compared value by value)
    unseen_categories: tuple[str, ...] = ()
    #: how many distinct unseen categories there are (not capped)
    unseen_count: int = 0
    constant: bool = False
    all_missing: bool = False
    #: missing values in the window (its rows minus the values present)
    missing: int = 0
    #: rows of the window holding an unseen value: left out of the feature's drift test
    unseen_rows: int = 0
    #: the baseline's present values, and how many of them occur there once (Good-Turing:
    #: the share of values seen once estimates how often a new row holds one never seen)
    reference_values: int = 0
    reference_singletons: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "missing_share": plain(self.missing_share),
            "out_of_range": int(self.out_of_range),
            "unseen_categories": list(self.unseen_categories),
            "unseen_count": int(self.unseen_count),
            "constant": bool(self.constant),
            "all_missing": bool(self.all_missing),
            "missing": int(self.missing),
            "unseen_rows": int(self.unseen_rows),
            "reference_values": int(self.reference_values),
            "reference_singletons": int(self.reference_singletons),
        }


@dataclass(frozen=True)
class DataQuality:
    """Data quality of every feature in a window."""

    features: Mapping[str, FeatureQuality] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", _frozen(self.features))

    def to_dict(self) -> dict[str, Any]:
        """Flat per-measure maps, the shape alert rules and reports read."""
        f = self.features
        return {
            "missing_share": {n: plain(q.missing_share) for n, q in f.items()},
            "out_of_range": {n: int(q.out_of_range) for n, q in f.items() if q.out_of_range},
            "unseen_categories": {
                n: list(q.unseen_categories) for n, q in f.items() if q.unseen_categories
            },
            "constant": sorted(n for n, q in f.items() if q.constant),
            "all_missing": sorted(n for n, q in f.items() if q.all_missing),
            "missing_count": {n: int(q.missing) for n, q in f.items()},
            "unseen_rows": {n: int(q.unseen_rows) for n, q in f.items() if q.unseen_rows},
        }


@dataclass(frozen=True)
class MetricChange:
    """One performance metric of a window against the baseline's.

    `drop` is ``baseline - current`` for metrics where higher is better (accuracy,
    ROC AUC) and the relative increase ``(current - baseline) / baseline`` for errors
    (log loss, RMSE, MAE). `ci` is the bootstrap interval of the window's metric at
    `ci_level`; with it, `degraded` only when the whole interval lies beyond the
    allowed change (`limit`: the worst acceptable value of the metric).
    """

    name: str
    current: float
    baseline: float | None
    drop: float | None
    degraded: bool
    higher_is_better: bool
    ci: tuple[float, float] | None = None
    ci_level: float | None = None
    limit: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "current": plain(self.current),
            "baseline": plain(self.baseline),
            "drop": plain(self.drop),
            "degraded": bool(self.degraded),
            "higher_is_better": bool(self.higher_is_better),
            "ci": [plain(v) for v in self.ci] if self.ci else None,
            "ci_level": plain(self.ci_level),
            "limit": plain(self.limit),
        }


@dataclass(frozen=True)
class PerformanceResult:
    """Model performance on a window's labelled rows, against the baseline."""

    metrics: Mapping[str, MetricChange]
    labelled_rows: int
    max_drop: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", _frozen(self.metrics))

    @property
    def degraded(self) -> bool:
        """True when any metric got worse than allowed."""
        return any(m.degraded for m in self.metrics.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
            "labelled_rows": int(self.labelled_rows),
            "max_drop": plain(self.max_drop),
            "degraded": self.degraded,
        }


@dataclass(frozen=True)
class DriftReport:
    """Everything the drift engine found in one window.

    When `insufficient_data` is set the window had fewer than `min_rows` rows: no
    stat test ran (`features` is empty), only data quality was measured.
    """

    features: Mapping[str, FeatureDrift]
    dataset_drift: bool
    drift_share: float
    share_threshold: float
    prediction: FeatureDrift | None
    quality: DataQuality
    performance: PerformanceResult | None
    insufficient_data: bool
    min_rows: int
    rows: int
    #: "calibrated" or "fixed"; in calibrated mode `family_alpha` is the per-window
    #: false-alarm rate shared by every test of the window
    threshold_mode: str = "fixed"
    family_alpha: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", _frozen(self.features))

    @property
    def drifted_features(self) -> tuple[str, ...]:
        """Names of the features whose test found drift, in column order."""
        return tuple(name for name, f in self.features.items() if f.drifted)

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": {name: f.to_dict() for name, f in self.features.items()},
            "dataset_drift": bool(self.dataset_drift),
            "drift_share": plain(self.drift_share),
            "share_threshold": plain(self.share_threshold),
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "quality": self.quality.to_dict(),
            "performance": self.performance.to_dict() if self.performance else None,
            "insufficient_data": bool(self.insufficient_data),
            "min_rows": int(self.min_rows),
            "rows": int(self.rows),
            "threshold_mode": self.threshold_mode,
            "family_alpha": plain(self.family_alpha),
        }
