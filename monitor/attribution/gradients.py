"""Gradient attributions: integrated gradients, gradient x input and SmoothGrad.

All three run through one compiled TensorFlow function per model that takes a chunk of
samples and a set of interpolation points ("alphas") at once: the (samples x alphas)
grid becomes one batch, so there is no Python loop per sample. The same call computes
f(x) and f(baseline), which gives each sample's completeness error for free.

Inputs are a float matrix ``(n, d)`` (or any ``(n, ...)`` float array) or a dict of
float arrays keyed by the model's input names. `model` is a Keras model, a
`monitor.model.LoadedModel`, or any callable on a tensor / dict of tensors that returns
``(n,)`` or ``(n, k)`` outputs.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.errors import AttributionError
from monitor.model import output_matrix

log = logging.getLogger(__name__)

RULES = ("gauss_legendre", "riemann_trapezoid")
#: step counts tried, in order, when `steps=None`
AUTO_STEPS = (4, 8, 16, 32, 64, 128, 256)
#: rows used to choose the step count
AUTO_ROWS = 64
#: interpolated rows per compiled call
DEFAULT_BATCH_ROWS = 4096
EPS = 1e-6

Values = np.ndarray | dict[str, np.ndarray]


@dataclass(frozen=True)
class Attributions:
    """Per-sample attributions from a gradient method.

    `values` has the shape of the inputs (a dict of arrays for dict inputs); `output`
    and `baseline_output` are the explained output f(x) and f(baseline) per sample;
    `completeness_error` is |sum(values) - (f(x) - f(baseline))| / max(|f(x) -
    f(baseline)|, eps) per sample (None when the method has no such guarantee).
    """

    method: str
    values: Values
    output: np.ndarray
    baseline_output: np.ndarray | None
    completeness_error: np.ndarray | None
    steps: int | None
    target: np.ndarray


def quadrature(rule: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Interpolation points in [0, 1] and their weights for a path integral.

    Gauss-Legendre uses `steps` nodes; the trapezoid rule uses `steps` intervals, so
    ``steps + 1`` points with half weight at both ends.
    """
    if steps < 1:
        raise AttributionError(f"steps must be >= 1, got {steps}")
    if rule == "gauss_legendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return ((nodes + 1) / 2).astype(np.float32), (weights / 2).astype(np.float32)
    if rule == "riemann_trapezoid":
        alphas = np.linspace(0.0, 1.0, steps + 1)
        weights = np.full(steps + 1, 1.0 / steps)
        weights[[0, -1]] /= 2
        return alphas.astype(np.float32), weights.astype(np.float32)
    raise AttributionError(f"unknown integration rule {rule!r}; expected one of {RULES}")


def integrated_gradients(
    model: Any,
    inputs: Values,
    baseline: Values | None = None,
    *,
    target: int | np.ndarray | None = None,
    steps: int | None = None,
    rule: str = "gauss_legendre",
    tolerance: float = 0.01,
    batch_size: int | None = None,
) -> Attributions:
    """Integrated gradients of the `target` output along the straight path from `baseline`.

    `baseline` is None (zeros), one row, or one row per sample. `target` picks the output
    column (an int or one per sample; None: column 0 for one output, else the predicted
    class). `steps=None` picks the fewest of `AUTO_STEPS` whose median completeness error
    on up to `AUTO_ROWS` samples is <= `tolerance`. Returns `Attributions`.
    """
    engine = _Engine(model, inputs, batch_size)
    x = engine.x
    b = engine.broadcast_baseline(baseline, len(x[0]))
    if steps is None:
        steps = _choose_steps(engine, x, b, target, rule, tolerance)
    alphas, weights = quadrature(rule, steps)
    return engine.run("integrated_gradients", x, b, alphas, weights, target, steps)


def gradient_x_input(
    model: Any, inputs: Values, *, target: int | np.ndarray | None = None,
    batch_size: int | None = None,
) -> Attributions:
    """Gradient times input: one backward pass; exact only for linear models (zeros baseline)."""
    engine = _Engine(model, inputs, batch_size)
    x = engine.x
    b = [np.zeros_like(leaf) for leaf in x]
    one = np.ones(1, dtype=np.float32)
    return engine.run("gradient_x_input", x, b, one, one, target, 1)


