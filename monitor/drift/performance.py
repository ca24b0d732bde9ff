"""Model performance on labelled rows, and its change against the baseline.

Classification: accuracy, ROC AUC, log loss (scikit-learn's); regression: RMSE, MAE.
Predictions are shaped as the prediction log keeps them: (n,) P(positive class) for
binary, (n,) values for regression, (n, k) class scores for multiclass; labels are
class indices (or values) with NaN/None where the label has not arrived.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from monitor.drift.records import MetricChange, PerformanceResult
from monitor.errors import DriftError

log = logging.getLogger(__name__)

#: metrics where a higher value is better; the others are errors
HIGHER_IS_BETTER = frozenset({"accuracy", "roc_auc"})
TASKS = ("binary_classification", "multiclass_classification", "regression")


def labelled(
    labels: np.ndarray | None, predictions: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The labels (as float) and predictions of the rows whose label has arrived."""
    if labels is None or predictions is None:
        return np.empty(0), np.empty(0)
    y = pd.to_numeric(pd.Series(np.asarray(labels, dtype=object)), errors="coerce").to_numpy(float)
    scores = np.asarray(predictions, dtype=float)
    if len(y) != len(scores):
        raise DriftError(
            f"{len(y)} labels for {len(scores)} predictions: they must be aligned by row"
        )
    keep = np.isfinite(y)
    return y[keep], scores[keep]


def performance_metrics(
    task: str, labels: np.ndarray | None, predictions: np.ndarray | None
) -> dict[str, float]:
    """Metrics of `predictions` on the labelled rows, as JSON-safe floats.

    A metric that is undefined for the data (ROC AUC with one class present) is left
    out. Returns an empty dict when no row is labelled.
    """
    if task not in TASKS:
        raise DriftError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    y, scores = labelled(labels, predictions)
    if not len(y):
        return {}
    if task == "regression":
        return _regression(y, scores.reshape(-1))
    return _classification(task, y.astype(int), scores)


def _regression(y: np.ndarray, values: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    return {
        "rmse": float(math.sqrt(mean_squared_error(y, values))),
        "mae": float(mean_absolute_error(y, values)),
    }


def _classification(task: str, y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    if task == "binary_classification":
        scores = scores.reshape(-1)
        predicted = (scores >= 0.5).astype(int)
        classes = [0, 1]
        auc = lambda: roc_auc_score(y, scores)  # noqa: E731
    else:
        if scores.ndim != 2:
            raise DriftError(
                f"multiclass predictions must be (rows, classes), got shape {scores.shape}"
            )
        predicted = scores.argmax(axis=1)
        classes = list(range(scores.shape[1]))
        auc = lambda: roc_auc_score(y, scores, multi_class="ovr", labels=classes)  # noqa: E731
    result = {"accuracy": float(accuracy_score(y, predicted))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined metrics are reported by leaving them out
        for name, compute in (
            ("roc_auc", auc),
            ("log_loss", lambda: log_loss(y, scores, labels=classes)),
        ):
            try:
                value = float(compute())
            except ValueError as err:
                log.debug("%s undefined on %d labelled rows: %s", name, len(y), err)
                continue
            if math.isfinite(value):
                result[name] = value
    return result


def compare(
    current: Mapping[str, float],
    baseline: Mapping[str, float] | None,
    max_drop: float,
    labelled_rows: int,
    *,
    max_error_increase: float | None = None,
) -> PerformanceResult:
    """Each current metric against the baseline's: see `MetricChange` for `drop`.

    Scores (accuracy, ROC AUC) are degraded when they fall by more than `max_drop`
    (absolute); errors (log loss, RMSE, MAE) when they rise by more than
    `max_error_increase` of the baseline's value (`max_drop` when not given).
    """
    error_limit = max_drop if max_error_increase is None else max_error_increase
    changes = {}
    for name, value in current.items():
        base = (baseline or {}).get(name)
        higher = name in HIGHER_IS_BETTER
        drop = None
        if base is not None and math.isfinite(base):
            if higher:
                drop = base - value
            elif base > 0:
                drop = (value - base) / base
            else:  # a perfect baseline: any error at all is an infinite relative increase
                drop = math.inf if value > 0 else 0.0
        degraded = drop is not None and drop > (max_drop if higher else error_limit)
        changes[name] = MetricChange(name, value, base, drop, degraded, higher)
    return PerformanceResult(changes, labelled_rows, max_drop)
