"""Attribution benchmark: batched integrated gradients and sampled Shapley values.

Prints medians of several repeats and ratios measured in this same run:
  1. ours vs a per-sample integrated-gradients loop in the style of the TensorFlow
     tutorial (steps batched, samples looped), both at <= 1% median completeness error
     (target: >= 50x faster);
  2. ours vs the floor: one batched forward+backward pass over the same number of
     interpolated rows (target: <= 1.25x);
  3. sampled_shapley vs shap's PermutationExplainer at equal error against exact
     Shapley values on 8 features (target: >= 5x faster).
Run: python benchmarks/attribution.py
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from monitor.attribution import integrated_gradients, quadrature, sampled_shapley  # noqa: E402
from monitor.attribution.gradients import DEFAULT_BATCH_ROWS  # noqa: E402

ROWS, FEATURES, REPEATS = 10_000, 30, 5
TOLERANCE = 0.01
REFERENCE_SUBSET = 200
SHAPLEY_FEATURES, SHAPLEY_ROWS, SHAPLEY_BACKGROUND = 8, 100, 20
SHAPLEY_TARGET_ERROR = 0.05


def interleaved_medians(fns: dict[str, Callable[[], Any]], repeats: int = REPEATS) -> dict:
    """Median seconds of each function, run in turns so that machine load hits all alike."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def build_mlp(features: int, width: int, layers: int, seed: int) -> tuple[Any, np.ndarray]:
    """An MLP briefly trained on a nonlinear synthetic target, and its data."""
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, features)).astype(np.float32)
    y = (np.sin(x[:, 0]) + x[:, 1] * x[:, 2] + 0.5 * x[:, 3:].sum(axis=1) > 0).astype(float)
    model = keras.Sequential(
        [keras.Input((features,))]
        + [keras.layers.Dense(width, activation="relu") for _ in range(layers)]
        + [keras.layers.Dense(1, activation="sigmoid")]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, y, epochs=1, batch_size=256, verbose=0)
    return model, x


