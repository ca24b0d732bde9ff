"""Realized performance of a window's labelled rows, with calibration and threshold rates.

Binary: ROC AUC, accuracy, precision, recall, F1, false-positive and false-negative
rates at the decision threshold; multiclass: accuracy and macro averages (scikit-learn's
conventions, `zero_division=0`; ROC AUC one-vs-rest over the classes both present and
absent); both: expected calibration error, Brier score and the reliability bins
(multiclass: of the top class's score against being right). Regression: MAE, RMSE.
A metric the data cannot define (ROC AUC with one class) is left out.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from monitor.estimation.calibration import brier_score, expected_calibration_error, reliability_bins
from monitor.estimation.records import EstimationError, Realized, Task


def labelled_rows(labels: np.ndarray | None, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels (float) and predictions of the rows whose label has arrived (not NaN/None)."""
    scores = np.asarray(predictions, dtype=float)
    if labels is None:
        return np.empty(0), scores[:0]
    y = pd.to_numeric(pd.Series(np.asarray(labels, dtype=object)), errors="coerce").to_numpy(float)
    if len(y) != len(scores):
        raise EstimationError(f"{len(y)} labels for {len(scores)} predictions: align them by row")
    keep = np.isfinite(y)
    return y[keep], scores[keep]


def realized_metrics(
    task: Task | str,
    labels: np.ndarray | None,
    predictions: np.ndarray,
    decision_threshold: float = 0.5,
    bins: int = 10,
) -> Realized:
    """Metrics of `predictions` on the rows of `labels` that are known.

    `predictions`: (n,) P(class 1) for binary, (n, k) scores for multiclass, (n,)
    values for regression; `labels`: class indices or values, NaN where unknown.
    """
    task = Task(task)
    y, s = labelled_rows(labels, predictions)
    threshold = decision_threshold if task is Task.BINARY else None
    if not len(y):
        return Realized(task, 0, {}, (), threshold)
    if task is Task.REGRESSION:
        error = y - s.reshape(-1)
        metrics = {"mae": float(np.mean(np.abs(error))), "rmse": float(math.sqrt(np.mean(error**2)))}
        return Realized(task, len(y), metrics)
    y = y.astype(int)
    if task is Task.BINARY:
        s = s.reshape(-1)
        if not set(np.unique(y)) <= {0, 1}:
            raise EstimationError("binary labels must be 0 or 1")
        metrics, chart = _binary(y, s, decision_threshold, bins)
    else:
        if s.ndim != 2:
            raise EstimationError(f"multiclass scores must be (rows, classes), got {s.shape}")
        if y.min() < 0 or y.max() >= s.shape[1]:
            raise EstimationError(f"multiclass labels must be class indices 0..{s.shape[1] - 1}")
        metrics, chart = _multiclass(y, s, bins)
    return Realized(task, len(y), metrics, chart, threshold)


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if y.min() == y.max():
        return None
    return float(roc_auc_score(y, s))


def _binary(y: np.ndarray, s: np.ndarray, threshold: float, bins: int):
    predicted = s >= threshold
    tp = int(np.sum(predicted & (y == 1)))
    fp = int(np.sum(predicted & (y == 0)))
    fn = int(np.sum(~predicted & (y == 1)))
    tn = int(np.sum(~predicted & (y == 0)))
    ratios = {
        "accuracy": (tp + tn, len(y)),
        "precision": (tp, tp + fp),
        "recall": (tp, tp + fn),
        "f1": (2 * tp, 2 * tp + fp + fn),
        "false_positive_rate": (fp, fp + tn),
        "false_negative_rate": (fn, fn + tp),
    }
    metrics = {name: num / den for name, (num, den) in ratios.items() if den}
    auc = _auc(y, s)
    if auc is not None:
        metrics["roc_auc"] = auc
    p = np.clip(s, 0.0, 1.0)
    metrics["ece"] = expected_calibration_error(y, p, bins)
    metrics["brier"] = brier_score(y, p)
    return metrics, reliability_bins(y, p, bins)


def _multiclass(y: np.ndarray, s: np.ndarray, bins: int):
    n, k = s.shape
    predicted = s.argmax(axis=1)
    metrics = {"accuracy": float(np.mean(predicted == y))}
    prec, rec, f1, aucs = [], [], [], []
    for c in range(k):
        tp = np.sum((predicted == c) & (y == c))
        npred, npos = np.sum(predicted == c), np.sum(y == c)
        prec.append(tp / npred if npred else 0.0)
        rec.append(tp / npos if npos else 0.0)
        f1.append(2 * tp / (npred + npos) if npred + npos else 0.0)
        auc = _auc((y == c).astype(int), s[:, c])
        if auc is not None:
            aucs.append(auc)
    metrics.update(precision=float(np.mean(prec)), recall=float(np.mean(rec)), f1=float(np.mean(f1)))
    if aucs:
        metrics["roc_auc"] = float(np.mean(aucs))
    p = np.clip(s, 0.0, 1.0)
    confidence = p[np.arange(n), predicted]
    right = (predicted == y).astype(int)
    metrics["ece"] = expected_calibration_error(right, confidence, bins)
    metrics["brier"] = brier_score(y, p)
    return metrics, reliability_bins(right, confidence, bins)