def smoothgrad(
    model: Any,
    inputs: Values,
    *,
    target: int | np.ndarray | None = None,
    samples: int = 32,
    noise: float = 0.1,
    seed: int = 0,
    batch_size: int | None = None,
) -> Attributions:
    """SmoothGrad x input: the gradient averaged over `samples` noisy copies, times the input.

    The noise is Gaussian with a standard deviation of `noise` times each feature's
    range in `inputs`. Returns signed contributions (no completeness guarantee).
    """
    engine = _Engine(model, inputs, batch_size)
    x = engine.x
    n = len(x[0])
    rng = np.random.default_rng(seed)
    tiled_x, tiled_b = [], []
    for leaf in x:
        scale = noise * (leaf.max(axis=0) - leaf.min(axis=0) if n > 1 else np.abs(leaf[0]) + 1)
        noisy = leaf[None] + rng.normal(size=(samples, *leaf.shape)) * scale
        noisy = noisy.astype(np.float32).reshape(samples * n, *leaf.shape[1:])
        tiled_x.append(noisy)
        # interpolating from (noisy - x) to noisy at alpha 1 gives grad(noisy) * x
        tiled_b.append(noisy - np.tile(leaf, (samples,) + (1,) * (leaf.ndim - 1)))
    if target is None:
        target = engine.default_target(x)
    tiled_target = np.tile(np.broadcast_to(np.asarray(target), (n,)), samples)
    one = np.ones(1, dtype=np.float32)
    raw = engine.run("smoothgrad", tiled_x, tiled_b, one, one, tiled_target, samples)
    leaves = engine.flatten(raw.values)
    mean = [leaf.reshape(samples, n, *leaf.shape[1:]).mean(axis=0) for leaf in leaves]
    fx = engine.forward_selected(x, tiled_target[:n])
    return Attributions("smoothgrad", engine.unflatten(mean), fx, None, None, samples,
                        tiled_target[:n])


def _choose_steps(
    engine: _Engine, x: list[np.ndarray], b: list[np.ndarray],
    target: int | np.ndarray | None, rule: str, tolerance: float,
) -> int:
    n = len(x[0])
    rows = np.unique(np.linspace(0, n - 1, min(n, AUTO_ROWS)).astype(int))
    sub_x, sub_b = [leaf[rows] for leaf in x], [leaf[rows] for leaf in b]
    sub_target = target if target is None or np.ndim(target) == 0 else np.asarray(target)[rows]
    median = float("nan")
    for steps in AUTO_STEPS:
        alphas, weights = quadrature(rule, steps)
        trial = engine.run("integrated_gradients", sub_x, sub_b, alphas, weights,
                           sub_target, steps)
        median = float(np.median(trial.completeness_error))
        if median <= tolerance:
            log.debug("integrated gradients: %d %s steps reach %.4f", steps, rule, median)
            return steps
    log.warning(
        "integrated gradients: %d steps leave a median completeness error of %.3f "
        "(tolerance %.3f); using them anyway", AUTO_STEPS[-1], median, tolerance,
    )
    return AUTO_STEPS[-1]


_CACHE: weakref.WeakKeyDictionary[Any, dict[Any, Any]] = weakref.WeakKeyDictionary()


