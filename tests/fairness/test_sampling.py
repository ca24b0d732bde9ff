"""Stratified sampling: small groups reach min_rows, weights are inverse inclusion rates."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from monitor.fairness import FairnessError, allocate, stratified_sample


def _window(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "sex": rng.choice(["F", "M"], rows, p=[0.95, 0.05]),
            "band": rng.choice(["a", "b", "c"], rows, p=[0.6, 0.38, 0.02]),
            "age": rng.normal(45, 12, rows),
        }
    )


@pytest.mark.parametrize(
    "attributes,numeric",
    [(["sex", "band"], []), (["sex", "band", "age"], ["age"])],
    ids=["text", "with-numeric-bins"],
)
def test_every_value_reaches_min_rows_and_weights_sum_to_the_window(attributes, numeric) -> None:
    frame = _window(30000, seed=1)
    sample = stratified_sample(frame, attributes, 800, min_rows=50, seed=3, numeric=numeric)
    picked = frame.iloc[sample.positions]
    assert len(picked) == 800 and len(set(sample.positions)) == 800
    assert picked["sex"].value_counts().min() >= 50 and picked["band"].value_counts().min() >= 50
    assert sample.weights.sum() == pytest.approx(len(frame), rel=0.01)
    share_c = np.sum(sample.weights * (picked["band"] == "c").to_numpy()) / sample.weights.sum()
    assert share_c == pytest.approx((frame["band"] == "c").mean(), rel=0.05)
    again = stratified_sample(frame, attributes, 800, min_rows=50, seed=3, numeric=numeric)
    assert np.array_equal(again.positions, sample.positions)
    data = json.loads(json.dumps(sample.to_dict(), allow_nan=False))
    assert data["sampled"] == 800 and sum(s["rows"] for s in data["strata"]) == 30000


def test_weighted_estimates_are_unbiased_over_seeds() -> None:
    frame = _window(5000, seed=2)
    target = (frame["age"] > 50).to_numpy()
    estimates = []
    for seed in range(200):
        s = stratified_sample(frame, ["sex", "band"], 300, min_rows=40, seed=seed)
        estimates.append(np.sum(s.weights * target[s.positions]) / np.sum(s.weights))
    assert np.mean(estimates) == pytest.approx(target.mean(), abs=0.005)


def test_allocate() -> None:
    assert allocate({("a",): 5, ("b",): 1000}, 100, 30) == {("a",): 5, ("b",): 95}
    assert allocate({("a",): 50, ("b",): 50, ("c",): 50}, 60, 30) == {("a",): 20, ("b",): 20, ("c",): 20}
    small = allocate({("a",): 10, ("b",): 20}, 100, 30)
    assert small == {("a",): 10, ("b",): 20}
    quotas = allocate({("x", "1"): 900, ("x", "2"): 5, ("y", "1"): 40, ("y", "2"): 55}, 100, 20)
    assert sum(quotas.values()) == 100
    assert quotas[("y", "1")] + quotas[("y", "2")] >= 20 and quotas[("x", "2")] + quotas[("y", "2")] >= 20
    with pytest.raises(FairnessError):
        allocate({("a",): 1}, 0, 1)
