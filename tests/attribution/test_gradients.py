"""Integrated gradients, gradient x input and SmoothGrad on real trained Keras models."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.attribution import (
    baseline_row,
    expected_gradients,
    gradient_x_input,
    integrated_gradients,
    quadrature,
    smoothgrad,
)
from monitor.errors import AttributionError


@pytest.mark.parametrize("rule", ["gauss_legendre", "riemann_trapezoid"])
def test_quadrature_integrates_polynomials(rule: str) -> None:
    alphas, weights = quadrature(rule, 8)
    assert weights.sum() == pytest.approx(1.0, rel=1e-6)
    assert (alphas >= 0).all() and (alphas <= 1).all()
    # Gauss-Legendre with 8 nodes is exact for x^3; the trapezoid rule is not
    integral = float((weights * alphas**3).sum())
    if rule == "gauss_legendre":
        assert integral == pytest.approx(0.25, rel=1e-5)
    else:
        assert abs(integral - 0.25) > 1e-4


def test_linear_model_ig_equals_weight_times_delta(linear_regression) -> None:
    x = linear_regression.frame.to_numpy()[:200]
    w = linear_regression.model.layers[-1].kernel.numpy()[:, 0]
    base = baseline_row(linear_regression.frame.to_numpy(), "median")
    result = integrated_gradients(linear_regression.model, x, base)
    expected = w * (x - base)
    np.testing.assert_allclose(result.values, expected, rtol=1e-5, atol=1e-6)
    assert result.values.shape == x.shape
    assert result.steps == 4  # the first candidate already integrates a constant gradient
    assert np.median(result.completeness_error) < 1e-4


def test_mlp_completeness_and_gauss_legendre_needs_fewer_steps(mlp_binary) -> None:
    x = mlp_binary.frame.to_numpy()[:256]
    base = baseline_row(mlp_binary.frame.to_numpy(), "mean")
    gl = integrated_gradients(mlp_binary.model, x, base, rule="gauss_legendre")
    tz = integrated_gradients(mlp_binary.model, x, base, rule="riemann_trapezoid")
    assert np.median(gl.completeness_error) <= 0.01
    assert np.median(tz.completeness_error) <= 0.01
    assert gl.steps < tz.steps, (gl.steps, tz.steps)
    # outputs come from the same compiled call and match Keras' own prediction
    np.testing.assert_allclose(gl.output, mlp_binary.model(x).numpy()[:, 0], atol=1e-5)
    delta = gl.output - gl.baseline_output
    recomputed = np.abs(gl.values.sum(axis=1) - delta) / np.maximum(np.abs(delta), 1e-6)
    np.testing.assert_allclose(gl.completeness_error, recomputed, rtol=1e-3, atol=1e-6)


def test_fixed_steps_and_chunking_do_not_change_values(mlp_binary) -> None:
    x = mlp_binary.frame.to_numpy()[:100]
    whole = integrated_gradients(mlp_binary.model, x, steps=16)
    chunked = integrated_gradients(mlp_binary.model, x, steps=16, batch_size=48)
    assert whole.steps == chunked.steps == 16
    np.testing.assert_allclose(whole.values, chunked.values, rtol=1e-4, atol=1e-6)


def test_multiclass_target_per_sample_and_default(dict_models) -> None:
    dict_model = dict_models["multiclass"]
    x = {c: dict_model.frame[[c]].to_numpy()[:60] for c in dict_model.features}
    raw = dict_model.model(x).numpy()
    default = integrated_gradients(dict_model.model, x, steps=32)
    np.testing.assert_array_equal(default.target, raw.argmax(axis=1))
    np.testing.assert_allclose(default.output, raw.max(axis=1), atol=1e-5)
    fixed = integrated_gradients(dict_model.model, x, target=2, steps=32)
    np.testing.assert_allclose(fixed.output, raw[:, 2], atol=1e-5)
    assert set(fixed.values) == set(x) and fixed.values["ash"].shape == (60, 1)


def test_expected_gradients_complete_against_mean_reference_output(mlp_binary) -> None:
    x = mlp_binary.frame.to_numpy()
    result = expected_gradients(mlp_binary.model, x[:50], x[100:300], k=6, seed=1, steps=32)
    assert result.values.shape == (50, 30)
    assert np.median(result.completeness_error) <= 0.02
    again = expected_gradients(mlp_binary.model, x[:50], x[100:300], k=6, seed=1, steps=32)
    np.testing.assert_array_equal(result.values, again.values)


def test_gradient_x_input_and_smoothgrad_on_linear_model(linear_regression) -> None:
    x = linear_regression.frame.to_numpy()[:50]
    w = linear_regression.model.layers[-1].kernel.numpy()[:, 0]
    gxi = gradient_x_input(linear_regression.model, x)
    np.testing.assert_allclose(gxi.values, w * x, rtol=1e-5, atol=1e-6)
    # a linear model's gradient is constant, so the noise cannot change it
    sg = smoothgrad(linear_regression.model, x, samples=8, seed=3)
    np.testing.assert_allclose(sg.values, w * x, rtol=1e-4, atol=1e-5)


def test_string_inputs_are_refused_with_a_pointer_to_shapley() -> None:
    with pytest.raises(AttributionError, match="sampled_shapley"):
        integrated_gradients(lambda t: t, {"color": np.array([["red"]], dtype=object)})
