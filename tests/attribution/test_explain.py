"""explain_frame on models loaded from disk: .keras and SavedModel, every task."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.attribution import explain_frame
from monitor.config import AttributionConfig
from monitor.errors import AttributionError, ModelError
from monitor.model import load_model


@pytest.mark.parametrize("fmt", ["keras", "saved_model"])
def test_dict_models_explained_by_integrated_gradients(dict_model, fmt: str) -> None:
    path = dict_model.keras_path if fmt == "keras" else dict_model.saved_model_path
    model = load_model(path)
    assert model.dict_inputs and model.differentiable
    frame = dict_model.frame.iloc[:80].set_index(np.arange(1000, 1080))
    explanation = explain_frame(
        model, frame, reference=dict_model.frame, numeric=dict_model.features,
        categorical=(), config=AttributionConfig(), task=dict_model.task,
    )
    assert explanation.method == "integrated_gradients"
    assert list(explanation.values.columns) == list(dict_model.features)
    assert list(explanation.values.index) == list(frame.index)
    assert np.median(explanation.completeness_error) <= 0.01
    np.testing.assert_allclose(
        explanation.output, model.score(frame, dict_model.task), rtol=1e-5, atol=1e-6)
    # one baseline row (the reference mean): f(baseline) differs only by explained class
    classes = 3 if dict_model.task == "multiclass_classification" else 1
    assert len(np.unique(np.round(explanation.baseline_output, 5))) <= classes


def test_keras_and_saved_model_give_the_same_attributions(dict_models) -> None:
    trained = dict_models["multiclass"]
    config = AttributionConfig(steps=32, baseline="median")
    frame = trained.frame.iloc[:40]
    results = [
        explain_frame(load_model(p), frame, reference=trained.frame, numeric=trained.features,
                      categorical=(), config=config, task=trained.task, explain_class=1)
        for p in (trained.keras_path, trained.saved_model_path)
    ]
    np.testing.assert_allclose(results[0].values, results[1].values, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(results[0].output, trained.model(
        {c: frame[[c]].to_numpy() for c in trained.features}).numpy()[:, 1], atol=1e-5)


@pytest.mark.parametrize("baseline", ["zeros", "mean", "median", "expected"])
def test_single_tensor_model_every_baseline(mlp_binary, baseline: str) -> None:
    model = load_model(mlp_binary.saved_model_path, features=mlp_binary.features)
    frame = mlp_binary.frame.iloc[:30]
    explanation = explain_frame(
        model, frame, reference=mlp_binary.frame, numeric=mlp_binary.features, categorical=(),
        config=AttributionConfig(baseline=baseline), task=mlp_binary.task)
    assert explanation.values.shape == (30, 30)
    assert np.median(explanation.completeness_error) <= 0.02
    assert explanation.steps is not None


@pytest.mark.parametrize("method", ["gradient_x_input", "smoothgrad"])
def test_other_gradient_methods(mlp_binary, method: str) -> None:
    model = load_model(mlp_binary.keras_path, features=mlp_binary.features)
    explanation = explain_frame(
        model, mlp_binary.frame.iloc[:20], reference=mlp_binary.frame,
        numeric=mlp_binary.features, categorical=(), config=AttributionConfig(method=method),
        task=mlp_binary.task)
    assert explanation.method == method
    assert np.isfinite(explanation.values.to_numpy()).all()
    assert explanation.values.abs().to_numpy().sum() > 0


def test_string_categorical_model_uses_sampled_shapley(string_model) -> None:
    model = load_model(string_model.keras_path)
    assert not model.differentiable
    frame = string_model.frame.iloc[:40]
    explanation = explain_frame(
        model, frame, reference=string_model.frame, numeric=string_model.features[:3],
        categorical=("band",), config=AttributionConfig(permutations=8),
        task=string_model.task)
    assert explanation.method == "sampled_shapley"
    assert explanation.completeness_error is None
    np.testing.assert_allclose(explanation.values.sum(axis=1),
                               explanation.output - explanation.baseline_output, atol=1e-5)
    np.testing.assert_allclose(explanation.output, model.score(frame, string_model.task),
                               atol=1e-6)
    assert explanation.values["band"].abs().mean() > 0
    with pytest.raises(AttributionError, match="sampled_shapley"):
        explain_frame(model, frame, reference=string_model.frame,
                      numeric=string_model.features[:3], categorical=("band",),
                      config=AttributionConfig(method="integrated_gradients"),
                      task=string_model.task)


def test_a_frame_missing_a_model_input_names_it(dict_models) -> None:
    trained = dict_models["binary"]
    model = load_model(trained.keras_path)
    frame = trained.frame.drop(columns=["mean_area"])
    with pytest.raises(ModelError, match="mean_area"):
        explain_frame(model, frame, reference=trained.frame, numeric=trained.features,
                      categorical=(), config=AttributionConfig(), task=trained.task)
    with pytest.raises(ModelError, match="mean_area"):
        model.predict_frame(frame)
