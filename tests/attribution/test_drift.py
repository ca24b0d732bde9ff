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
