"""Global importance and attribution drift (nDCG as SageMaker Clarify computes it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitor.attribution import attribution_drift, global_importance, ndcg
from monitor.errors import AttributionError

NAMES = ["a", "b", "c", "d"]


@pytest.fixture
def baseline() -> np.ndarray:
    rng = np.random.default_rng(0)
    scales = np.array([4.0, 2.0, 1.0, 0.5])
    return rng.normal(size=(500, 4)) * scales


def test_global_importance_is_mean_absolute_value() -> None:
    values = np.array([[1.0, -2.0], [-3.0, 0.0]])
    np.testing.assert_allclose(global_importance(values), [2.0, 1.0])
    series = global_importance(pd.DataFrame(values, columns=["x", "y"]))
    assert series.to_dict() == {"x": 2.0, "y": 1.0}


def test_identical_importances_give_ndcg_one(baseline: np.ndarray) -> None:
    result = attribution_drift(baseline, baseline.copy(), NAMES)
    assert result.ndcg == pytest.approx(1.0)
    assert not result.drifted
    assert all(f.distance == pytest.approx(0.0) for f in result.features)
    assert [f.current_rank for f in result.features] == [1, 2, 3, 4]


def test_swapped_top_pair_drops_ndcg_below_threshold(baseline: np.ndarray) -> None:
    current = baseline[:, [1, 0, 2, 3]]  # features a and b trade places
    result = attribution_drift(baseline, current, NAMES)
    assert result.ndcg < 0.9 and result.drifted
    a = result.feature("a")
    assert a.baseline_rank == 1 and a.current_rank == 2
    assert a.relative_change == pytest.approx(-0.5, abs=0.1)
    assert a.distance > 0.3
    assert result.feature("c").distance < 0.1


def test_swapping_minor_features_keeps_ndcg_high(baseline: np.ndarray) -> None:
    result = attribution_drift(baseline, baseline[:, [0, 1, 3, 2]], NAMES)
    assert 0.9 < result.ndcg < 1.0 and not result.drifted


def test_ndcg_with_no_importance_is_one_and_shapes_are_checked() -> None:
    assert ndcg(np.zeros(3), np.ones(3)) == 1.0
    with pytest.raises(AttributionError, match="3 feature names"):
        attribution_drift(np.ones((5, 2)), np.ones((5, 2)), ["a", "b", "c"])


def test_top_feature_doubling_its_influence_is_flagged_with_the_ranking_unchanged() -> None:
    """The issue's case: bmi's importance +113% while nDCG stays ~0.99."""
    rng = np.random.default_rng(11)
    scales = np.array([3.0, 2.0, 1.0, 0.95])
    base = rng.normal(size=(500, 4)) * scales
    current = rng.normal(size=(200, 4)) * scales * np.array([2.13, 1.0, 0.9, 1.0])
    result = attribution_drift(base, current, ["bmi", "bp", "s5", "age"], family_alpha=0.01)
    assert result.ndcg > 0.98 and not result.drifted
    bmi = result.feature("bmi")
    assert bmi.relative_change == pytest.approx(1.13, abs=0.15)
    assert bmi.drifted and bmi.p_value < bmi.alpha <= 0.01
    assert result.drifted_features == ("bmi",)
    assert 0 < bmi.min_detectable_change < 0.5


def test_clean_windows_rarely_flag_a_feature(baseline: np.ndarray) -> None:
    rng = np.random.default_rng(12)
    scales = np.array([4.0, 2.0, 1.0, 0.5])
    flagged = 0
    for seed in range(60):
        current = rng.normal(size=(150, 4)) * scales
        result = attribution_drift(baseline, current, NAMES, family_alpha=0.01, seed=seed)
        flagged += bool(result.drifted_features)
        assert all(f.p_value is not None and f.alpha <= 0.01 for f in result.features)
    assert flagged <= 3  # 0.6 expected at a family rate of 1%


def test_more_explained_rows_detect_smaller_changes(baseline: np.ndarray) -> None:
    rng = np.random.default_rng(13)
    scales = np.array([4.0, 2.0, 1.0, 0.5])
    small = attribution_drift(baseline, rng.normal(size=(50, 4)) * scales, NAMES)
    large = attribution_drift(baseline, rng.normal(size=(2000, 4)) * scales, NAMES)
    for name in NAMES:
        assert large.feature(name).min_detectable_change < small.feature(name).min_detectable_change


def test_feature_without_baseline_importance_has_no_p_value() -> None:
    base = np.column_stack([np.random.default_rng(0).normal(size=100), np.zeros(100)])
    result = attribution_drift(base, base[:50] * 1.5, ["x", "never_used"])
    assert result.feature("never_used").p_value is None
    assert not result.feature("never_used").drifted
