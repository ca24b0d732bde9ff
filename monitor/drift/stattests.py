"""Evidently's stat tests on a reference learned once.

`ColumnReference` keeps what does not change between windows (the cleaned, sorted
reference values, its unique values and counts, its standard deviation) so that the
tests Evidently's DataDriftPreset chooses by default (K-S, chi-square, Z, Wasserstein,
Jensen-Shannon) and PSI are computed from it with the same formulas as
`evidently.legacy.calculations.stattests`, to the last few bits. Any other registered
method is delegated to Evidently's own `StatTest` object.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitor.drift.records import FeatureDrift, Kind
from monitor.errors import DriftError

#: methods whose score is a p-value: drift when the score is LOW
P_VALUE_METHODS = frozenset(
    {
        "anderson",
        "chisquare",
        "cramer_von_mises",
        "empirical_mmd",
        "es",
        "fisher_exact",
        "g_test",
        "ks",
        "mannw",
        "t_test",
        "TVD",
        "z",
    }
)
#: the default threshold of each method we compute ourselves (Evidently's values)
_FAST_DEFAULTS = {
    "ks": 0.05,
    "chisquare": 0.05,
    "z": 0.05,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
    "psi": 0.1,
}
#: a reference of more rows than this gets distance tests by default (Evidently's rule)
SMALL_REFERENCE = 1000
#: fit columns in threads from this many reference rows: sorting and hashing a column
#: release the GIL for long enough to pay for the threads (measured at 100,000 rows)
POOL_ROWS = 20_000


@dataclass
class Column:
    """A cleaned column: missing and infinite values dropped (as Evidently does)."""

    kind: Kind
    values: np.ndarray  # numeric: sorted float64; categorical: object
    integer: bool
    counts: dict[Any, int] | None

    @property
    def n(self) -> int:
        return int(len(self.values))

    def value_counts(self) -> dict[Any, int]:
        """Count of each distinct value (computed once, on demand)."""
        if self.counts is None:
            if self.kind == "numeric":
                keys, counts = np.unique(self.values, return_counts=True)
                self.counts = dict(zip(keys.tolist(), counts.tolist(), strict=True))
            else:
                vc = pd.Series(self.values).value_counts(sort=False)
                self.counts = dict(zip(vc.index.tolist(), vc.tolist(), strict=True))
        return self.counts  # type: ignore[return-value]


def clean_column(name: str, series: pd.Series, kind: Kind) -> Column:
    """Drop missing and infinite values; numeric values as sorted float64.

    Raises DriftError when a numeric column holds values that are not numbers.
    """
    if kind == "categorical":
        values = series.dropna().to_numpy(dtype=object)
        return Column(kind, values, False, None)
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        try:
            series = pd.to_numeric(series, errors="raise")
        except (TypeError, ValueError) as err:
            raise DriftError(
                f"column {name!r} is configured as numeric but holds non-numeric values "
                f"({err}); list it under features.categorical or fix the data"
            ) from err
    integer = pd.api.types.is_integer_dtype(series)
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    values = values[np.isfinite(values)]  # a copy: sorting it leaves the frame alone
    values.sort()
    return Column(kind, values, integer, None)


def fit_references(
    frame: pd.DataFrame, kinds: Mapping[str, Kind]
) -> dict[str, ColumnReference]:
    """A `ColumnReference` per column of `kinds`, in the order given.

    Large references fit their columns in a small thread pool (numpy's sort and
    pandas' hashing run without the GIL); the references are the same either way.
    """

    def fit(name: str) -> ColumnReference:
        return ColumnReference(name, clean_column(name, frame[name], kinds[name]))

    workers = min(len(kinds), os.cpu_count() or 1, 4)
    if len(frame) < POOL_ROWS or workers < 2:
        return {name: fit(name) for name in kinds}
    with ThreadPoolExecutor(workers, thread_name_prefix="drift-fit") as pool:
        return dict(zip(kinds, pool.map(fit, kinds), strict=True))


class ColumnReference:
    """One column of the baseline, ready to be compared with windows."""

    def __init__(self, name: str, column: Column):
        self.name, self.column = name, column
        self._keys: set[Any] | None = None
        if column.kind == "numeric":
            # a continuous column has as many distinct values as rows: counting them
            # into a dict cost ~10x the column's own memory; its sorted values suffice
            self.n_unique = _distinct_sorted(column.values)
        else:
            self.n_unique = len(column.value_counts())
        if column.kind == "numeric" and column.n:
            # pandas' std, the one Evidently's np.std(Series) dispatches to
            self.std = float(pd.Series(column.values).std(ddof=0))
            self.min, self.max = float(column.values[0]), float(column.values[-1])
        else:
            self.std, self.min, self.max = math.nan, math.nan, math.nan
        self._series: pd.Series | None = None

    @property
    def keys(self) -> set[Any]:
        """The reference's distinct values (counted on first use only)."""
        if self._keys is None:
            self._keys = set(self.column.value_counts())
        return self._keys

    def default_method(self, current: Column) -> str:
        """The test `evidently...get_stattest(ref, cur, type, None)` would choose."""
        # only "more than 5" matters: the window's values are counted for few keys only
        n_values = (
            self.n_unique + 1
            if self.n_unique > 5
            else len(self.keys | set(current.value_counts()))
        )
        if self.column.n <= SMALL_REFERENCE:
            if self.column.kind == "numeric" and n_values > 5:
                return "ks"
            return "chisquare" if n_values > 2 else "z"
        if self.column.kind == "numeric" and n_values > 5:
            return "wasserstein"
        return "jensenshannon"

    def test(
        self, current: Column, method: str | None, threshold: float | None, factor: float = 1.0
    ) -> FeatureDrift:
        """Score `current` against this reference with `method` (None: Evidently's choice).

        The effective threshold is the configured (or the method's default) one made
        `factor` times less sensitive: multiplied for distances, divided for p-values.
        """
        kind = self.column.kind
        if not self.column.n or not current.n:
            where = "baseline" if not self.column.n else "window"
            return FeatureDrift(
                method or "none",
                math.nan,
                math.nan,
                False,
                kind,
                (method or "") in P_VALUE_METHODS,
                note=f"no non-missing values in the {where}",
            )
        name = method or self.default_method(current)
        p_value = name in P_VALUE_METHODS
        base = threshold if threshold is not None else default_threshold(name, kind)
        effective = base / factor if p_value else base * factor
        if name in _FAST_DEFAULTS:
            score = float(getattr(self, f"_{name}")(current))
            drifted = _verdict(name, score, effective)
        else:
            score, drifted = self._evidently(name, current, effective)
        return FeatureDrift(name, score, effective, bool(drifted), kind, p_value)

    # -- the tests, mirroring evidently.legacy.calculations.stattests -----------------

    def _ks(self, current: Column) -> float:
        from scipy.stats import ks_2samp

        return ks_2samp(self.column.values, current.values)[1]

    def _wasserstein(self, current: Column) -> float:
        """scipy's `_cdf_distance(p=1)` as Evidently calls it, from cumulative counts.

        Both samples are sorted, so one search places the window's values among the
        reference's: the merged order, and at each merged position how many values of
        each sample lie at or before it, follow without searching every position twice.
        Where neighbours tie the gap is zero, so every term, and the sum, are the same
        floats as the search-based formula's (a test holds it to equality).
        """
        ref, cur = self.column.values, current.values
        n, m = ref.size, cur.size
        # ties: the window's values after the reference's, where a stable sort puts them
        at = ref.searchsorted(cur, "right")
        at += np.arange(m)
        is_cur = np.zeros(n + m, dtype=bool)
        is_cur[at] = True
        every = np.empty(n + m, dtype=np.float64)
        every[at] = cur
        every[~is_cur] = ref
        deltas = np.diff(every)
        cur_counts = np.cumsum(is_cur[:-1], dtype=np.int64)
        ref_counts = np.arange(1, n + m)
        ref_counts -= cur_counts
        terms = ref_counts / n
        terms -= cur_counts / m
        np.abs(terms, out=terms)
        terms *= deltas
        # pairwise summation, as before: deterministic whatever the BLAS threads (scipy
        # >= 1.15 sums with vecdot, BLAS: equal to ~1e-16, and slow on busy cores)
        distance = np.sum(terms)
        return distance / max(self.std, 0.001)

    def _jensenshannon(self, current: Column) -> float:
        from scipy.spatial import distance

        ref, cur = self._binned(current, fill_zeroes=False)
        return distance.jensenshannon(ref, cur, None)

    def _psi(self, current: Column) -> float:
        ref, cur = self._binned(current, fill_zeroes=True)
        return np.sum((ref - cur) * np.log(ref / cur))

    def _chisquare(self, current: Column) -> float:
        from scipy.stats import chisquare

        ref_counts, cur_counts = self.column.value_counts(), current.value_counts()
        keys = list(self.keys | set(cur_counts))
        k_norm = current.n / self.column.n
        f_exp = [ref_counts.get(k, 0) * k_norm for k in keys]
        f_obs = [cur_counts.get(k, 0) for k in keys]
        return chisquare(f_obs, f_exp)[1]

    def _z(self, current: Column) -> float:
        from scipy.stats import norm

        ref_counts, cur_counts = self.column.value_counts(), current.value_counts()
        if len(ref_counts) == 1 and len(cur_counts) == 1 and set(ref_counts) == set(cur_counts):
            return 1.0
        first = sorted(self.keys | set(cur_counts))[0]
        n1, n2 = self.column.n, current.n
        p1 = float(n1 - ref_counts.get(first, 0)) / n1
        p2 = float(n2 - cur_counts.get(first, 0)) / n2
        pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
        return 2 * (1 - norm.cdf(np.abs(z)))

    def _binned(self, current: Column, fill_zeroes: bool) -> tuple[np.ndarray, np.ndarray]:
        """`get_binned_data`: Sturges bins over both samples, or per-value shares."""
        ref = self.column
        if ref.kind == "numeric" and self.n_unique > 20:
            edges = sturges_edges(
                min(self.min, current.values[0]),
                max(self.max, current.values[-1]),
                ref.n + current.n,
                ref.integer and current.integer,
            )
            ref_share = _histogram(ref.values, edges) / ref.n
            cur_share = _histogram(current.values, edges) / current.n
        else:
            ref_counts, cur_counts = ref.value_counts(), current.value_counts()
            keys = list(self.keys | set(cur_counts))
            ref_share = np.array([ref_counts.get(k, 0) / ref.n for k in keys])
            cur_share = np.array([cur_counts.get(k, 0) / current.n for k in keys])
        if fill_zeroes:
            _fill_zeroes(ref_share)
            _fill_zeroes(cur_share)
        return ref_share, cur_share

    def _evidently(self, name: str, current: Column, threshold: float) -> tuple[float, bool]:
        """Any other method: Evidently's own StatTest object on the cleaned columns."""
        from evidently.legacy.calculations.stattests.registry import get_registered_stattest
        from evidently.legacy.core import ColumnType

        column_type = (
            ColumnType.Numerical if self.column.kind == "numeric" else ColumnType.Categorical
        )
        try:
            stat_test = get_registered_stattest(name, column_type)
        except ValueError as err:
            raise DriftError(
                f"column {self.name!r}: drift method {name!r} cannot be used: {err}"
            ) from err
        if self._series is None:
            self._series = pd.Series(self.column.values)
        result = stat_test(self._series, pd.Series(current.values), column_type, threshold)
        return float(result.drift_score), bool(result.drifted)


def default_threshold(method: str, kind: Kind) -> float:
    """The default threshold Evidently's `StatTest` object declares for `method`."""
    if method in _FAST_DEFAULTS:
        return _FAST_DEFAULTS[method]
    return check_method(method, kind)


def check_method(method: str, kind: Kind) -> float:
    """Raise DriftError unless Evidently allows `method` on a `kind` column (as it does
    when a method is named in DataDriftPreset); returns the method's default threshold."""
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    column_type = ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical
    try:
        return float(get_registered_stattest(method, column_type).default_threshold)
    except ValueError as err:
        raise DriftError(
            f"drift method {method!r} cannot be used on a {kind} column: {err}"
        ) from err


def _verdict(method: str, score: float, threshold: float) -> bool:
    if method == "ks":
        return score <= threshold
    if method in P_VALUE_METHODS:
        return score < threshold
    return score >= threshold


def sturges_edges(low: float, high: float, size: int, integer: bool) -> np.ndarray:
    """`np.histogram_bin_edges(data, "sturges")` from the data's min, max and size."""
    if low == high:
        low, high = low - 0.5, high + 0.5
        width = 0.0
    else:
        width = (high - low) / (np.log2(size) + 1.0)
    if width:
        if integer and width < 1:
            width = 1
        bins = int(np.ceil((high - low) / width))
    else:
        bins = 1
    return np.linspace(low, high, bins + 1, endpoint=True)


def _histogram(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """`np.histogram(values, edges)[0]` for already sorted values (last bin closed)."""
    cum = np.concatenate(
        (
            sorted_values.searchsorted(edges[:-1], "left"),
            sorted_values.searchsorted(edges[-1:], "right"),
        )
    )
    return np.diff(cum)


def _distinct_sorted(values: np.ndarray) -> int:
    """How many distinct values a sorted array holds."""
    if not values.size:
        return 0
    return int(np.count_nonzero(values[1:] != values[:-1])) + 1


def _fill_zeroes(shares: np.ndarray) -> None:
    smallest = min(shares[shares != 0])
    np.place(shares, shares == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)
