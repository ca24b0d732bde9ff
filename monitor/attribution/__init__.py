"""Feature attributions: why the model decided, and how its reasoning shifts.

Gradient methods (integrated gradients, gradient x input, SmoothGrad) need float model
inputs; sampled Shapley values need only predictions. `explain_frame` picks between them
(see `monitor.attribution.explain`). TensorFlow is imported only when a gradient method
runs.
"""

from monitor.attribution.baselines import baseline_row, expected_gradients
from monitor.attribution.drift import (
    AttributionDrift,
    FeatureAttributionDrift,
    attribution_drift,
    global_importance,
    ndcg,
)
from monitor.attribution.explain import FrameExplanation, choose_method, explain_for_model, explain_frame
from monitor.attribution.gradients import (
    Attributions,
    gradient_x_input,
    integrated_gradients,
    quadrature,
    smoothgrad,
)
from monitor.attribution.shapley import ShapleyValues, sampled_shapley

__all__ = [
    "AttributionDrift",
    "Attributions",
    "FeatureAttributionDrift",
    "FrameExplanation",
    "ShapleyValues",
    "attribution_drift",
    "baseline_row",
    "choose_method",
    "expected_gradients",
    "explain_for_model",
    "explain_frame",
    "global_importance",
    "gradient_x_input",
    "integrated_gradients",
    "ndcg",
    "quadrature",
    "sampled_shapley",
    "smoothgrad",
]
