"""Realized metrics, calibration and threshold rates equal scikit-learn's where both exist."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    recall_score,
    roc_auc_score,
)

from monitor.estimation import Task, expected_calibration_error, realized_metrics, reliability_bins


@pytest.fixture(scope="module")
def binary_window():
    rng = np.random.default_rng(0)
    scores = rng.beta(2, 3, 700)
    labels = (rng.random(700) < scores**0.8).astype(float)
    labels[::7] = np.nan  # labels not arrived yet
    return labels, scores


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.65], ids=["t0.5", "t0.3", "t0.65"])
def test_binary_metrics_equal_scikit_learn(binary_window, threshold):
    labels, scores = binary_window
    known = np.isfinite(labels)
    y, s = labels[known].astype(int), scores[known]
    predicted = (s >= threshold).astype(int)
    result = realized_metrics(Task.BINARY, labels, scores, decision_threshold=threshold)
    assert result.labelled_rows == known.sum() == 600
    tn, fp, fn, tp = confusion_matrix(y, predicted).ravel()
    expected = {
        "accuracy": accuracy_score(y, predicted),
        "precision": precision_score(y, predicted),
        "recall": recall_score(y, predicted),
        "f1": f1_score(y, predicted),
        "roc_auc": roc_auc_score(y, s),
        "false_positive_rate": fp / (fp + tn),
        "false_negative_rate": fn / (fn + tp),
        "brier": brier_score_loss(y, s),
    }
    for name, value in expected.items():
        assert result.metrics[name] == pytest.approx(value, abs=1e-12), name
    assert result.decision_threshold == threshold


@pytest.mark.parametrize("bins", [5, 10, 15], ids=["5-bins", "10-bins", "15-bins"])
def test_reliability_bins_equal_calibration_curve(binary_window, bins):
    labels, scores = binary_window
    known = np.isfinite(labels)
    y, s = labels[known], scores[known]
    prob_true, prob_pred = calibration_curve(y, s, n_bins=bins, strategy="uniform")
    chart = reliability_bins(y, s, bins)
    assert [b.observed for b in chart] == pytest.approx(prob_true, abs=1e-12)
    assert [b.mean_predicted for b in chart] == pytest.approx(prob_pred, abs=1e-12)
    assert sum(b.rows for b in chart) == len(y)
    # ECE is the row-weighted gap of those same bins
    weights = np.array([b.rows for b in chart]) / len(y)
    assert expected_calibration_error(y, s, bins) == pytest.approx(
        float(np.sum(weights * np.abs(prob_true - prob_pred))), abs=1e-12
    )


def test_calibrated_scores_have_small_ece_and_miscalibrated_large():
    rng = np.random.default_rng(1)
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.015
    assert expected_calibration_error(y, p**2) > 0.1


def test_multiclass_metrics_equal_scikit_learn():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(600, 4)) * 2
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = (rng.random(600)[:, None] > np.cumsum(scores, axis=1)[:, :-1]).sum(axis=1)
    predicted = scores.argmax(axis=1)
    result = realized_metrics(Task.MULTICLASS, labels, scores)
    classes = list(range(4))
    expected = {
        "accuracy": accuracy_score(labels, predicted),
        "precision": precision_score(labels, predicted, labels=classes, average="macro", zero_division=0),
        "recall": recall_score(labels, predicted, labels=classes, average="macro", zero_division=0),
        "f1": f1_score(labels, predicted, labels=classes, average="macro", zero_division=0),
        "roc_auc": roc_auc_score(labels, scores, multi_class="ovr", labels=classes),
        "brier": brier_score_loss(labels, scores, labels=classes),
    }
    for name, value in expected.items():
        assert result.metrics[name] == pytest.approx(value, abs=1e-12), name
    right = (predicted == labels).astype(int)
    prob_true, _ = calibration_curve(right, scores.max(axis=1), n_bins=10)
    assert [b.observed for b in result.reliability] == pytest.approx(prob_true, abs=1e-12)


def test_regression_metrics_equal_scikit_learn():
    rng = np.random.default_rng(3)
    y = rng.normal(size=300)
    predictions = y + rng.normal(0, 0.5, 300)
    labels = y.copy()
    labels[:30] = np.nan
    result = realized_metrics("regression", labels, predictions)
    assert result.metrics["mae"] == pytest.approx(mean_absolute_error(y[30:], predictions[30:]), abs=1e-12)
    assert result.metrics["rmse"] == pytest.approx(
        math.sqrt(mean_squared_error(y[30:], predictions[30:])), abs=1e-12
    )
    assert result.labelled_rows == 270 and result.reliability == ()


def test_single_class_and_unlabelled_windows_leave_undefined_metrics_out():
    scores = np.array([0.2, 0.4, 0.7, 0.9])
    one_class = realized_metrics(Task.BINARY, np.zeros(4), scores)
    assert "roc_auc" not in one_class.metrics and "recall" not in one_class.metrics
    assert one_class.metrics["false_positive_rate"] == 0.5
    assert one_class.to_dict()["metrics"]["accuracy"] == 0.5
    none = realized_metrics(Task.BINARY, np.full(4, np.nan), scores)
    assert none.labelled_rows == 0 and not none.metrics
    assert realized_metrics(Task.BINARY, None, scores).labelled_rows == 0
