"""Sampled Shapley values against shap's exact Shapley values on a trained model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitor.attribution import sampled_shapley
from monitor.errors import AttributionError

# mean |sampled - exact| relative to mean |exact| allowed at 64 permutations (6 features)
TOLERANCE = 0.05
SEEDS = range(5)


@pytest.fixture(scope="module")
def six_feature_case(dict_models):
    """A 6-feature regression model as a numpy predict function, with shap's exact values."""
    import shap

    dict_model = dict_models["regression"]

    names = list(dict_model.features)
    x = dict_model.frame.to_numpy()

    def predict(rows: np.ndarray) -> np.ndarray:
        inputs = {n: rows[:, i:i + 1].astype(np.float32) for i, n in enumerate(names)}
        return dict_model.model.predict_on_batch(inputs)[:, 0]

    background, explain = x[:20], x[100:130]
    masker = shap.maskers.Independent(background, max_samples=len(background))
    exact = shap.explainers.Exact(predict, masker)(explain).values
    return predict, explain, background, exact


def _relative_error(values: np.ndarray, exact: np.ndarray) -> float:
    return float(np.abs(values - exact).mean() / np.abs(exact).mean())


def test_sampled_shapley_converges_to_exact(six_feature_case) -> None:
    predict, explain, background, exact = six_feature_case
    few = sampled_shapley(predict, explain, background, permutations=4, seed=0)
    many = sampled_shapley(predict, explain, background, permutations=64, seed=0)
    assert _relative_error(many.values, exact) <= TOLERANCE
    assert _relative_error(many.values, exact) < _relative_error(few.values, exact)
    # efficiency holds exactly for every sample, whatever the permutations
    np.testing.assert_allclose(many.values.sum(axis=1), many.output - many.base_value,
                               atol=1e-5)
    np.testing.assert_allclose(many.base_value, predict(background).mean(), rtol=1e-5)


def test_sampled_shapley_is_deterministic_per_seed(six_feature_case) -> None:
    predict, explain, background, _ = six_feature_case
    a = sampled_shapley(predict, explain, background, permutations=8, seed=5)
    b = sampled_shapley(predict, explain, background, permutations=8, seed=5)
    c = sampled_shapley(predict, explain, background, permutations=8, seed=6)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.allclose(a.values, c.values)


def test_chunked_predict_calls_give_the_same_values(six_feature_case) -> None:
    predict, explain, background, _ = six_feature_case
    calls: list[int] = []

    def counting(rows: np.ndarray) -> np.ndarray:
        calls.append(len(rows))
        return predict(rows)

    whole = sampled_shapley(predict, explain, background, permutations=8, seed=0)
    chunked = sampled_shapley(counting, explain, background, permutations=8, seed=0,
                              max_rows=8 * 5 * 20 * 7)
    np.testing.assert_allclose(whole.values, chunked.values, atol=1e-6)
    # f(x), f(background), then 30 samples in chunks of 7: 5 coalition calls, not 30 * 8
    assert len(calls) == 2 + 5


def test_frame_inputs_with_strings_and_multi_output_target() -> None:
    frame = pd.DataFrame({"color": ["red", "blue", "red"], "size": [1.0, 2.0, 3.0]},
                         index=[10, 11, 12])

    def predict(rows: pd.DataFrame) -> np.ndarray:
        red = (rows["color"] == "red").to_numpy(float)
        return np.stack([red * 2 + rows["size"].to_numpy(), -red], axis=1)

    background = pd.DataFrame({"color": ["blue"], "size": [0.0]})
    result = sampled_shapley(predict, frame, background, permutations=2, target=0)
    # an additive model: each feature's Shapley value is its own term's change
    assert list(result.values.index) == [10, 11, 12]
    np.testing.assert_allclose(result.values["color"], [2.0, 0.0, 2.0])
    np.testing.assert_allclose(result.values["size"], [1.0, 2.0, 3.0])
    with pytest.raises(AttributionError, match="out of range"):
        sampled_shapley(predict, frame, background, target=5)



def test_every_sample_draws_its_own_permutations(six_feature_case) -> None:
    predict, explain, background, exact = six_feature_case
    copies = np.repeat(explain[:1], 40, axis=0)
    result = sampled_shapley(predict, copies, background, permutations=4, seed=0)
    # one shared set of permutations would give 40 identical rows
    assert len(np.unique(result.values.round(9), axis=0)) == 40
    np.testing.assert_allclose(result.values.sum(axis=1), result.output - result.base_value,
                               atol=1e-5)
    # independent errors average out: 40 copies are ~sqrt(40) times closer than one
    single = np.abs(result.values - exact[0]).mean()
    averaged = np.abs(result.values.mean(axis=0) - exact[0]).mean()
    assert averaged < single / 3


def test_error_is_the_same_whatever_the_seed(six_feature_case) -> None:
    predict, explain, background, exact = six_feature_case
    errors = [
        _relative_error(sampled_shapley(predict, explain, background, permutations=16,
                                        seed=seed).values, exact)
        for seed in SEEDS
    ]
    assert max(errors) <= TOLERANCE
    # errors no longer move together across samples, so one seed cannot be much luckier
    assert max(errors) / min(errors) < 1.5


def test_a_samples_values_do_not_depend_on_the_other_samples(six_feature_case) -> None:
    predict, explain, background, _ = six_feature_case
    whole = sampled_shapley(predict, explain, background, permutations=6, seed=3)
    head = sampled_shapley(predict, explain[:7], background, permutations=6, seed=3)
    np.testing.assert_allclose(head.values, whole.values[:7], atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
def test_an_antithetic_pair_is_exact_for_two_features(seed: int) -> None:
    def predict(rows: np.ndarray) -> np.ndarray:
        return rows[:, 0] * rows[:, 1] + rows[:, 0] ** 2

    rng = np.random.default_rng(seed + 100)
    x, background = rng.normal(size=(5, 2)), rng.normal(size=(4, 2))
    result = sampled_shapley(predict, x, background, permutations=2, seed=seed)
    # the two orderings of two features, averaged over the background rows
    b0, b1 = background[None, :, 0], background[None, :, 1]
    x0, x1 = x[:, :1], x[:, 1:]

    def f(a, b):
        return a * b + a**2

    phi0 = 0.5 * ((f(x0, b1) - f(b0, b1)) + (f(x0, x1) - f(b0, x1))).mean(axis=1)
    phi1 = 0.5 * ((f(b0, x1) - f(b0, b1)) + (f(x0, x1) - f(x0, b1))).mean(axis=1)
    np.testing.assert_allclose(result.values, np.stack([phi0, phi1], axis=1), atol=1e-12)
