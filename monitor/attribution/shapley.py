"""Sampled Shapley values for models gradients cannot explain.

String or integer categorical inputs, lookups and decision forests have no useful
gradient with respect to their inputs; Shapley values only need predictions. The value
of a coalition S is E_b[f(x_S, b_rest)] over the background rows b (interventional
Shapley, what shap's Exact and Permutation explainers compute with an Independent
masker). Every sample gets its own permutations, drawn independently (one shared set
would make the errors of all samples move together), in antithetic pairs (a permutation
and its reverse). The coalitions of every permutation, every sample and every background
row are built as one array (or DataFrame) and sent through `predict_fn` in a few large
calls. Sample i's permutations depend only on the seed and i, not on the chunking.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitor.errors import AttributionError

log = logging.getLogger(__name__)

#: rows sent to `predict_fn` per call (it may batch further inside). A call's coalition
#: rows are built at once: 30 features at 2**20 rows peaked at 444 MiB (arrays) and
#: 630 MiB (DataFrames) before the model ran, at 2**17 rows at 62 and 92 MiB
MAX_ROWS = 1 << 17


@dataclass(frozen=True)
class ShapleyValues:
    """Sampled Shapley values: `values` is ``(n, d)`` (a DataFrame for frame inputs).

    `output` is f(x) and `base_value` the mean f over the background, per sample, so
    each row of `values` sums to ``output - base_value`` exactly.
    """

    values: np.ndarray | pd.DataFrame
    output: np.ndarray
    base_value: np.ndarray
    permutations: int
    background_rows: int
    target: np.ndarray | None


def sampled_shapley(
    predict_fn: Callable[[Any], np.ndarray],
    inputs: np.ndarray | pd.DataFrame,
    background: np.ndarray | pd.DataFrame,
    *,
    permutations: int = 16,
    seed: int = 0,
    target: int | np.ndarray | None = None,
    max_rows: int = MAX_ROWS,
) -> ShapleyValues:
    """Shapley values estimated from `permutations` feature orderings (rounded up to even).

    `predict_fn` takes rows shaped like `inputs` (an array or a DataFrame with the same
    columns) and returns ``(n,)`` or ``(n, k)``; for ``(n, k)`` `target` picks the
    column (None: 0 for one column, else each sample's predicted class).
    """
    frame = isinstance(inputs, pd.DataFrame)
    x = inputs if frame else np.asarray(inputs)
    bg = background[list(inputs.columns)] if frame else np.asarray(background)
    n, d, m = len(x), x.shape[1], len(bg)
    if m == 0:
        raise AttributionError("sampled Shapley values need at least one background row")
    if n == 0:
        return _empty(inputs, permutations, m)
    fx_raw = _as_2d(predict_fn(x))
    tgt = _target(fx_raw, target)
    bg_mean = _as_2d(predict_fn(bg)).mean(axis=0)
    fx, fb = fx_raw[np.arange(n), tgt], bg_mean[tgt]
    half = max(1, (permutations + 1) // 2)
    p = 2 * half
    rng = np.random.default_rng(seed)
    chunk = max(1, max_rows // max(1, p * (d - 1) * m))
    values = np.empty((n, d))
    for start in range(0, n, chunk):
        rows = slice(start, min(n, start + chunk))
        c = rows.stop - rows.start
        rank = _antithetic_ranks(rng, c, half, d)  # rank[i, p, f]: position of f
        if d > 1:
            # coalition j (1 <= j < d) holds the first j features of each permutation
            inner = rank[:, :, None, :] < np.arange(1, d)[None, None, :, None]
            batch = _coalitions(x, bg, rows, inner, frame)
            out = _as_2d(predict_fn(batch))
            pick = np.repeat(tgt[rows], p * (d - 1) * m)
            mid = out[np.arange(len(out)), pick].reshape(c, p, d - 1, m).mean(axis=3)
        else:
            mid = np.empty((c, p, 0))
        ends = (np.broadcast_to(fb[rows, None, None], (c, p, 1)),
                np.broadcast_to(fx[rows, None, None], (c, p, 1)))
        chain = np.concatenate([ends[0], mid, ends[1]], axis=2)
        steps = np.diff(chain, axis=2)  # (c, p, d): marginal of the feature at position j
        values[rows] = np.take_along_axis(steps, rank, axis=2).mean(axis=1)
    result: np.ndarray | pd.DataFrame = values
    if frame:
        result = pd.DataFrame(values, index=inputs.index, columns=inputs.columns)
    return ShapleyValues(result, fx, fb, p, m, tgt)


def _antithetic_ranks(rng: np.random.Generator, rows: int, half: int, d: int) -> np.ndarray:
    """Each row's own `half` random orderings and their reverses, as ranks ``(rows, 2*half, d)``.

    rank[i, k, f] is the position of feature f in row i's k-th ordering. The argsort of
    uniform draws is a uniform permutation (so is its inverse, used here as the ranks);
    reversing an ordering maps rank r to d - 1 - r. The draws come off `rng` row after
    row, so a row's orderings do not depend on the chunk size.
    """
    forward = np.argsort(rng.random((rows, half, d)), axis=2)
    return np.concatenate([forward, d - 1 - forward], axis=1)


def _coalitions(
    x: Any, bg: Any, rows: slice, inner: np.ndarray, frame: bool
) -> np.ndarray | pd.DataFrame:
    """Rows (sample, permutation, coalition, background) mixing x and background values.

    `inner` is ``(samples, permutations, coalitions, features)``: True where the
    coalition takes the sample's value.
    """
    c, p, j, d = inner.shape
    m = len(bg)
    if not frame:
        xs = x[rows][:, None, None, None, :]
        mask = inner[:, :, :, None, :]
        mixed = np.where(mask, xs, bg[None, None, None, :, :])
        return mixed.reshape(c * p * j * m, d)
    columns = {}
    for f, name in enumerate(x.columns):
        xv = x[name].to_numpy()[rows][:, None, None, None]
        bv = bg[name].to_numpy()[None, None, None, :]
        mixed = np.where(inner[:, :, :, None, f], xv, bv)
        columns[name] = mixed.reshape(-1)
    return pd.DataFrame(columns)


def _as_2d(out: Any) -> np.ndarray:
    out = np.asarray(out, dtype=np.float64)
    return out[:, None] if out.ndim == 1 else out.reshape(len(out), -1)


def _target(raw: np.ndarray, target: int | np.ndarray | None) -> np.ndarray:
    n, k = raw.shape
    if target is None:
        return raw.argmax(axis=1) if k > 1 else np.zeros(n, dtype=np.int64)
    tgt = np.broadcast_to(np.asarray(target, dtype=np.int64), (n,)).copy()
    if tgt.min() < 0 or tgt.max() >= k:
        raise AttributionError(f"target {target!r} is out of range for {k} output column(s)")
    return tgt


def _empty(inputs: Any, permutations: int, m: int) -> ShapleyValues:
    d = inputs.shape[1]
    values: Any = np.zeros((0, d))
    if isinstance(inputs, pd.DataFrame):
        values = pd.DataFrame(values, index=inputs.index, columns=inputs.columns)
    empty = np.zeros(0)
    return ShapleyValues(values, empty, empty, permutations, m, np.zeros(0, dtype=np.int64))
