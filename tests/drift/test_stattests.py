"""The cached building blocks agree with the numpy / Evidently functions they replace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evidently.legacy.calculations.stattests.registry import get_stattest
from evidently.legacy.core import ColumnType

from monitor.drift.stattests import ColumnReference, _histogram, clean_column, sturges_edges


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
