"""Explain a DataFrame of sampled predictions with the configured attribution method.

Which method applies when (config ``attribution.method = "auto"``):

* every model input is a float tensor and no feature is configured as categorical:
  integrated gradients (exact path integral, completeness error reported per row);
* otherwise (string or integer inputs, lookups or embeddings inside the model, or
  categorical codes fed as floats, where interpolating between codes means nothing):
  sampled Shapley values over the raw feature values, with a small background drawn
  from the reference.

Gradients at an embedding or one-hot layer are available through the low-level API:
split the model at that layer and call `integrated_gradients` on the tail with the
layer's outputs as dict inputs, then sum each feature's embedding dimensions. The
monitor does not do this automatically because the split point is model-specific.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from monitor.attribution.baselines import baseline_row, expected_gradients
from monitor.attribution.gradients import (
    Attributions,
    gradient_x_input,
    integrated_gradients,
    smoothgrad,
)
from monitor.attribution.shapley import sampled_shapley
from monitor.config import AttributionConfig, ModelConfig
from monitor.errors import AttributionError, ModelError
from monitor.model import LoadedModel, output_target

log = logging.getLogger(__name__)

#: background rows drawn from the reference for sampled Shapley values
SHAPLEY_BACKGROUND_ROWS = 32
#: reference rows averaged per sample by the "expected" (expected gradients) baseline
EXPECTED_GRADIENT_ROWS = 8
GRADIENT_METHODS = ("integrated_gradients", "gradient_x_input", "smoothgrad")


@dataclass(frozen=True)
class FrameExplanation:
    """Signed per-feature contributions for every row of a frame.

    `values` has the frame's index and one column per feature; `output` is the
    explained output per row and `baseline_output` the output the contributions are
    measured from (None when the method has none).
    """

    method: str
    values: pd.DataFrame
    output: np.ndarray
    baseline_output: np.ndarray | None
    completeness_error: np.ndarray | None
    steps: int | None


def choose_method(model: LoadedModel, categorical: Sequence[str], method: str) -> str:
    """The attribution method for `model`: `method`, or for "auto" the rule in the module doc."""
    if method == "auto":
        return "integrated_gradients" if model.differentiable and not categorical else "sampled_shapley"
    if method in GRADIENT_METHODS and not model.differentiable:
        raise AttributionError(
            f"attribution.method = {method!r} needs float model inputs, but "
            f"{model.path} takes {[s.name for s in model.inputs if not s.differentiable]} "
            "as strings or integers: use 'sampled_shapley' or 'auto'"
        )
    return method


def explain_frame(
    model: LoadedModel,
    frame: pd.DataFrame,
    *,
    reference: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    config: AttributionConfig,
    task: str,
    explain_class: int | None = None,
) -> FrameExplanation:
    """Attributions for every row of `frame` against `reference` (the baseline data).

    Raises ModelError naming a feature or model input the frame lacks.
    """
    features = list(numeric) + list(categorical)
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise ModelError(f"the frame to explain has no column for feature(s) {missing}")
    frame = frame[features]
    method = choose_method(model, categorical, config.method)
    if len(frame) == 0:
        empty = np.zeros(0)
        return FrameExplanation(
            method, pd.DataFrame(columns=features, index=frame.index, dtype=float), empty, None, None, None
        )
    target = output_target(model.predict_frame(frame), task, explain_class)
    # a reference row with a missing value would make the mean/median baseline row (or a
    # Shapley background row) NaN, and with it every attribution of that feature
    reference = reference[features].dropna()
    if method == "sampled_shapley":
        return _shapley(model, frame, reference, config, target)
    return _gradients(model, frame, reference, features, config, method, target)


def _shapley(
    model: LoadedModel,
    frame: pd.DataFrame,
    reference: pd.DataFrame,
    config: AttributionConfig,
    target: np.ndarray,
) -> FrameExplanation:
    rows = min(len(reference), SHAPLEY_BACKGROUND_ROWS)
    if rows == 0:
        raise AttributionError("sampled Shapley values need reference rows, got none")
    background = reference.sample(n=rows, random_state=0)
    result = sampled_shapley(
        model.predict_frame, frame, background, permutations=config.permutations, seed=0, target=target
    )
    return FrameExplanation("sampled_shapley", result.values, result.output, result.base_value, None, None)


def _gradients(
    model: LoadedModel,
    frame: pd.DataFrame,
    reference: pd.DataFrame,
    features: list[str],
    config: AttributionConfig,
    method: str,
    target: np.ndarray,
) -> FrameExplanation:
    inputs = model.to_inputs(frame)
    if method == "gradient_x_input":
        result = gradient_x_input(model, inputs, target=target)
    elif method == "smoothgrad":
        result = smoothgrad(model, inputs, target=target)
    elif config.baseline == "expected":
        result = expected_gradients(
            model,
            inputs,
            model.to_inputs(reference),
            k=EXPECTED_GRADIENT_ROWS,
            target=target,
            steps=config.steps,
            tolerance=config.tolerance,
        )
    else:
        if config.baseline != "zeros" and len(reference) == 0:
            raise AttributionError(f"a {config.baseline} baseline needs reference rows")
        base = baseline_row(model.to_inputs(reference) if len(reference) else inputs, config.baseline)
        result = integrated_gradients(
            model, inputs, base, target=target, steps=config.steps, tolerance=config.tolerance
        )
    values = _per_feature(model, result, features, frame.index)
    return FrameExplanation(
        result.method, values, result.output, result.baseline_output, result.completeness_error, result.steps
    )


def _per_feature(
    model: LoadedModel, result: Attributions, features: list[str], index: pd.Index
) -> pd.DataFrame:
    """One column per feature: a matrix's columns, or each named input summed per row."""
    values = result.values
    if isinstance(values, Mapping):
        n = len(index)
        columns = {
            name: values[name].reshape(n, -1).sum(axis=1) if name in values else np.zeros(n)
            for name in features
        }
        return pd.DataFrame(columns, index=index)
    order = list(model.features) if model.features else features
    matrix = pd.DataFrame(values.reshape(len(index), -1), index=index, columns=order)
    return matrix[features].astype(np.float64)


def explain_for_model(
    cfg: ModelConfig, model: LoadedModel, frame: pd.DataFrame, reference: pd.DataFrame
) -> FrameExplanation:
    """`explain_frame` with everything taken from a model's configuration."""
    return explain_frame(
        model,
        frame,
        reference=reference,
        numeric=cfg.features.numeric,
        categorical=cfg.features.categorical,
        config=cfg.attribution,
        task=cfg.task,
        explain_class=cfg.explain_class,
    )
