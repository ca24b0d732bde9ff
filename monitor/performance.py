"""A window's performance as a run reports it: realized (revised as labels arrive),
estimated without labels (`monitor.estimation`), calibration at the decision threshold.

`judge_estimate` compares a window's estimate with the baseline's realized metrics:
an estimated metric is degraded only when its whole band lies beyond the allowed
change (the same limits as realized metrics, `models.performance`). Estimates assume
no concept drift. `performance_document` is the `performance` key of `once --json`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.estimation import Estimate, EstimationError, PerformanceEstimator, Realized
from monitor.estimation.records import HIGHER_IS_BETTER, plain

if TYPE_CHECKING:
    from monitor.config import ModelConfig

log = logging.getLogger(__name__)

#: estimated metrics that may raise `performance_drop` (those realized ones alert on too);
#: the others (precision, recall, F1) are reported, not alerted on
ALERTING = frozenset({"accuracy", "roc_auc", "mae", "rmse"})
#: what an estimated alert says it assumes
ASSUMPTION = "estimated, assuming no concept drift"


@dataclass(frozen=True)
class EstimatedChange:
    """One estimated metric against the baseline's realized value and the allowed limit."""

    name: str
    value: float
    lower: float
    upper: float
    baseline: float | None
    limit: float | None
    degraded: bool

    @property
    def higher_is_better(self) -> bool:
        return self.name in HIGHER_IS_BETTER

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": plain(self.baseline),
            "limit": plain(self.limit),
            "degraded": bool(self.degraded),
            "higher_is_better": self.higher_is_better,
        }


@dataclass(frozen=True)
class EstimatedPerformance:
    """A window's estimate (CBPE or DLE) and its comparison with the baseline."""

    estimate: Estimate
    changes: Mapping[str, EstimatedChange]

    def __post_init__(self) -> None:
        object.__setattr__(self, "changes", MappingProxyType(dict(self.changes)))

    @property
    def degraded(self) -> dict[str, EstimatedChange]:
        return {name: c for name, c in self.changes.items() if c.degraded}

    def to_dict(self) -> dict[str, Any]:
        doc = self.estimate.to_dict()
        for name, metric in doc["metrics"].items():
            change = self.changes.get(name)
            if change is not None:
                metric.update(change.to_dict())
        doc["degraded"] = bool(self.degraded)
        return doc


def fit_estimator(model: ModelConfig, reference: Any) -> PerformanceEstimator | None:
    """An estimator fitted on the baseline's labelled rows; None (one log line) when the
    baseline has no labels or the estimator cannot learn from it."""
    labels = reference.labels
    if labels is None or not labelled_count(labels):
        log.info(
            "%s: baseline %s has no labels; windows get no estimated performance",
            model.name, reference.version,
        )
        return None
    try:
        return PerformanceEstimator.for_model(model).fit(reference.sample, reference.predictions, labels)
    except EstimationError as err:
        log.warning("%s: no estimated performance from baseline %s: %s", model.name, reference.version, err)
        return None


def labelled_count(labels: Any) -> int:
    """Rows whose label has arrived (not None, not NaN)."""
    if labels is None:
        return 0
    values = np.asarray(labels, dtype=object)
    return int(sum(1 for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))))


def estimate_window(
    model: ModelConfig,
    estimator: PerformanceEstimator,
    frame: Any,
    predictions: Any,
    label_scale: float | None,
) -> EstimatedPerformance | None:
    """The window's estimate judged against the baseline; None when it cannot be made."""
    if predictions is None or not len(frame):
        return None
    try:
        estimate = estimator.estimate(frame, predictions)
    except EstimationError as err:
        log.warning("%s: window not estimated: %s", model.name, err)
        return None
    baseline = estimator.summary.baseline_metrics if estimator.summary is not None else {}
    return judge_estimate(estimate, baseline, model.performance, label_scale)


def judge_estimate(
    estimate: Estimate, baseline: Mapping[str, float], cfg: Any, label_scale: float | None
) -> EstimatedPerformance:
    """Each alerting metric's band against the limit `models.performance` allows.

    Scores may fall by `max_drop`; errors may rise by `max_error_increase` of the
    baseline's value or by `max_error_increase_abs` label standard deviations, whichever
    is larger. Degraded only when the band's better edge is beyond the limit.
    """
    changes = {}
    for name, m in estimate.metrics.items():
        base = baseline.get(name)
        limit = None
        if base is not None and math.isfinite(base):
            if name in HIGHER_IS_BETTER:
                limit = base - cfg.max_drop
            else:
                floor = cfg.max_error_increase_abs * label_scale if label_scale else 0.0
                limit = base + max(cfg.max_error_increase * base, floor)
        degraded = False
        if limit is not None and name in ALERTING and math.isfinite(m.lower) and math.isfinite(m.upper):
            degraded = m.upper < limit if name in HIGHER_IS_BETTER else m.lower > limit
        changes[name] = EstimatedChange(name, m.value, m.lower, m.upper, base, limit, bool(degraded))
    return EstimatedPerformance(estimate, changes)


def realized_calibration(
    model: ModelConfig, estimator: PerformanceEstimator | None, labels: Any, predictions: Any
) -> Realized | None:
    """ECE, Brier score, reliability bins and the rates at the decision threshold of the
    window's labelled rows; None with fewer than `drift.min_rows` of them."""
    if labels is None or predictions is None or labelled_count(labels) < model.drift.min_rows:
        return None
    try:
        if estimator is None:
            estimator = PerformanceEstimator.for_model(model)
        return estimator.realized(labels, predictions)
    except EstimationError as err:
        log.warning("%s: no calibration for the window: %s", model.name, err)
        return None


def realized_document(performance: Any) -> dict[str, Any] | None:
    """Realized metrics as `once --json` shows them: per metric, the comparison with the
    baseline and its bootstrap interval."""
    if performance is None:
        return None
    return {name: m.to_dict() for name, m in performance.metrics.items()}


def performance_document(
    realized: Any,
    estimated: EstimatedPerformance | None,
    calibration: Realized | None,
    labelled_rows: int,
    revision: int,
) -> dict[str, Any]:
    """The `performance` key of a run's document."""
    return {
        "realized": realized_document(realized),
        "estimated": estimated.to_dict() if estimated is not None else None,
        "calibration": calibration.to_dict() if calibration is not None else None,
        "labelled_rows": int(labelled_rows),
        "revision": int(revision),
    }


def label_scale(labels: Any) -> float | None:
    """Standard deviation of the baseline's labels (regression error floors)."""
    if labels is None:
        return None
    values = np.asarray(labels, dtype=object)
    try:
        numbers = np.array([float(v) for v in values if v is not None], dtype=float)
    except (TypeError, ValueError):
        return None
    numbers = numbers[np.isfinite(numbers)]
    return float(numbers.std()) if len(numbers) > 1 else None
