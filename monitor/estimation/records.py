"""Frozen results of performance estimation: estimated and realized metrics of a window.

Every record has ``to_dict()`` returning JSON-safe plain data (NaN and infinities
become ``None``); nothing else reads their fields by string key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from monitor.drift.records import plain
from monitor.errors import MonitorError


class EstimationError(MonitorError):
    """Performance cannot be estimated (or measured) from the given data."""


class Task(StrEnum):
    """What the model predicts; the values are those of `models.task`."""

    BINARY = "binary_classification"
    MULTICLASS = "multiclass_classification"
    REGRESSION = "regression"


class Method(StrEnum):
    """How an estimate was made."""

    CBPE = "cbpe"  # confidence-based performance estimation (classification)
    DLE = "dle"  # direct loss estimation (regression)


#: metrics where a higher value is better; the others (mae, rmse, ece, brier, fpr, fnr)
#: are errors
HIGHER_IS_BETTER = frozenset({"roc_auc", "accuracy", "precision", "recall", "f1"})




@dataclass(frozen=True)
class MetricEstimate:
    """One estimated metric of a window.

    `sampling_error` is the standard deviation of the metric a fully labelled window
    would realize, given the window's own predictions and the baseline's relation
    between inputs and outcomes; `lower` / `upper` = value -/+ `band_sigmas` of it,
    clipped to the metric's range. NaN everywhere when the metric is undefined.
    """

    name: str
    value: float
    sampling_error: float
    lower: float
    upper: float

    @property
    def higher_is_better(self) -> bool:
        return self.name in HIGHER_IS_BETTER

    def contains(self, realized: float) -> bool:
        """Whether a realized value falls inside the band."""
        return bool(self.lower <= realized <= self.upper)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": plain(float(self.value)),
            "sampling_error": plain(float(self.sampling_error)),
            "lower": plain(float(self.lower)),
            "upper": plain(float(self.upper)),
        }


@dataclass(frozen=True)
class Estimate:
    """The estimated performance of one window without its labels.

    Valid under the assumption of no concept drift: the relation between inputs (or
    scores) and outcomes is the baseline's; only the input distribution may change.
    """

    task: Task
    method: Method
    rows: int
    metrics: Mapping[str, MetricEstimate]
    #: classification: whether the scores were recalibrated (isotonic) on the baseline
    calibrated: bool = False
    decision_threshold: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))

    def __getitem__(self, name: str) -> MetricEstimate:
        return self.metrics[name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task.value,
            "method": self.method.value,
            "rows": int(self.rows),
            "calibrated": bool(self.calibrated),
            "decision_threshold": plain(self.decision_threshold),
            "assumption": "no concept drift",
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
        }


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of a reliability chart: scores in [lower, upper) against outcomes."""

    lower: float
    upper: float
    rows: int
    #: mean predicted probability of the rows in the bin
    mean_predicted: float
    #: share of those rows whose outcome was positive (or correct, for multiclass)
    observed: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "lower": plain(float(self.lower)),
            "upper": plain(float(self.upper)),
            "rows": int(self.rows),
            "mean_predicted": plain(float(self.mean_predicted)),
            "observed": plain(float(self.observed)),
        }


@dataclass(frozen=True)
class Realized:
    """Performance of a window measured on its labelled rows.

    `metrics` holds what is defined for the data (ROC AUC needs both classes, precision
    needs a predicted positive...); classification adds calibration (`ece`, `brier`),
    the rates at `decision_threshold` (binary) and the reliability bins for a chart.
    """

    task: Task
    labelled_rows: int
    metrics: Mapping[str, float]
    reliability: tuple[ReliabilityBin, ...] = ()
    decision_threshold: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task.value,
            "labelled_rows": int(self.labelled_rows),
            "decision_threshold": plain(self.decision_threshold),
            "metrics": {name: plain(float(v)) for name, v in self.metrics.items()},
            "reliability": [b.to_dict() for b in self.reliability],
        }


@dataclass(frozen=True)
class CalibrationChoice:
    """What the baseline's cross-validation said about recalibrating the scores."""

    isotonic: bool
    #: pooled out-of-fold expected calibration error without / with isotonic regression
    ece_raw: float
    ece_isotonic: float
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "isotonic": self.isotonic,
            "ece_raw": plain(self.ece_raw),
            "ece_isotonic": plain(self.ece_isotonic),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class FitSummary:
    """What an estimator learned from the baseline (stored beside the baseline)."""

    task: Task
    method: Method
    rows: int
    #: the baseline's realized metrics (what estimates are compared against)
    baseline_metrics: Mapping[str, float] = field(default_factory=dict)
    calibration: tuple[CalibrationChoice, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "baseline_metrics", MappingProxyType(dict(self.baseline_metrics)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task.value,
            "method": self.method.value,
            "rows": int(self.rows),
            "baseline_metrics": {k: plain(float(v)) for k, v in self.baseline_metrics.items()},
            "calibration": [c.to_dict() for c in self.calibration],
        }
