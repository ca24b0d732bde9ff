"""The cached building blocks agree with the numpy / Evidently functions they replace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evidently.legacy.calculations.stattests.registry import get_stattest
from evidently.legacy.core import ColumnType

from monitor.drift.stattests import (
    ColumnReference,
    _histogram,
    clean_column,
    fit_references,
    sturges_edges,
)


@pytest.mark.parametrize("dtype", ["float64", "int64"])
@pytest.mark.parametrize("size", [7, 1500, 40_000])
def test_sturges_edges_and_histogram_equal_numpy(dtype, size):
    rng = np.random.default_rng(size)
    data = (rng.normal(0, 30, size)).astype(dtype)
    edges = sturges_edges(float(data.min()), float(data.max()), size, dtype == "int64")
    np.testing.assert_array_equal(edges, np.histogram_bin_edges(data, bins="sturges"))
    np.testing.assert_array_equal(
        _histogram(np.sort(data.astype(float)), edges), np.histogram(data, edges)[0]
    )


@pytest.mark.parametrize("rows", [1000, 1001], ids=["small", "large"])
@pytest.mark.parametrize("levels", [1, 2, 3, 5, 6, 25])
@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_default_method_is_the_one_get_stattest_chooses(rows, levels, kind):
    rng = np.random.default_rng(levels)
    values = rng.integers(0, levels, rows)
    reference = pd.Series(values.astype(float) if kind == "numeric" else values.astype(str))
    current = reference.iloc[:300].copy()
    current.iloc[0] = 99.0 if kind == "numeric" else "99"  # one value never seen
    ref = ColumnReference("x", clean_column("x", reference, kind))
    column_type = ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical
    theirs = get_stattest(reference, current, column_type, None).name
    assert ref.default_method(clean_column("x", current, kind)) == theirs


def _wasserstein_by_search(ref: np.ndarray, cur: np.ndarray) -> float:
    """The previous implementation: scipy's `_cdf_distance` on sorted samples (summed
    with np.sum; scipy >= 1.15 sums with BLAS vecdot, equal to ~1e-16)."""
    every = np.concatenate((ref, cur))
    every.sort(kind="stable")
    deltas = np.diff(every)
    u_cdf = ref.searchsorted(every[:-1], "right") / ref.size
    v_cdf = cur.searchsorted(every[:-1], "right") / cur.size
    return np.sum(np.multiply(np.abs(u_cdf - v_cdf), deltas))


@pytest.mark.parametrize(
    ("ref_rows", "cur_rows", "decimals"),
    [(5000, 800, None), (1200, 1200, 1), (3000, 50, 0), (2, 1, None), (1, 4000, None)],
    ids=["continuous", "many-ties", "integers", "tiny", "one-reference-row"],
)
def test_wasserstein_is_bit_identical_to_the_search_formula(ref_rows, cur_rows, decimals):
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(ref_rows + cur_rows)
    reference = pd.Series(rng.normal(0, 3, ref_rows))
    current = pd.Series(rng.normal(0.4, 3, cur_rows))
    if decimals is not None:
        reference, current = reference.round(decimals), current.round(decimals)
        current.iloc[0] = -0.0  # signed zero ties with the reference's 0.0
    ref = ColumnReference("x", clean_column("x", reference, "numeric"))
    cur = clean_column("x", current, "numeric")
    norm = max(ref.std, 0.001)
    score = ref._wasserstein(cur)
    assert score == _wasserstein_by_search(ref.column.values, cur.values) / norm
    evidently = wasserstein_distance(reference, current) / norm  # what Evidently calls
    assert score == pytest.approx(evidently, rel=1e-13, abs=1e-15)


def test_a_continuous_reference_keeps_no_value_counts():
    values = pd.Series(np.random.default_rng(3).normal(0, 1, 50_000))
    values.iloc[:10] = 0.25  # ties count once
    ref = ColumnReference("x", clean_column("x", values, "numeric"))
    assert ref.n_unique == 50_000 - 9
    assert ref.column.counts is None
    ref.test(clean_column("x", values.iloc[:3000] + 0.1, "numeric"), None, None)
    assert ref.column.counts is None  # Wasserstein needs only the sorted values


@pytest.mark.parametrize("rows", [500, 30_000], ids=["serial", "thread-pool"])
def test_fit_references_equal_column_by_column(rows):
    rng = np.random.default_rng(rows)
    frame = pd.DataFrame(
        {
            "a": rng.normal(0, 1, rows),
            "b": rng.integers(0, 4, rows),
            "c": rng.choice(["x", "y", "z"], rows),
        }
    )
    kinds = {"a": "numeric", "b": "numeric", "c": "categorical"}
    fitted = fit_references(frame, kinds)
    assert list(fitted) == ["a", "b", "c"]
    for name, kind in kinds.items():
        alone = ColumnReference(name, clean_column(name, frame[name], kind))
        np.testing.assert_array_equal(fitted[name].column.values, alone.column.values)
        assert fitted[name].n_unique == alone.n_unique
        assert fitted[name].keys == alone.keys