def tutorial_ig(model: Any, x: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The TF tutorial's integrated gradients: trapezoid, steps batched, one sample at a time."""

    @tf.function
    def compute_gradients(images: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(images)
            probs = model(images)[:, 0]
        return tape.gradient(probs, images)

    baseline = tf.zeros(x.shape[1])
    alphas = tf.linspace(0.0, 1.0, steps + 1)
    values = []
    for row in x:
        row = tf.constant(row)
        interpolated = baseline[None] + alphas[:, None] * (row - baseline)[None]
        grads = compute_gradients(interpolated)
        avg = tf.reduce_mean((grads[:-1] + grads[1:]) / 2.0, axis=0)
        values.append(((row - baseline) * avg).numpy())
    values = np.stack(values)
    delta = model(x).numpy()[:, 0] - model(np.zeros((1, x.shape[1]), np.float32)).numpy()[0, 0]
    error = np.abs(values.sum(axis=1) - delta) / np.maximum(np.abs(delta), 1e-6)
    return values, error


def tutorial_steps(model: Any, x: np.ndarray) -> int:
    for steps in (4, 8, 16, 32, 64, 128, 256, 512):
        if np.median(tutorial_ig(model, x[:64], steps)[1]) <= TOLERANCE:
            return steps
    return 512


def floor_fn(model: Any, x: np.ndarray, steps: int) -> Callable[[], Any]:
    """One forward+backward pass over n * steps interpolated rows, in the same chunk size."""
    alphas, _ = quadrature("gauss_legendre", steps)
    chunk = max(1, DEFAULT_BATCH_ROWS // steps) * steps
    grid = (alphas[:, None, None] * x[None]).reshape(-1, x.shape[1])
    chunks = [tf.constant(grid[i:i + chunk]) for i in range(0, len(grid), chunk)]

    @tf.function(input_signature=[tf.TensorSpec((None, x.shape[1]), tf.float32)])
    def grad(rows: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(rows)
            out = model(rows, training=False)[:, 0]
        return tape.gradient(out, rows)

    return lambda: [grad(c).numpy() for c in chunks]


def bench_integrated_gradients() -> None:
    model, x = build_mlp(FEATURES, 256, 3, seed=0)
    zeros = np.zeros(FEATURES, np.float32)
    result = integrated_gradients(model, x, zeros)
    steps = result.steps
    print(f"integrated gradients, MLP {FEATURES} features x 3 dense(256), {ROWS} rows")
    print(f"  ours: auto-chosen {steps} Gauss-Legendre steps, median completeness error "
          f"{np.median(result.completeness_error):.5f}")
    ref_steps = tutorial_steps(model, x)
    subset = x[:REFERENCE_SUBSET]
    _, ref_error = tutorial_ig(model, subset, ref_steps)
    timed = interleaved_medians({
        "reference": lambda: tutorial_ig(model, subset, ref_steps),
        "auto": lambda: integrated_gradients(model, x, zeros),
        "fixed": lambda: integrated_gradients(model, x, zeros, steps=steps),
        "floor": floor_fn(model, x, steps),
    })
    ours_auto, ours_fixed, floor = timed["auto"], timed["fixed"], timed["floor"]
    ref_subset = timed["reference"]
    ref_full = ref_subset / REFERENCE_SUBSET * ROWS
    print(f"  ours (auto steps, including the step search): median {ours_auto:.3f} s")
    print(f"  ours (steps fixed at {steps}):                 median {ours_fixed:.3f} s")
    print(f"  per-sample tutorial loop: {ref_steps} trapezoid steps, median completeness "
          f"error {np.median(ref_error):.5f}; timed on {REFERENCE_SUBSET} rows "
          f"({ref_subset:.2f} s), extrapolated per row to {ROWS}: {ref_full:.1f} s")
    print(f"  floor: one forward+backward over {ROWS * steps} rows: median {floor:.3f} s")
    print(f"  RATIO per-sample loop / ours (auto):  {ref_full / ours_auto:.1f}x  (target >= 50x)")
    print(f"  RATIO ours (fixed steps) / floor:     {ours_fixed / floor:.2f}x  (target <= 1.25x)")
    print(f"  RATIO ours (auto steps) / floor:      {ours_auto / floor:.2f}x")


def bench_shapley() -> None:
    import shap

    model, x = build_mlp(SHAPLEY_FEATURES, 64, 2, seed=1)

    @tf.function(input_signature=[tf.TensorSpec((None, SHAPLEY_FEATURES), tf.float32)])
    def forward(rows: Any) -> Any:
        return model(rows, training=False)[:, 0]

    def predict(rows: np.ndarray) -> np.ndarray:
        return forward(tf.constant(np.asarray(rows, np.float32))).numpy()

    background, explain = x[:SHAPLEY_BACKGROUND], x[1000:1000 + SHAPLEY_ROWS]
    masker = shap.maskers.Independent(background, max_samples=SHAPLEY_BACKGROUND)
    exact = shap.explainers.Exact(predict, masker)(explain, silent=True).values

    def error(values: np.ndarray) -> float:
        return float(np.abs(values - exact).mean() / np.abs(exact).mean())

    def ours(p: int) -> np.ndarray:
        return sampled_shapley(predict, explain, background, permutations=p, seed=0).values

    def theirs(p: int) -> np.ndarray:
        explainer = shap.explainers.Permutation(predict, masker, seed=0)
        evals = p * (2 * SHAPLEY_FEATURES + 1)
        return explainer(explain, max_evals=evals, silent=True).values

    def smallest(fn: Callable[[int], np.ndarray], label: str) -> int:
        for p in (2, 4, 8, 16, 32, 64, 128):
            e = error(fn(p))
            print(f"    {label} permutations={p:<4d} relative error vs exact {e:.4f}")
            if e <= SHAPLEY_TARGET_ERROR:
                return p
        return 128

    print(f"sampled Shapley, MLP {SHAPLEY_FEATURES} features, {SHAPLEY_ROWS} rows, "
          f"{SHAPLEY_BACKGROUND} background rows; equal error = mean |phi - exact| / "
          f"mean |exact| <= {SHAPLEY_TARGET_ERROR}")
    ours_p, their_p = smallest(ours, "ours"), smallest(theirs, "shap PermutationExplainer")
    timed = interleaved_medians({"ours": lambda: ours(ours_p), "shap": lambda: theirs(their_p)})
    ours_t, their_t = timed["ours"], timed["shap"]
    print(f"  ours: {ours_p} permutations, median {ours_t:.3f} s; shap: {their_p} "
          f"permutations, median {their_t:.3f} s")
    print(f"  RATIO shap / ours: {their_t / ours_t:.1f}x  (target >= 5x)")


if __name__ == "__main__":
    print(f"tensorflow {tf.__version__}, keras {keras.__version__}, "
          f"{os.cpu_count()} cpus; medians of {REPEATS} interleaved repeats after a warm-up")
    bench_integrated_gradients()
    bench_shapley()
