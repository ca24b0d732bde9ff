"""CBPE: estimated classification metrics follow the realized ones under covariate shift."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.estimation import EstimationError, PerformanceEstimator, Task
from monitor.estimation.calibration import choose_calibration, equal_count_ece


def _binary(rng: np.random.Generator, rows: int, shift: float = 0.0):
    """Well-calibrated scores: P(y=1 | x) = sigmoid(2x), x ~ N(shift, 1)."""
    x = rng.normal(shift, 1.0, rows)
    p = 1.0 / (1.0 + np.exp(-2.0 * x))
    return p, (rng.random(rows) < p).astype(int)


def _multiclass(rng: np.random.Generator, rows: int, shift: float = 0.0, classes: int = 3):
    weights = np.array([[2.0, -1.0, -1.0], [0.0, 1.5, -1.5]])[:, :classes]
    x = rng.normal(shift, 1.0, (rows, 2))
    logits = x @ weights
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (rng.random(rows)[:, None] > np.cumsum(p, axis=1)[:, :-1]).sum(axis=1)
    return p, y


@pytest.fixture(scope="module")
def binary_estimator() -> PerformanceEstimator:
    scores, labels = _binary(np.random.default_rng(0), 4000)
    return PerformanceEstimator(Task.BINARY).fit(None, scores, labels)


@pytest.mark.parametrize("shift", [-1.0, 0.0, 0.7, 1.5], ids=["left", "none", "right", "far-right"])
def test_binary_estimate_recovers_realized_metrics_within_band(binary_estimator, shift):
    scores, labels = _binary(np.random.default_rng(10 + int(shift * 10)), 800, shift)
    estimate = binary_estimator.estimate(None, scores)
    realized = binary_estimator.realized(labels, scores).metrics
    for name in ("accuracy", "roc_auc", "precision", "recall", "f1"):
        metric = estimate[name]
        assert metric.contains(realized[name]), (name, metric, realized[name])
        # the band is a sampling error, not a blanket: a few points wide at 800 rows
        assert 0 < metric.sampling_error < 0.05, (name, metric)
    assert abs(estimate["accuracy"].value - realized["accuracy"]) < 4 * estimate["accuracy"].sampling_error


def test_binary_estimate_moves_with_the_realized_metric(binary_estimator):
    rng = np.random.default_rng(5)
    near, near_y = _binary(rng, 1000, 0.0)  # many uncertain rows
    far, far_y = _binary(rng, 1000, 2.0)  # mostly confident rows
    est = [binary_estimator.estimate(None, s)["accuracy"].value for s in (near, far)]
    real = [binary_estimator.realized(y, s).metrics["accuracy"] for s, y in ((near, near_y), (far, far_y))]
    assert est[1] - est[0] > 0.1 and real[1] - real[0] > 0.1
    assert abs((est[1] - est[0]) - (real[1] - real[0])) < 0.05


def test_sampling_error_follows_the_window_size_and_is_reproducible(binary_estimator):
    scores, _ = _binary(np.random.default_rng(3), 2000)
    small = binary_estimator.estimate(None, scores[:200])
    large = binary_estimator.estimate(None, scores)
    for name in ("accuracy", "roc_auc", "f1"):
        ratio = small[name].sampling_error / large[name].sampling_error
        assert 2.2 < ratio < 4.2, (name, ratio)  # about sqrt(10)
    assert binary_estimator.estimate(None, scores) == large  # seeded simulation


def test_multiclass_estimate_recovers_realized_macro_metrics():
    rng = np.random.default_rng(1)
    scores, labels = _multiclass(rng, 4000)
    estimator = PerformanceEstimator(Task.MULTICLASS, class_names=("a", "b", "c")).fit(None, scores, labels)
    window, window_y = _multiclass(rng, 1000, shift=0.8)
    estimate = estimator.estimate(None, window)
    realized = estimator.realized(window_y, window).metrics
    for name in ("accuracy", "roc_auc", "precision", "recall", "f1"):
        assert estimate[name].contains(realized[name]), (name, estimate[name], realized[name])
        assert abs(estimate[name].value - realized[name]) < 0.05


def test_multiclass_labels_may_be_class_names():
    rng = np.random.default_rng(2)
    scores, labels = _multiclass(rng, 1000)
    names = np.array(["a", "b", "c"])[labels]
    by_name = PerformanceEstimator(Task.MULTICLASS, class_names=("a", "b", "c")).fit(None, scores, names)
    by_index = PerformanceEstimator(Task.MULTICLASS, class_names=("a", "b", "c")).fit(None, scores, labels)
    assert by_name.estimate(None, scores[:300]) == by_index.estimate(None, scores[:300])


def test_isotonic_is_chosen_only_when_it_lowers_held_out_ece():
    rng = np.random.default_rng(4)
    p, y = _binary(rng, 3000)
    for scores, distorted in ((p, False), (p**3, True)):
        calibrator, choice = choose_calibration(y, scores)
        assert choice.isotonic == (choice.ece_isotonic < choice.ece_raw)
        assert calibrator.isotonic == choice.isotonic
        if distorted:  # cubed probabilities are far from calibrated: isotonic repairs them
            assert choice.isotonic and choice.ece_raw > 0.1
            assert equal_count_ece(y, calibrator(scores)) < 0.02
        else:
            assert choice.ece_raw < 0.05
    # an estimator on distorted scores still recovers accuracy through the calibrator
    estimator = PerformanceEstimator(Task.BINARY).fit(None, p[:2000] ** 3, y[:2000])
    assert estimator.summary.calibration[0].isotonic
    estimate = estimator.estimate(None, p[2000:] ** 3)
    assert estimate.calibrated
    assert estimate["accuracy"].contains(estimator.realized(y[2000:], p[2000:] ** 3).metrics["accuracy"])


def test_a_separated_or_single_class_baseline_is_not_recalibrated():
    scores = np.r_[np.full(50, 0.1), np.full(50, 0.9)]
    _, separated = choose_calibration(np.r_[np.zeros(50), np.ones(50)], scores)
    assert not separated.isotonic and "separated" in separated.reason
    estimator = PerformanceEstimator(Task.BINARY).fit(None, scores, np.zeros(100))
    assert not estimator.summary.calibration[0].isotonic
    assert "roc_auc" not in estimator.summary.baseline_metrics  # undefined with one class
    assert math.isfinite(estimator.estimate(None, scores)["accuracy"].value)


def test_a_baseline_without_labels_cannot_be_fitted():
    scores = np.linspace(0, 1, 20)
    with pytest.raises(EstimationError, match="baseline has no labels"):
        PerformanceEstimator(Task.BINARY).fit(None, scores, None)
    with pytest.raises(EstimationError, match="baseline has no labels"):
        PerformanceEstimator(Task.BINARY).fit(None, scores, np.full(20, np.nan))


def test_tiny_and_empty_windows(binary_estimator):
    empty = binary_estimator.estimate(None, np.empty(0))
    assert empty.rows == 0 and all(math.isnan(m.value) for m in empty.metrics.values())
    assert empty.to_dict()["metrics"]["accuracy"]["value"] is None
    one = binary_estimator.estimate(None, np.array([0.2]))
    assert one.rows == 1 and 0.7 < one["accuracy"].value < 0.9
    assert math.isnan(one["precision"].value)  # nothing predicted positive
    assert math.isnan(one["roc_auc"].value) or 0 <= one["roc_auc"].value <= 1
    # all rows on one side of the threshold: recall and F1 still estimated
    low = binary_estimator.estimate(None, np.full(30, 0.3))
    assert low["recall"].value == 0.0 and math.isnan(low["precision"].value)


def test_scores_are_checked(binary_estimator):
    with pytest.raises(EstimationError, match="NaN"):
        binary_estimator.estimate(None, np.array([0.1, np.nan]))
    with pytest.raises(EstimationError, match="rows,"):
        binary_estimator.estimate(None, np.ones((3, 2)))
    with pytest.raises(EstimationError, match="decision_threshold"):
        PerformanceEstimator(Task.BINARY, decision_threshold=1.5)


def test_decision_threshold_changes_precision_and_recall():
    scores, labels = _binary(np.random.default_rng(6), 3000)
    low = PerformanceEstimator(Task.BINARY, decision_threshold=0.3).fit(None, scores, labels)
    high = PerformanceEstimator(Task.BINARY, decision_threshold=0.7).fit(None, scores, labels)
    window, window_y = _binary(np.random.default_rng(7), 1000)
    lo, hi = low.estimate(None, window), high.estimate(None, window)
    assert hi["precision"].value > lo["precision"].value + 0.05
    assert lo["recall"].value > hi["recall"].value + 0.05
    assert lo.decision_threshold == 0.3
    assert hi["precision"].contains(high.realized(window_y, window).metrics["precision"])
