"""Performance against the baseline: metrics equal scikit-learn's on real Keras models."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.metrics import (
    accuracy_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    roc_auc_score,
)

from monitor.config import DriftConfig, PerformanceConfig
from monitor.drift import DriftAnalyzer, compare, performance_metrics
from monitor.drift.performance import error_floors, metric_intervals


def _train(x: np.ndarray, y: np.ndarray, outputs: int, activation: str, loss: str):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(outputs, activation=activation),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
    model.fit(x, y, epochs=15, batch_size=64, verbose=0)
    return model


def _standardize(frame: pd.DataFrame) -> pd.DataFrame:
    return (frame - frame.mean()) / frame.std()


@pytest.fixture(scope="module")
def binary():
    data = load_breast_cancer(as_frame=True)
    x = _standardize(data.data)
    model = _train(
        x.to_numpy("float32"), data.target.to_numpy(), 1, "sigmoid", "binary_crossentropy"
    )
    scores = model.predict(x.to_numpy("float32"), verbose=0).reshape(-1).astype(float)
    return x, data.target.to_numpy().astype(float), scores


@pytest.fixture(scope="module")
def multiclass():
    data = load_wine(as_frame=True)
    x = _standardize(data.data)
    model = _train(
        x.to_numpy("float32"),
        data.target.to_numpy(),
        3,
        "softmax",
        "sparse_categorical_crossentropy",
    )
    return (
        x,
        data.target.to_numpy().astype(float),
        model.predict(x.to_numpy("float32"), verbose=0).astype(float),
    )


def test_binary_metrics_equal_sklearn(binary):
    _, y, p = binary
    got = performance_metrics("binary_classification", y, p)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, p >= 0.5), abs=1e-12)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert got["log_loss"] == pytest.approx(log_loss(y, p), abs=1e-12)
    assert got["accuracy"] > 0.9


def test_multiclass_metrics_equal_sklearn(multiclass):
    _, y, scores = multiclass
    got = performance_metrics("multiclass_classification", y, scores)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, scores.argmax(1)), abs=1e-12)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, scores, multi_class="ovr"), abs=1e-12)
    assert got["log_loss"] == pytest.approx(log_loss(y, scores), abs=1e-12)


def test_regression_metrics_equal_sklearn():
    import keras

    data = load_diabetes(as_frame=True)
    x = _standardize(data.data).to_numpy("float32")
    model = _train(x, data.target.to_numpy(), 1, "linear", "mse")
    keras.backend.clear_session()
    values = model.predict(x, verbose=0).reshape(-1).astype(float)
    got = performance_metrics("regression", data.target.to_numpy(), values)
    assert got["rmse"] == pytest.approx(
        math.sqrt(mean_squared_error(data.target, values)), abs=1e-9
    )
    assert got["mae"] == pytest.approx(mean_absolute_error(data.target, values), abs=1e-9)


def test_unlabelled_rows_are_ignored_and_few_labels_give_none(binary):
    x, y, p = binary
    frame = x.iloc[:, :5]
    analyzer = DriftAnalyzer(
        list(frame.columns), [], DriftConfig(min_rows=30), "binary_classification"
    )
    analyzer.fit(frame.iloc[:300], predictions=p[:300], labels=y[:300])
    labels = y[300:].astype(object)
    labels[::2] = None
    report = analyzer.analyze(frame.iloc[300:], predictions=p[300:], labels=labels)
    keep = np.arange(300, len(y))[1::2]
    assert report.performance.labelled_rows == len(keep)
    assert report.performance.metrics["accuracy"].current == pytest.approx(
        accuracy_score(y[keep], p[keep] >= 0.5), abs=1e-12
    )
    assert report.performance.metrics["accuracy"].baseline == pytest.approx(
        accuracy_score(y[:300], p[:300] >= 0.5), abs=1e-12
    )
    few = np.full(len(y) - 300, np.nan)
    few[:10] = y[300:310]
    assert analyzer.analyze(frame.iloc[300:], predictions=p[300:], labels=few).performance is None


def test_degradation_against_baseline(binary):
    x, y, p = binary
    frame = x.iloc[:, :5]
    analyzer = DriftAnalyzer(
        list(frame.columns),
        [],
        DriftConfig(),
        "binary_classification",
        PerformanceConfig(max_drop=0.05),
    )
    analyzer.fit(frame, predictions=p, labels=y)
    flipped = y.copy()
    flipped[:100] = 1 - flipped[:100]  # a fifth of the labels now disagree
    result = analyzer.analyze(frame, predictions=p, labels=flipped).performance
    assert result.degraded
    accuracy = result.metrics["accuracy"]
    assert (
        accuracy.drop == pytest.approx(accuracy.baseline - accuracy.current) and accuracy.degraded
    )
    loss = result.metrics["log_loss"]
    assert (
        loss.drop == pytest.approx((loss.current - loss.baseline) / loss.baseline) and loss.degraded
    )
    same = analyzer.analyze(frame, predictions=p, labels=y).performance
    assert not same.degraded and same.metrics["accuracy"].drop == 0.0
    assert result.to_dict()["metrics"]["accuracy"]["degraded"] is True


def test_error_metrics_use_relative_increase():
    result = compare({"rmse": 11.0, "mae": 10.4}, {"rmse": 10.0, "mae": 10.0}, 0.05, 100)
    assert result.metrics["rmse"].drop == pytest.approx(0.1) and result.metrics["rmse"].degraded
    assert result.metrics["mae"].drop == pytest.approx(0.04) and not result.metrics["mae"].degraded
    assert result.degraded
    no_baseline = compare({"rmse": 11.0}, None, 0.05, 100)
    assert no_baseline.metrics["rmse"].drop is None and not no_baseline.degraded


def test_one_class_leaves_roc_auc_out():
    got = performance_metrics("binary_classification", np.ones(40), np.linspace(0.4, 0.9, 40))
    assert "roc_auc" not in got and got["accuracy"] == pytest.approx(
        np.mean(np.linspace(0.4, 0.9, 40) >= 0.5)
    )


def test_errors_have_their_own_tolerance():
    result = compare({"accuracy": 0.90, "log_loss": 0.18}, {"accuracy": 0.94, "log_loss": 0.15}, 0.05, 120,
                     max_error_increase=0.25)
    assert not result.metrics["log_loss"].degraded  # +20% is within a 25% tolerance
    assert not result.metrics["accuracy"].degraded  # -0.04 is within 0.05
    worse = compare({"log_loss": 0.2}, {"log_loss": 0.15}, 0.05, 120, max_error_increase=0.25)
    assert worse.metrics["log_loss"].degraded and worse.degraded


def _near_perfect(rng, rows, mean_error):
    """Labels and scores of a near-perfect classifier whose log loss is ~mean_error."""
    y = rng.integers(0, 2, rows).astype(float)
    eps = rng.exponential(mean_error, rows)
    return y, np.where(y == 1, 1 - eps, eps)


def test_near_perfect_classifier_clean_window_is_not_a_degradation():
    """Log loss 0.0008 -> 0.0016 doubles but is below the absolute floor."""
    rng = np.random.default_rng(21)
    frame = pd.DataFrame({"x": rng.normal(size=600)})
    y_base, p_base = _near_perfect(rng, 600, 0.0008)
    y_win, p_win = _near_perfect(rng, 300, 0.0016)
    analyzer = DriftAnalyzer(["x"], [], DriftConfig(), "binary_classification")
    analyzer.fit(frame, predictions=p_base, labels=y_base)
    result = analyzer.analyze(frame.iloc[:300], predictions=p_win, labels=y_win).performance
    loss = result.metrics["log_loss"]
    assert loss.baseline == pytest.approx(0.0008, rel=0.2)
    assert loss.current == pytest.approx(0.0016, rel=0.2)
    assert loss.drop > 0.25  # the relative rule alone would alert
    assert not loss.degraded and not result.degraded
    assert loss.limit == pytest.approx(loss.baseline + 0.02)
    lo, hi = loss.ci
    assert lo <= loss.current <= hi and loss.ci_level == 0.95
    assert result.to_dict()["metrics"]["log_loss"]["ci"] == [lo, hi]


def test_interval_decides_small_and_large_windows_differently():
    """The same accuracy drop is noise on 40 labels and a degradation on 4,000."""
    rng = np.random.default_rng(22)

    def verdict(rows):
        y = rng.integers(0, 2, rows).astype(float)
        wrong = rng.random(rows) < 0.17  # 83% accurate against a 90% baseline
        scores = np.where(y == 1, 0.8, 0.2)
        scores[wrong] = 1 - scores[wrong]
        intervals = metric_intervals("binary_classification", y, scores)
        current = performance_metrics("binary_classification", y, scores)
        return compare(current, {"accuracy": 0.90}, 0.05, rows, intervals=intervals,
                       ci_level=0.95).metrics["accuracy"]

    small, large = verdict(40), verdict(4000)
    assert small.ci[0] < 0.85 < small.ci[1] and not small.degraded
    assert large.ci[1] < 0.85 and large.degraded


def test_bootstrap_auc_with_equal_weights_is_sklearns(binary, multiclass):
    from monitor.drift.performance import _weighted_auc

    _, y, p = binary
    weights = np.full((1, len(y)), 1.0 / len(y))
    assert _weighted_auc(p, y == 1, weights)[0] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    _, yk, pk = multiclass
    intervals = metric_intervals("multiclass_classification", yk, pk)
    exact = roc_auc_score(yk, pk, multi_class="ovr")
    assert intervals["roc_auc"][0] <= exact <= intervals["roc_auc"][1]
    assert intervals["log_loss"][0] <= log_loss(yk, pk) <= intervals["log_loss"][1]


def test_regression_error_floor_is_in_label_standard_deviations():
    floors = error_floors(0.02, 50.0)
    assert floors == {"log_loss": 0.02, "rmse": 1.0, "mae": 1.0}
    # +30% relative but +0.5 in a target whose sd is 50: within the floor of 1.0
    result = compare({"rmse": 2.0}, {"rmse": 1.5}, 0.05, 500, max_error_increase=0.25,
                     error_floors=floors)
    assert not result.metrics["rmse"].degraded


def test_small_budgeted_levels_use_the_normal_interval_of_the_bootstrap():
    """A tail of 1e-5 is beyond 1,000 resamples: the interval is the metric ± z × the
    bootstrap's standard error, not the smallest and largest resample."""
    rng = np.random.default_rng(31)
    y = rng.integers(0, 2, 400).astype(float)
    scores = np.clip(np.where(y == 1, 0.7, 0.3) + rng.normal(0, 0.25, 400), 0.01, 0.99)
    usual = metric_intervals("binary_classification", y, scores, level=0.95)["accuracy"]
    strict = metric_intervals("binary_classification", y, scores, level=1 - 2e-5)["accuracy"]
    accuracy = performance_metrics("binary_classification", y, scores)["accuracy"]
    assert strict[0] + strict[1] == pytest.approx(2 * accuracy)
    # z(1e-5) / z(0.025) = 4.26 / 1.96: the percentile min..max of 1,000 resamples is ~1.6x
    ratio = (strict[1] - strict[0]) / (usual[1] - usual[0])
    assert 2.0 < ratio < 2.4