class _Engine:
    """Flattens inputs, chunks samples and calls the compiled attribution function."""

    def __init__(self, model: Any, inputs: Values, batch_size: int | None):
        self.model = model
        self.keys: tuple[str, ...] | None = (
            tuple(sorted(inputs)) if isinstance(inputs, Mapping) else None
        )
        self.batch_rows = batch_size or DEFAULT_BATCH_ROWS
        self.x = self.flatten(inputs)

    def flatten(self, values: Values) -> list[np.ndarray]:
        if self.keys is None:
            if isinstance(values, Mapping):
                raise AttributionError("inputs are one array but values are a dict")
            leaves = [np.asarray(values)]
        else:
            if not isinstance(values, Mapping) or set(values) != set(self.keys):
                raise AttributionError(f"expected a dict with keys {list(self.keys)}")
            leaves = [np.asarray(values[k]) for k in self.keys]
        for name, leaf in zip(self.keys or ("inputs",), leaves, strict=True):
            if leaf.dtype.kind not in "fiub":
                raise AttributionError(
                    f"input {name!r} has dtype {leaf.dtype}: gradients need numeric inputs; "
                    "use sampled_shapley for string or categorical inputs"
                )
        return [leaf.astype(np.float32, copy=False) for leaf in leaves]

    def unflatten(self, leaves: list[np.ndarray]) -> Values:
        if self.keys is None:
            return leaves[0]
        return dict(zip(self.keys, leaves, strict=True))

    def broadcast_baseline(self, baseline: Values | None, n: int) -> list[np.ndarray]:
        if baseline is None:
            return [np.zeros((n, *leaf.shape[1:]), np.float32) for leaf in self.x]
        leaves = self.flatten(baseline)
        out = []
        for leaf, ref in zip(leaves, self.x, strict=True):
            if leaf.shape == ref.shape[1:] or leaf.shape == (1, *ref.shape[1:]):
                leaf = np.broadcast_to(leaf.reshape(1, *ref.shape[1:]), (n, *ref.shape[1:]))
            if leaf.shape != (n, *ref.shape[1:]):
                raise AttributionError(
                    f"baseline shape {leaf.shape} fits neither one row nor {n} rows of "
                    f"shape {ref.shape[1:]}"
                )
            out.append(np.ascontiguousarray(leaf, dtype=np.float32))
        return out

    def default_target(self, x: list[np.ndarray]) -> np.ndarray:
        raw = self._call_numpy(x)
        if raw.shape[1] == 1:
            return np.zeros(len(raw), dtype=np.int64)
        return raw.argmax(axis=1)

    def forward_selected(self, x: list[np.ndarray], target: np.ndarray) -> np.ndarray:
        raw = self._call_numpy(x)
        return raw[np.arange(len(raw)), target]

    def _call_numpy(self, x: list[np.ndarray]) -> np.ndarray:
        import tensorflow as tf

        fn = self._compiled()[1]
        parts = []
        for start in range(0, len(x[0]), self.batch_rows):
            chunk = tuple(tf.constant(leaf[start:start + self.batch_rows]) for leaf in x)
            parts.append(fn(chunk).numpy())
        return np.concatenate(parts)

    def run(
        self, method: str, x: list[np.ndarray], b: list[np.ndarray], alphas: np.ndarray,
        weights: np.ndarray, target: int | np.ndarray | None, steps: int,
    ) -> Attributions:
        """Attributions for every sample, in chunks of about `batch_rows` interpolated rows."""
        import tensorflow as tf

        n = len(x[0])
        tgt = np.full(n, -1 if target is None else 0, dtype=np.int32)
        if target is not None:
            tgt[:] = np.broadcast_to(np.asarray(target, dtype=np.int32), (n,))
        fn = self._compiled()[0]
        chunk = max(1, self.batch_rows // len(alphas))
        alphas_t, weights_t = tf.constant(alphas), tf.constant(weights)
        parts: list[list[np.ndarray]] = []
        for start in range(0, n, chunk):
            part = slice(start, start + chunk)
            result = fn(tuple(tf.constant(leaf[part]) for leaf in x),
                        tuple(tf.constant(leaf[part]) for leaf in b),
                        alphas_t, weights_t, tf.constant(tgt[part]))
            parts.append([t.numpy() for t in tf.nest.flatten(result)])
        joined = [np.concatenate(column) for column in zip(*parts, strict=True)]
        *values, fx, fb, chosen = joined
        total = sum(v.reshape(n, -1).sum(axis=1) for v in values)
        delta = fx - fb
        error = np.abs(total - delta) / np.maximum(np.abs(delta), EPS)
        return Attributions(method, self.unflatten(values), fx, fb, error, steps,
                            chosen.astype(np.int64))

    def _compiled(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        key = (self.keys, tuple(leaf.shape[1:] for leaf in self.x))
        try:
            per_model = _CACHE.setdefault(self.model, {})
        except TypeError:  # not weak-referenceable: compile without caching
            per_model = {}
        if key not in per_model:
            per_model[key] = _build(self.model, self.keys, [leaf.shape for leaf in self.x])
        return per_model[key]


def _build(model: Any, keys: tuple[str, ...] | None, shapes: list[tuple[int, ...]]) -> Any:
    """Compile (attribution step, forward pass) for one model and input structure."""
    import tensorflow as tf

    call = _callable(model)

    def forward(leaves: Any) -> Any:
        return output_matrix(call(leaves[0] if keys is None else dict(zip(keys, leaves, strict=True))))

    specs = tuple(tf.TensorSpec((None, *s[1:]), tf.float32) for s in shapes)
    vec = tf.TensorSpec((None,), tf.float32)

    @tf.function(input_signature=[specs, specs, vec, vec, tf.TensorSpec((None,), tf.int32)])
    def attribute(xs: Any, bs: Any, alphas: Any, weights: Any, target: Any) -> Any:
        m, s = tf.shape(target)[0], tf.shape(alphas)[0]
        ends = forward(tuple(tf.concat([x, b], 0) for x, b in zip(xs, bs, strict=True)))
        predicted = tf.cast(tf.argmax(ends[:m], axis=1), tf.int32)
        target = tf.where(target < 0, predicted, target)  # argmax of one column is 0
        fx = tf.gather(ends[:m], target, axis=1, batch_dims=1)
        fb = tf.gather(ends[m:], target, axis=1, batch_dims=1)
        grid = []
        for x, b in zip(xs, bs, strict=True):
            a = tf.reshape(alphas, tf.concat([[s, 1], tf.ones([tf.rank(x) - 1], tf.int32)], 0))
            path = b[None] + a * (x - b)[None]
            grid.append(tf.reshape(path, tf.concat([[s * m], tf.shape(x)[1:]], 0)))
        with tf.GradientTape() as tape:
            tape.watch(grid)
            out = forward(tuple(grid))
            selected = tf.gather(out, tf.tile(target, [s]), axis=1, batch_dims=1)
        grads = tape.gradient(selected, grid)
        values = []
        for g, x, b in zip(grads, xs, bs, strict=True):
            g = tf.reshape(g, tf.concat([[s], tf.shape(x)], 0))
            values.append(tf.tensordot(weights, g, axes=1) * (x - b))
        return (*values, fx, fb, target)

    @tf.function(input_signature=[specs])
    def predict(xs: Any) -> Any:
        return forward(xs)

    return attribute, predict


def _callable(model: Any) -> Callable[[Any], Any]:
    try:
        import keras
    except ImportError:  # pragma: no cover - keras ships with tensorflow
        return model
    if isinstance(model, keras.Model):
        return lambda inputs: model(inputs, training=False)
    return model
