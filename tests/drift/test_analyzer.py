"""DriftAnalyzer beyond parity: thresholds, feedback factors, bad input, quality."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from monitor.config import DriftConfig, FeatureDriftOverride
from monitor.drift import PREDICTION_KEY, DriftAnalyzer, DriftReport
from monitor.errors import DriftError
from tests.drift.helpers import breast_cancer_frames


@pytest.fixture(scope="module")
def frames():
    return breast_cancer_frames(600, 400, seed=11)


def _analyzer(frames, config: DriftConfig | None = None, task: str = "regression") -> DriftAnalyzer:
    """Fixed thresholds (Evidently's): what these tests pin down; calibrated mode has
    its own tests in test_calibration.py."""
    return DriftAnalyzer(
        frames.numeric, frames.categorical, config or DriftConfig(), task, threshold_mode="fixed"
    )


def test_threshold_factor_makes_tests_less_sensitive(frames):
    plain = _analyzer(frames).fit(frames.reference).analyze(frames.current)
    drifted = plain.drifted_features
    assert drifted, "the shifted columns must drift"
    # per feature, just enough to move the threshold past the score
    factors = {}
    for name in drifted:
        f = plain.features[name]
        factors[name] = 2 * (f.threshold / f.score if f.p_value_test else f.score / f.threshold)
    relaxed = (
        _analyzer(frames).fit(frames.reference).analyze(frames.current, threshold_factors=factors)
    )
    for name in drifted:
        before, after = plain.features[name], relaxed.features[name]
        assert after.score == before.score
        factor = factors[name]
        expected = before.threshold / factor if before.p_value_test else before.threshold * factor
        assert after.threshold == pytest.approx(expected)
        assert not after.drifted
    assert relaxed.drift_share == 0.0 and not relaxed.dataset_drift


def test_distance_threshold_is_multiplied():
    frames = breast_cancer_frames(1500, 800, seed=2)
    analyzer = _analyzer(frames).fit(frames.reference)
    report = analyzer.analyze(frames.current, threshold_factors={"mean radius": 1.5})
    feature = report.features["mean radius"]
    assert feature.method == "wasserstein" and not feature.p_value_test
    assert feature.threshold == pytest.approx(0.15)


def test_configured_threshold_decides_the_verdict(frames):
    report = _analyzer(frames).fit(frames.reference).analyze(frames.current)
    name = report.drifted_features[0]
    score = report.features[name].score
    # a p-value below the configured threshold drifts, above it does not
    strict = DriftConfig(features={name: FeatureDriftOverride(threshold=score / 2)})
    loose = DriftConfig(features={name: FeatureDriftOverride(threshold=min(score * 2, 0.99))})
    assert (
        not _analyzer(frames, strict)
        .fit(frames.reference)
        .analyze(frames.current)
        .features[name]
        .drifted
    )
    assert (
        _analyzer(frames, loose)
        .fit(frames.reference)
        .analyze(frames.current)
        .features[name]
        .drifted
    )


def test_drift_share_threshold_from_config(frames):
    report = _analyzer(frames).fit(frames.reference).analyze(frames.current)
    share = report.drift_share
    assert 0 < share < 1
    low = (
        _analyzer(frames, DriftConfig(drift_share=share))
        .fit(frames.reference)
        .analyze(frames.current)
    )
    high = (
        _analyzer(frames, DriftConfig(drift_share=min(1.0, share + 0.01)))
        .fit(frames.reference)
        .analyze(frames.current)
    )
    assert low.dataset_drift and low.share_threshold == share
    assert not high.dataset_drift


@pytest.mark.parametrize("rows", [0, 1, 29], ids=["empty", "one-row", "below-min-rows"])
def test_tiny_window_is_insufficient_data(frames, rows):
    report = _analyzer(frames).fit(frames.reference).analyze(frames.current.iloc[:rows])
    assert report.insufficient_data and report.min_rows == 30 and report.rows == rows
    assert report.features == {} and not report.dataset_drift and report.prediction is None
    json.dumps(report.to_dict())


def test_empty_frame_without_columns_is_insufficient_not_an_error(frames):
    report = _analyzer(frames).fit(frames.reference).analyze(pd.DataFrame())
    assert report.insufficient_data and report.rows == 0


def test_missing_column_names_it(frames):
    analyzer = _analyzer(frames).fit(frames.reference)
    with pytest.raises(DriftError, match="'mean area'"):
        analyzer.analyze(frames.current.drop(columns=["mean area"]))
    with pytest.raises(DriftError, match="reference has no column 'region'"):
        _analyzer(frames).fit(frames.reference.drop(columns=["region"]))


def test_constant_and_all_missing_columns_are_reported(frames):
    current = frames.current.copy()
    current["mean radius"] = 12.0
    current["mean texture"] = np.nan
    current["region"] = None
    report = _analyzer(frames).fit(frames.reference).analyze(current)
    quality = report.quality.features
    assert quality["mean radius"].constant and report.features["mean radius"].drifted
    for name in ("mean texture", "region"):
        assert quality[name].all_missing and quality[name].missing_share == 1.0
        assert np.isnan(report.features[name].score) and not report.features[name].drifted
        assert "no non-missing values in the window" in report.features[name].note
    # untested columns do not count in the share
    tested = [f for f in report.features.values() if np.isfinite(f.score)]
    assert report.drift_share == sum(f.drifted for f in tested) / len(tested)
    document = report.to_dict()
    assert document["features"]["mean texture"]["score"] is None
    assert set(document["quality"]["all_missing"]) == {"mean texture", "region"}
    json.dumps(document)


def test_data_quality_out_of_range_and_unseen_categories(frames):
    current = frames.current.copy()
    top = frames.reference["mean area"].max()
    current.loc[:4, "mean area"] = top + 1.0
    current.loc[5:6, "mean area"] = -1.0
    current.loc[:9, "region"] = "atlantis"
    current.loc[10:19, "channel"] = None
    report = _analyzer(frames).fit(frames.reference).analyze(current)
    quality = report.quality.features
    assert quality["mean area"].out_of_range == 7
    assert (
        quality["region"].unseen_categories == ("atlantis",) and quality["region"].unseen_count == 1
    )
    assert quality["channel"].missing_share == pytest.approx(10 / len(current))
    assert quality["mean radius"].out_of_range == int(
        (
            (frames.current["mean radius"] > frames.reference["mean radius"].max())
            | (frames.current["mean radius"] < frames.reference["mean radius"].min())
        ).sum()
    )
    assert report.quality.to_dict()["unseen_categories"] == {"region": ["atlantis"]}


def test_previous_window_mode_refits_on_a_window(frames):
    previous = frames.current.iloc[:200].reset_index(drop=True)
    latest = frames.current.iloc[200:].reset_index(drop=True)
    against_training = _analyzer(frames).fit(frames.reference).analyze(latest)
    against_previous = _analyzer(frames).fit(previous).analyze(latest)
    # the same shifted population: drifted against training, not against its neighbour
    assert against_training.drift_share > against_previous.drift_share
    assert against_previous.drift_share <= 0.25


def test_prediction_drift_for_values_and_multiclass(frames):
    rng = np.random.default_rng(4)
    ref_values, cur_values = rng.normal(0, 1, 600), rng.normal(0.8, 1, 400)
    analyzer = _analyzer(frames).fit(frames.reference, predictions=ref_values)
    report = analyzer.analyze(
        frames.current, predictions=cur_values, threshold_factors={PREDICTION_KEY: 2.0}
    )
    assert report.prediction.kind == "numeric" and report.prediction.method == "ks"
    assert report.prediction.drifted and report.prediction.threshold == pytest.approx(0.025)

    ref_scores = rng.dirichlet([5, 3, 2], 600)
    cur_scores = rng.dirichlet([2, 3, 5], 400)
    multi = _analyzer(
        frames,
        DriftConfig(prediction_method="jensenshannon", prediction_threshold=0.05),
        task="multiclass_classification",
    )
    result = (
        multi.fit(frames.reference, predictions=ref_scores)
        .analyze(frames.current, predictions=cur_scores)
        .prediction
    )
    assert result.kind == "categorical" and result.method == "jensenshannon"
    assert result.threshold == 0.05 and result.drifted


def test_unusable_configured_method_is_refused(frames):
    config = DriftConfig(features={"region": FeatureDriftOverride(method="ks")})
    with pytest.raises(DriftError, match="feature 'region'.*'ks'"):
        _analyzer(frames, config).fit(frames.reference)


def test_non_numeric_values_in_numeric_column(frames):
    current = frames.current.copy()
    current["mean radius"] = current["mean radius"].astype(object)
    current.loc[3, "mean radius"] = "twelve"
    with pytest.raises(DriftError, match="'mean radius' is configured as numeric"):
        _analyzer(frames).fit(frames.reference).analyze(current)


def test_report_is_frozen_and_json_safe(frames):
    report = _analyzer(frames).fit(frames.reference).analyze(frames.current)
    assert isinstance(report, DriftReport)
    with pytest.raises(AttributeError):
        report.dataset_drift = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        report.features["x"] = None  # type: ignore[index]
    document = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert document["rows"] == len(frames.current)
    assert set(document["features"]) == set(frames.numeric) | set(frames.categorical)


def test_analyze_before_fit_and_bad_factor(frames):
    with pytest.raises(DriftError, match="before fit"):
        _analyzer(frames).analyze(frames.current)
    with pytest.raises(DriftError, match="must be > 0"):
        _analyzer(frames).fit(frames.reference).analyze(
            frames.current, threshold_factors={"mean radius": 0}
        )


@pytest.mark.parametrize("mode", ["fixed", "calibrated"])
def test_values_the_baseline_never_had_leave_the_drift_test_for_data_quality(mode):
    """After adopting a 300-row window as baseline, an integer count seen with a new
    value in 3 rows (and a category never seen) raised drift at p ~ 1e-300 every window;
    those rows now leave the test and are counted in data quality."""
    rng = np.random.default_rng(5)

    def frame(rows: int) -> pd.DataFrame:
        return pd.DataFrame({
            "amount": rng.lognormal(3.0, 1.0, rows),
            "accounts": rng.choice([0, 1, 2], rows, p=[0.5, 0.3, 0.2]),
            "channel": rng.choice(["web", "store", "phone"], rows, p=[0.6, 0.3, 0.1]),
        })

    reference, window = frame(300), frame(400)
    window.loc[:2, "accounts"] = 7
    window.loc[3:5, "channel"] = "crypto"
    analyzer = DriftAnalyzer(["amount", "accounts"], ["channel"], DriftConfig(), "regression",
                             threshold_mode=mode, family_alpha=0.01, seed=1)
    report = analyzer.fit(reference).analyze(window)
    for name in ("accounts", "channel"):  # before: chi-square p = 0 (1e-300 calibrated)
        verdict = report.features[name]
        assert verdict.score > 1e-3 and (verdict.p_value is None or verdict.p_value > 1e-3)
    assert mode == "fixed" or not report.drifted_features
    quality = report.quality.features
    assert quality["accounts"].unseen_rows == 3 and quality["accounts"].unseen_categories == ("7",)
    assert quality["channel"].unseen_rows == 3 and quality["channel"].unseen_categories == ("crypto",)
    assert quality["amount"].unseen_rows == 0  # a continuous column has no unseen values
    assert quality["channel"].reference_values == 300
    assert report.quality.to_dict()["unseen_rows"] == {"accounts": 3, "channel": 3}


def test_missing_values_are_counted_and_left_out_of_the_test(frames):
    current = frames.current.copy()
    current.loc[:7, "mean area"] = np.nan
    current.loc[:3, "region"] = None
    report = _analyzer(frames).fit(frames.reference).analyze(current)
    quality = report.quality.features
    assert quality["mean area"].missing == 8 and quality["region"].missing == 4
    assert quality["region"].unseen_rows == 0
    assert np.isfinite(report.features["mean area"].score)
