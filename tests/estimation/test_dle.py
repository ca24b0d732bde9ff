"""DLE: estimated MAE and RMSE follow a covariate shift that raises the error."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from monitor.estimation import EstimationError, PerformanceEstimator, Task


def _rows(
    rng: np.random.Generator, rows: int, centre: float = 0.0
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Noise grows with |x0|: a model that is right on average is worse far from 0."""
    x0 = rng.normal(centre, 1.0, rows)
    x1 = rng.normal(0.0, 1.0, rows)
    region = np.where(x1 > 0, "north", "south")
    truth = 2.0 * x0 - x1
    noise_scale = 0.3 + 0.8 * np.abs(x0) + np.where(region == "north", 0.2, 0.0)
    labels = truth + rng.normal(0.0, 1.0, rows) * noise_scale
    frame = pd.DataFrame({"x0": x0, "x1": x1, "region": region})
    return frame, truth, labels


@pytest.fixture(scope="module")
def estimator() -> PerformanceEstimator:
    frame, predictions, labels = _rows(np.random.default_rng(0), 3000)
    return PerformanceEstimator(Task.REGRESSION, categorical=["region"]).fit(frame, predictions, labels)


def test_dle_tracks_a_shift_that_raises_the_error(estimator):
    rng = np.random.default_rng(1)
    results = []
    for centre in (0.0, 1.0):  # within the baseline's range: trees extrapolate flat
        frame, predictions, labels = _rows(rng, 1000, centre)
        results.append((estimator.estimate(frame, predictions), estimator.realized(labels, predictions)))
    (near_est, near_real), (far_est, far_real) = results
    for name in ("mae", "rmse"):
        rise = far_real.metrics[name] - near_real.metrics[name]
        assert rise > 0.25 * near_real.metrics[name]  # the shift hurts
        # and the estimate moves the same way, by at least half as much
        assert far_est[name].value - near_est[name].value > 0.5 * rise
        assert near_est[name].contains(near_real.metrics[name]), (name, near_est[name], near_real)
        for est, real in results:
            # the band is sampling error only: the loss model's own error comes on top
            assert abs(est[name].value - real.metrics[name]) < 0.12 * real.metrics[name]


def test_the_loss_models_do_not_memorise_noise():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x0": rng.normal(size=400), "x1": rng.normal(size=400)})
    labels = rng.normal(size=400)  # errors unrelated to the inputs
    estimator = PerformanceEstimator(Task.REGRESSION).fit(frame, np.zeros(400), labels)
    window = pd.DataFrame({"x0": rng.normal(1, 1, 300), "x1": rng.normal(size=300)})
    estimate = estimator.estimate(window, np.zeros(300))
    expected = math.sqrt(2 / math.pi)  # E|N(0, 1)|, wherever the inputs are
    assert estimate["mae"].value == pytest.approx(expected, rel=0.15)
    assert estimate["mae"].contains(float(np.mean(np.abs(rng.normal(size=300)))))


def test_band_is_positive_and_shrinks_with_rows(estimator):
    frame, predictions, _ = _rows(np.random.default_rng(3), 2000)
    small = estimator.estimate(frame.iloc[:200], predictions[:200])
    large = estimator.estimate(frame, predictions)
    for name in ("mae", "rmse"):
        assert 0 < large[name].sampling_error < small[name].sampling_error
        assert large[name].lower < large[name].value < large[name].upper
    assert large.to_dict()["method"] == "dle" and large.to_dict()["assumption"] == "no concept drift"


def test_unseen_categories_and_missing_values_are_estimated(estimator):
    frame, predictions, _ = _rows(np.random.default_rng(4), 50)
    frame.loc[:9, "region"] = "east"  # never seen in the baseline
    frame.loc[10:19, "x1"] = np.nan
    estimate = estimator.estimate(frame, predictions)
    assert math.isfinite(estimate["mae"].value) and estimate.rows == 50


def test_empty_window_and_missing_columns(estimator):
    frame, predictions, _ = _rows(np.random.default_rng(5), 10)
    empty = estimator.estimate(frame.iloc[:0], predictions[:0])
    assert empty.rows == 0 and math.isnan(empty["mae"].value)
    with pytest.raises(EstimationError, match="lacks the baseline's feature columns"):
        estimator.estimate(frame.drop(columns=["x1"]), predictions)
    with pytest.raises(EstimationError, match="needs the window's features"):
        estimator.estimate(None, predictions)


def test_regression_baseline_without_labels_is_an_error():
    frame, predictions, _ = _rows(np.random.default_rng(6), 20)
    with pytest.raises(EstimationError, match="baseline has no labels"):
        PerformanceEstimator(Task.REGRESSION).fit(frame, predictions, None)
