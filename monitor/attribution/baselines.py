"""Attribution baselines: the reference point an attribution is measured against.

`zeros`, the training `mean` and `median` give one baseline row; expected gradients
average integrated gradients over `k` reference rows drawn from the training data, so
the attributions explain f(x) - E[f(reference)] instead of f(x) - f(one point).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from monitor.attribution.gradients import Attributions, Values, integrated_gradients
from monitor.errors import AttributionError

KINDS = ("zeros", "mean", "median", "expected")


def baseline_row(reference: Values, kind: str) -> Values:
    """One baseline row (no batch axis) from `reference` rows: zeros, mean or median."""
    def reduce(leaf: np.ndarray) -> np.ndarray:
        leaf = np.asarray(leaf, dtype=np.float32)
        if len(leaf) == 0 and kind != "zeros":
            raise AttributionError(f"a {kind} baseline needs reference rows, got none")
        if kind == "zeros":
            return np.zeros(leaf.shape[1:], np.float32)
        if kind == "mean":
            return np.nanmean(leaf, axis=0).astype(np.float32)
        if kind == "median":
            return np.nanmedian(leaf, axis=0).astype(np.float32)
        raise AttributionError(f"unknown baseline {kind!r}; expected one of {KINDS[:3]}")

    if isinstance(reference, Mapping):
        return {name: reduce(leaf) for name, leaf in reference.items()}
    return reduce(reference)


def expected_gradients(
    model: Any,
    inputs: Values,
    reference: Values,
    *,
    k: int = 8,
    seed: int = 0,
    target: int | np.ndarray | None = None,
    steps: int | None = None,
    rule: str = "gauss_legendre",
    tolerance: float = 0.01,
    batch_size: int | None = None,
) -> Attributions:
    """Integrated gradients averaged over `k` reference rows drawn per sample (seeded).

    Returns `Attributions` whose `baseline_output` is the mean f(reference row) per
    sample, so completeness holds against that expectation.
    """
    n = len(next(iter(inputs.values())) if isinstance(inputs, Mapping) else inputs)
    m = len(next(iter(reference.values())) if isinstance(reference, Mapping) else reference)
    if m == 0:
        raise AttributionError("expected gradients need reference rows, got none")
    rows = np.random.default_rng(seed).integers(0, m, size=(k, n)).ravel()

    def tile(leaf: np.ndarray) -> np.ndarray:
        leaf = np.asarray(leaf, dtype=np.float32)
        return np.tile(leaf, (k,) + (1,) * (leaf.ndim - 1))

    def pick(leaf: np.ndarray) -> np.ndarray:
        return np.asarray(leaf, dtype=np.float32)[rows]

    if isinstance(inputs, Mapping):
        tiled: Values = {name: tile(leaf) for name, leaf in inputs.items()}
        base: Values = {name: pick(reference[name]) for name in inputs}
    else:
        tiled, base = tile(inputs), pick(reference)
    if target is not None and np.ndim(target) > 0:
        target = np.tile(np.asarray(target), k)
    result = integrated_gradients(model, tiled, base, target=target, steps=steps, rule=rule,
                                  tolerance=tolerance, batch_size=batch_size)

    def mean(leaf: np.ndarray) -> np.ndarray:
        return leaf.reshape(k, n, *leaf.shape[1:]).mean(axis=0)

    values = result.values
    values = ({name: mean(v) for name, v in values.items()} if isinstance(values, Mapping)
              else mean(values))
    fx = result.output[:n]
    fb = mean(result.baseline_output)
    leaves = values.values() if isinstance(values, Mapping) else [values]
    total = sum(v.reshape(n, -1).sum(axis=1) for v in leaves)
    error = np.abs(total - (fx - fb)) / np.maximum(np.abs(fx - fb), 1e-6)
    return Attributions("expected_gradients", values, fx, fb, error, result.steps,
                        result.target[:n])