def test_the_performance_budget_sets_each_metrics_interval_level():
    rng = np.random.default_rng(32)
    frame = pd.DataFrame({"x": rng.normal(size=600)})
    y = rng.integers(0, 2, 600).astype(float)
    scores = np.clip(np.where(y == 1, 0.7, 0.3) + rng.normal(0, 0.2, 600), 0.01, 0.99)
    analyzer = DriftAnalyzer(["x"], [], DriftConfig(), "binary_classification", performance_alpha=3e-5)
    analyzer.fit(frame, predictions=scores, labels=y)
    metrics = analyzer.analyze(frame.iloc[:300], predictions=scores[:300], labels=y[:300]).performance.metrics
    # accuracy, ROC AUC and log loss share 3e-5, one tail each (only a drop alerts)
    assert set(metrics) == {"accuracy", "roc_auc", "log_loss"}
    assert all(m.ci_level == pytest.approx(1 - 2e-5) for m in metrics.values())
    # an explicit performance.ci_level is honoured as given (outside the budget)
    explicit = DriftAnalyzer(["x"], [], DriftConfig(), "binary_classification",
                             PerformanceConfig(ci_level=0.9), performance_alpha=3e-5)
    explicit.fit(frame, predictions=scores, labels=y)
    result = explicit.analyze(frame.iloc[:300], predictions=scores[:300], labels=y[:300]).performance
    assert result.metrics["accuracy"].ci_level == 0.9
