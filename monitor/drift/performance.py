"""Model performance on labelled rows, and its change against the baseline.

Classification: accuracy, ROC AUC, log loss (scikit-learn's); regression: RMSE, MAE.
Predictions are shaped as the prediction log keeps them: (n,) P(positive class) for
binary, (n,) values for regression, (n, k) class scores for multiclass; labels are
class indices (or values) with NaN/None where the label has not arrived.

A window's metric has sampling error: `metric_intervals` bootstraps it (the labelled
rows resampled with a seeded RNG, vectorised over resamples), and `compare` calls a
metric degraded only when its whole interval lies beyond the allowed change. The
interval is the bootstrap's percentiles while its resamples reach the level; at the
small levels an alert budget asks for (a tail of 1e-5 from 1,000 resamples) it is the
normal interval of the metric with the bootstrap's standard error. Errors
also need an absolute rise (`error_floors`): a near-zero baseline log loss doubling
is not a degradation anyone can act on.
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
from monitor.vocab import Task

log = logging.getLogger(__name__)

#: metrics where a higher value is better; the others are errors
HIGHER_IS_BETTER = frozenset({"accuracy", "roc_auc"})
TASKS = tuple(Task)
#: bootstrap resamples of each window metric
CI_RESAMPLES = 1000
#: percentile intervals need this many resamples beyond each end; fewer: normal interval
TAIL_DRAWS = 5
_EPS = float(np.finfo(np.float64).eps)


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
    if task == Task.REGRESSION:
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

    if task == Task.BINARY:
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


def error_floors(max_error_increase_abs: float, label_scale: float | None) -> dict[str, float]:
    """The absolute rise each error metric needs: nats for log loss; for RMSE and MAE
    that many standard deviations of the baseline's labels (one default fits any scale)."""
    floors = {"log_loss": max_error_increase_abs}
    if label_scale is not None and math.isfinite(label_scale):
        floors.update(rmse=max_error_increase_abs * label_scale,
                      mae=max_error_increase_abs * label_scale)
    return floors


def metric_intervals(
    task: str,
    labels: np.ndarray | None,
    predictions: np.ndarray | None,
    *,
    level: float = 0.95,
    resamples: int = CI_RESAMPLES,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Bootstrap interval of each metric over the labelled rows at `level` (two-sided).

    Rows are resampled with replacement (multinomial weights, all resamples at once).
    Percentile interval while `TAIL_DRAWS` resamples lie beyond each end; else the
    metric ± the normal quantile × the resamples' standard deviation. A metric
    undefined on the rows (ROC AUC with one class) is left out.
    """
    y, scores = labelled(labels, predictions)
    if len(y) < 2:
        return {}
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(y), np.full(len(y), 1.0 / len(y)), size=resamples).astype(float)
    # row 0: every row once (the window's own metric, the normal interval's centre)
    weights = np.vstack((np.full(len(y), 1.0), weights)) / len(y)
    draws: dict[str, np.ndarray] = {}
    if task == Task.REGRESSION:
        error = scores.reshape(-1) - y
        draws["rmse"] = np.sqrt(weights @ error**2)
        draws["mae"] = weights @ np.abs(error)
    else:
        yi = y.astype(int)
        if task == Task.BINARY:
            p1 = np.clip(scores.reshape(-1), 0.0, 1.0)
            probs = np.column_stack((1 - p1, p1))
        else:
            probs = np.clip(scores, 0.0, None)
            probs = probs / np.maximum(probs.sum(axis=1, keepdims=True), _EPS)
        k = probs.shape[1]
        if yi.min() < 0 or yi.max() >= k:
            return {}
        predicted = (p1 >= 0.5).astype(int) if task == Task.BINARY else (
            probs.argmax(axis=1))
        draws["accuracy"] = weights @ (predicted == yi)
        truth = np.clip(probs[np.arange(len(yi)), yi], _EPS, 1 - _EPS)
        draws["log_loss"] = weights @ -np.log(truth)
        aucs = [
            _weighted_auc(probs[:, c] if k > 2 or c == 1 else probs[:, 1], yi == c, weights)
            for c in ((1,) if k == 2 else range(k))
        ]
        if all(a is not None for a in aucs):
            draws["roc_auc"] = np.mean(aucs, axis=0)
    tail = (1 - level) / 2
    if tail * resamples >= TAIL_DRAWS:
        return {
            name: (float(np.nanquantile(d[1:], tail)), float(np.nanquantile(d[1:], 1 - tail)))
            for name, d in draws.items()
            if np.isfinite(d[1:]).any()
        }
    from scipy.stats import norm

    z = float(norm.isf(tail))
    out = {}
    for name, d in draws.items():
        if np.isfinite(d[0]) and np.isfinite(d[1:]).sum() > 1:
            se = float(np.nanstd(d[1:], ddof=1))
            out[name] = (float(d[0] - z * se), float(d[0] + z * se))
    return out


def _weighted_auc(score: np.ndarray, positive: np.ndarray, weights: np.ndarray):
    """ROC AUC of each weight row (ties count one half); None with one class only."""
    if positive.all() or not positive.any():
        return None
    order = np.argsort(score, kind="stable")
    score, positive, weights = score[order], positive[order], weights[:, order]
    neg = np.where(positive, 0.0, weights)
    pos = np.where(positive, weights, 0.0)
    # negatives strictly below each row, and tied with it, via the group of equal scores
    starts = np.searchsorted(score, score, "left")
    ends = np.searchsorted(score, score, "right")
    cum = np.concatenate((np.zeros((len(weights), 1)), np.cumsum(neg, axis=1)), axis=1)
    below = cum[:, starts]
    tied = cum[:, ends] - below
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + 0.5 * tied)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def compare(
    current: Mapping[str, float],
    baseline: Mapping[str, float] | None,
    max_drop: float,
    labelled_rows: int,
    *,
    max_error_increase: float | None = None,
    error_floors: Mapping[str, float] | None = None,
    intervals: Mapping[str, tuple[float, float]] | None = None,
    ci_level: float | None = None,
) -> PerformanceResult:
    """Each current metric against the baseline's: see `MetricChange` for `drop`.

    Scores (accuracy, ROC AUC) may fall by `max_drop` (absolute); errors (log loss,
    RMSE, MAE) may rise by `max_error_increase` of the baseline's value (`max_drop`
    when not given) or by their `error_floors` entry, whichever is larger. With
    `intervals`, a metric is degraded only when its whole interval lies beyond that
    limit; without, when its value does.
    """
    error_limit = max_drop if max_error_increase is None else max_error_increase
    changes = {}
    for name, value in current.items():
        base = (baseline or {}).get(name)
        higher = name in HIGHER_IS_BETTER
        drop, limit = None, None
        if base is not None and math.isfinite(base):
            if higher:
                drop = base - value
                limit = base - max_drop
            else:
                # a perfect baseline: any error is an infinite relative increase
                drop = (value - base) / base if base > 0 else (math.inf if value > 0 else 0.0)
                limit = base + max(error_limit * base, (error_floors or {}).get(name, 0.0))
        ci = (intervals or {}).get(name)
        edge = value if ci is None else (ci[1] if higher else ci[0])
        degraded = limit is not None and (edge < limit if higher else edge > limit)
        changes[name] = MetricChange(
            name, value, base, drop, bool(degraded), higher,
            ci=tuple(ci) if ci is not None else None,
            ci_level=ci_level if ci is not None else None,
            limit=limit,
        )
    return PerformanceResult(changes, labelled_rows, max_drop)
