"""Calibrated drift thresholds: p-values hold their level on clean windows, shifted
windows are caught, scores stay Evidently's, and the budget is shared by Holm."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from monitor.config import DriftConfig
from monitor.drift import PREDICTION_KEY, DriftAnalyzer
from monitor.drift.calibration import (
    ColumnCalibration,
    bucket_sizes,
    family_alpha,
    holm_levels,
)
from monitor.drift.stattests import ColumnReference, clean_column, default_threshold
from monitor.errors import DriftError


def _reference(values, kind="numeric") -> ColumnReference:
    return ColumnReference("x", clean_column("x", pd.Series(values), kind))


def _p_values(calibration, method, draw, windows, rng):
    ref = calibration.reference
    out = []
    for _ in range(windows):
        column = clean_column("x", pd.Series(draw(rng)), ref.column.kind)
        result = ref.test(column, method, None)
        out.append(calibration.assess(method, column, result.score).p_value)
    return np.array(out)


def test_family_alpha_from_budget_and_window():
    assert family_alpha(1, timedelta(hours=1)) == pytest.approx(1 / 720)
    assert family_alpha(2, timedelta(days=1)) == pytest.approx(2 / 30)
    assert family_alpha(100, timedelta(days=30)) == 1.0
    with pytest.raises(DriftError):
        family_alpha(0, timedelta(hours=1))


def test_holm_levels_step_down_and_factors():
    levels = holm_levels({"a": 0.001, "b": 0.02, "c": 0.5}, 0.03, {})
    assert levels == pytest.approx({"a": 0.01, "b": 0.015, "c": 0.015})
    # a factor of 4 ranks "a" by 0.004 and divides its level
    weighted = holm_levels({"a": 0.001, "b": 0.002}, 0.01, {"a": 4.0})
    assert weighted["b"] == pytest.approx(0.005) and weighted["a"] == pytest.approx(0.01 / 4)


@pytest.mark.parametrize("n, expected", [(300, (256, 362)), (256, (256, 256)), (50, (45, 64))])
def test_bucket_sizes_surround_the_window(n, expected):
    assert bucket_sizes(n) == expected


@pytest.mark.parametrize(
    "method, m, n, body",
    [
        ("ks", 500, 300, 0.09),
        ("wasserstein", 3000, 100, 0.09),
        ("wasserstein", 3000, 1000, 0.09),
        # Sturges bins of real windows move with values beyond the baseline's range,
        # which resamples of the baseline cannot reach: the body of the null runs hot
        # (measured ~0.09 at 0.05), the tail that decides alerts holds
        ("jensenshannon", 3000, 1000, 0.12),
    ],
    ids=["ks-small-reference", "wasserstein-large-reference", "wasserstein-big-window",
         "js-binned-big-window"],
)
def test_clean_windows_flag_near_alpha_and_shift_is_caught(method, m, n, body):
    rng = np.random.default_rng(1)
    calibration = ColumnCalibration(_reference(rng.normal(0, 1, m)), 300, seed=2)
    # fresh references too: the null is over both samples, so average over several
    p = np.concatenate([
        _p_values(
            ColumnCalibration(_reference(rng.normal(0, 1, m)), 300, seed=r),
            method, lambda g: g.normal(0, 1, n), 100, rng,
        )
        for r in range(4)
    ])
    assert 0.02 <= np.mean(p < 0.05) <= body
    assert np.mean(p < 0.005) <= 0.015
    shifted = _p_values(calibration, method, lambda g: g.normal(0.5, 1, n), 50, rng)
    assert np.mean(shifted < 1e-3) >= 0.9


SHAPES = {
    # a transaction amount: 40 % zeros, a lognormal tail (the resampled null of the
    # Wasserstein distance flagged p < 1e-4 50x too often on it)
    "zero-inflated-lognormal": lambda g, k: np.where(g.uniform(size=k) < 0.4, 0.0,
                                                     g.lognormal(7, 1.4, k)),
    # a count with ties and few values (never reached p < 0.01 when read as shares)
    "poisson-counts": lambda g, k: g.poisson(1.2, k).astype(float),
    "heavy-tailed": lambda g, k: g.standard_t(2, k),
    "rare-categories": lambda g, k: g.choice(list("abcdefg"), k,
                                             p=[0.6, 0.25, 0.1, 0.03, 0.01, 0.007, 0.003]),
}


@pytest.mark.slow
@pytest.mark.parametrize("m", [500, 3000])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPES.keys())
def test_achieved_false_alarm_rate_is_at_most_nominal_for_production_shapes(shape, m):
    """The calibrated p-value of clean windows is exact or conservative whatever the
    shape: over fresh baselines (the null covers the baseline's own sampling error),
    p < a happens at most about a of the time at a = 0.01 and 0.001, yet is not deaf."""
    draw, rng = SHAPES[shape], np.random.default_rng(21)
    kind = "categorical" if shape == "rare-categories" else "numeric"
    p = []
    for r in range(25):
        reference = pd.DataFrame({"x": draw(rng, m)})
        numeric, categorical = (["x"], []) if kind == "numeric" else ([], ["x"])
        analyzer = DriftAnalyzer(numeric, categorical, DriftConfig(), "regression",
                                 family_alpha=0.01, seed=r).fit(reference)
        for _ in range(80):
            p.append(analyzer.analyze(pd.DataFrame({"x": draw(rng, 300)})).features["x"].p_value)
    p = np.array(p)  # 2,000 clean windows
    print(f"{shape} m={m}: p<0.01 {np.sum(p < 0.01)}, p<0.001 {np.sum(p < 0.001)} of {len(p)}")
    assert 5 <= np.sum(p < 0.01) <= 32  # 20 expected; binomial 99.5% bound ~33
    assert np.sum(p < 0.001) <= 7  # 2 expected


def test_a_shift_in_a_zero_inflated_amount_is_caught_and_decided_by_ks():
    rng = np.random.default_rng(22)
    amount = SHAPES["zero-inflated-lognormal"]
    analyzer = DriftAnalyzer(["x"], [], DriftConfig(), "regression", family_alpha=0.0014).fit(
        pd.DataFrame({"x": amount(rng, 3000)}))
    feature = analyzer.analyze(pd.DataFrame({"x": amount(rng, 300) * 3})).features["x"]
    assert feature.method == "wasserstein" and feature.decided_by == "ks"
    assert feature.drifted and feature.p_value < 1e-4 and feature.shift_unit == "sd"
    assert feature.to_dict()["decided_by"] == "ks"
    # amounts up 30 %: a change 300 rows of this tail cannot tell from chance
    assert not analyzer.analyze(pd.DataFrame({"x": amount(rng, 300) * 1.3})).features["x"].drifted


def test_categorical_chisquare_holds_level_with_a_small_reference():
    rng = np.random.default_rng(3)
    levels, probs = np.array(list("abcd")), [0.4, 0.3, 0.2, 0.1]
    p = []
    for r in range(4):
        calibration = ColumnCalibration(
            _reference(rng.choice(levels, 300, p=probs), "categorical"), 300, seed=r
        )
        # windows 3x the reference: Evidently's chi-square alone over-flags here
        p.append(_p_values(calibration, "chisquare", lambda g: g.choice(levels, 900, p=probs),
                           100, rng))
    assert np.mean(np.concatenate(p) < 0.05) <= 0.09


@pytest.mark.slow
@pytest.mark.parametrize("method, m", [("wasserstein", 3000), ("ks", 500)])
def test_integer_counts_with_ties_are_neither_deaf_nor_hot(method, m):
    """A count with few values (Poisson, mean 1.2: 7 distinct values) gets an exact
    permutation p-value: its null was once taken from per-value shares (a PSI-like
    statistic 5x wider), so no window of such a feature ever reached p < 0.01."""
    rng = np.random.default_rng(11)
    p = []
    for r in range(30):  # many baselines: the test is exact over baseline and window
        calibration = ColumnCalibration(_reference(rng.poisson(1.2, m).astype(float)), 300, seed=r)
        assert calibration.discrete
        p.append(_p_values(calibration, method, lambda g: g.poisson(1.2, 300).astype(float), 30, rng))
    p = np.concatenate(p)  # 900 windows
    assert 0.025 <= np.mean(p < 0.05) <= 0.075, np.mean(p < 0.05)
    assert np.mean(p < 0.005) <= 0.015
    calibration = ColumnCalibration(_reference(rng.poisson(1.2, m).astype(float)), 300, seed=9)
    shifted = _p_values(calibration, method, lambda g: g.poisson(2.0, 300).astype(float), 10, rng)
    assert np.mean(shifted < 1e-3) >= 0.5  # mean 1.2 -> 2.0 (+0.7 sd) in 300 rows


def test_minimum_detectable_shift_is_detected_about_ninety_percent():
    rng = np.random.default_rng(5)
    values = rng.normal(0, 1, 3000)
    calibration = ColumnCalibration(_reference(values), 300, seed=0)
    alpha, n = 1e-3, 300
    shift = calibration.min_detectable_shift("wasserstein", n, alpha)
    assert 0.1 < shift < 0.6
    p = _p_values(calibration, "wasserstein", lambda g: g.choice(values, n) + shift
                  * values.std(), 200, rng)
    assert 0.75 <= np.mean(p < alpha) <= 0.99


def _frames(rng, rows, shift=0.0):
    data = {f"x{i}": rng.normal(0, 1, rows) for i in range(4)}
    data["x0"] = data["x0"] + shift
    data["region"] = rng.choice(["n", "s", "e"], rows, p=[0.5, 0.3, 0.2])
    return pd.DataFrame(data)


def test_scores_are_fixed_mode_scores_and_report_carries_calibration():
    rng = np.random.default_rng(7)
    reference, window = _frames(rng, 800), _frames(rng, 300, shift=0.6)
    ref_pred, win_pred = rng.normal(0, 1, 800), rng.normal(0, 1, 300)
    names = ["x0", "x1", "x2", "x3"]
    fixed = DriftAnalyzer(names, ["region"], DriftConfig(threshold_mode="fixed"), "regression")
    calibrated = DriftAnalyzer(names, ["region"], DriftConfig(), "regression",
                               family_alpha=0.01)
    a = fixed.fit(reference, predictions=ref_pred).analyze(window, predictions=win_pred)
    b = calibrated.fit(reference, predictions=ref_pred).analyze(window, predictions=win_pred)
    for name in names + ["region"]:
        assert a.features[name].score == b.features[name].score
        assert a.features[name].method == b.features[name].method
        assert a.features[name].p_value is None
    assert b.prediction.score == a.prediction.score and b.prediction.p_value is not None
    assert b.threshold_mode == "calibrated" and b.family_alpha == 0.01
    assert a.threshold_mode == "fixed" and a.family_alpha is None
    assert b.drifted_features == ("x0",)
    x0 = b.features["x0"]
    assert x0.p_value < x0.alpha == pytest.approx(0.01 / 6)  # Holm's first step of 6
    assert x0.shift_unit == "sd" and 0 < x0.min_detectable_shift < 0.6
    assert b.features["region"].shift_unit == "mass"
    doc = b.to_dict()["features"]["x0"]
    assert doc["p_value"] == x0.p_value and doc["min_detectable_shift"] is not None


def test_threshold_factor_divides_alpha_in_calibrated_mode():
    rng = np.random.default_rng(8)
    reference, window = _frames(rng, 600), _frames(rng, 300, shift=0.4)
    analyzer = DriftAnalyzer(["x0", "x1", "x2", "x3"], ["region"], DriftConfig(),
                             "regression", family_alpha=0.01).fit(reference)
    before = analyzer.analyze(window).features["x0"]
    factor = 2 * before.alpha / before.p_value  # just enough to clear the verdict
    after = analyzer.analyze(window, threshold_factors={"x0": factor}).features["x0"]
    assert before.drifted and not after.drifted
    assert after.p_value == before.p_value
    assert after.alpha == pytest.approx(0.01 / 5 / factor)


def test_distance_floor_on_a_big_window():
    """A large window can be significant against the baseline's own sampling error;
    the fixed distance threshold stays as the minimum effect worth an alert."""
    rng = np.random.default_rng(9)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 5000)})
    window = pd.DataFrame({"x": rng.normal(0.08, 1, 40000)})  # a real but tiny shift
    analyzer = DriftAnalyzer(["x"], [], DriftConfig(), "regression", family_alpha=0.01)
    feature = analyzer.fit(reference).analyze(window).features["x"]
    assert feature.method == "wasserstein" and feature.p_value < feature.alpha
    assert feature.score < 0.1 and not feature.drifted and feature.threshold >= 0.1


def test_prepare_builds_the_buckets_of_a_window_size():
    rng = np.random.default_rng(10)
    reference = _frames(rng, 600)
    analyzer = DriftAnalyzer(["x0", "x1", "x2", "x3"], ["region"], DriftConfig(),
                             "regression").fit(reference, predictions=rng.normal(0, 1, 600))
    analyzer.prepare(300)
    assert set(analyzer._calibrations) == {"x0", "x1", "x2", "x3", "region", PREDICTION_KEY}
    assert all(len(c._nulls) == 2 for c in analyzer._calibrations.values())
    with pytest.raises(DriftError):
        DriftAnalyzer(["x0"], [], DriftConfig(), "regression", threshold_mode="loose")


def test_edge_columns_in_calibrated_mode():
    """A constant baseline column, an unseen category, and a method the calibration does
    not resample (it keeps Evidently's fixed threshold, outside the budget)."""
    from monitor.config import FeatureDriftOverride

    rng = np.random.default_rng(14)
    reference = pd.DataFrame({
        "flat": np.ones(600), "x": rng.normal(0, 1, 600), "y": rng.normal(0, 1, 600),
        "region": rng.choice(["n", "s"], 600),
    })
    window = pd.DataFrame({
        "flat": np.r_[np.ones(250), np.full(50, 2.0)], "x": rng.normal(0, 1, 300),
        "y": rng.normal(0, 1, 300), "region": rng.choice(["n", "s", "new"], 300),
    })
    config = DriftConfig(features={"y": FeatureDriftOverride(method="anderson")})
    analyzer = DriftAnalyzer(["flat", "x", "y"], ["region"], config, "regression",
                             family_alpha=0.01).fit(reference)
    report = analyzer.analyze(window)
    # values the baseline never had (2.0 of a constant column, a new category) leave the
    # drift test (chi-square would be infinite) for data quality
    assert not report.features["flat"].drifted and not report.features["region"].drifted
    quality = report.quality.features
    assert quality["flat"].unseen_rows == 50
    assert quality["region"].unseen_rows == int((window["region"] == "new").sum())
    assert not report.features["x"].drifted and report.features["x"].p_value > 0.01
    anderson = report.features["y"]
    assert anderson.method == "anderson" and anderson.p_value is None
    assert anderson.threshold == pytest.approx(default_threshold("anderson", "numeric"))
    same = analyzer.analyze(reference.iloc[:300])
    assert not same.features["flat"].drifted and same.features["flat"].p_value > 0.5


def test_once_json_says_which_test_decided():
    from monitor.result import verdict

    rng = np.random.default_rng(23)
    analyzer = DriftAnalyzer(["x"], ["c"], DriftConfig(), "regression", family_alpha=0.0014).fit(
        pd.DataFrame({"x": rng.normal(0, 1, 3000), "c": rng.choice(list("ab"), 3000)}))
    report = analyzer.analyze(pd.DataFrame({"x": rng.normal(0, 1, 300), "c": rng.choice(list("ab"), 300)}))
    assert verdict(report.features["x"])["decided_by"] == "ks"
    assert verdict(report.features["c"])["decided_by"] == report.features["c"].method  # its own, exact
