"""Calibrated drift decisions: each test's null distribution at the window's row count.

Evidently's statistic is kept; only the decision changes. For a window of n rows against
a baseline of m rows, pseudo-baselines of m rows and pseudo-windows of n rows are both
drawn from the baseline (so the baseline's own sampling error is part of the null), the
statistic is standardized as ``s² = n_eff · d²`` (n_eff = n·m/(n+m); d the distance, the
K-S gap, or the chi-square / Z statistic scaled the same way) and its upper tail is
modelled above the resamples' upper quartile: an exponential tail for the continuous
tests (exact for K-S, conservative for the others) and a scaled chi-square with the
categories' degrees of freedom for the count tests. Tiny tail probabilities are read
from that model instead of from 1/α resamples. Nulls are cached per (baseline column,
method, size bucket); buckets are log-spaced (ratio √2) and p-values are interpolated
in log n between the two neighbouring buckets. Given a `FitStore` (the cycle passes the
baseline's), a null is read from it before it is built and kept in it once built, so
a null is built once per baseline and setting, not once per process.

The same resamples, shifted (numeric: by δ baseline standard deviations; counts: ε of
the mass moved from the most frequent category to the second), give the smallest
shift detected with 90% power at a test's α: the window's minimum detectable shift.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from scipy.special import chdtrc, chdtri, kolmogi, kolmogorov, ndtr

from monitor.drift.fitted import FitStore, fingerprint, pack, unpack
from monitor.drift.resampled import (
    atom_statistic,
    atom_std,
    count_statistic,
    ecdf_statistic,
    effective_rows,
)
from monitor.drift.stattests import Column, ColumnReference
from monitor.errors import DriftError

log = logging.getLogger(__name__)

#: resamples of the null per size bucket (the tail beyond them is modelled)
DEFAULT_RESAMPLES = 300
#: resamples used for the power curves (the 10th percentile of a shifted statistic)
POWER_RESAMPLES = 100
POWER = 0.9
#: the tail model starts at this upper share of the null resamples
TAIL_SHARE = 0.25
#: at most this many distinct atoms stand for a numeric baseline in the resamples
MAX_ATOMS = 512
#: shifts tried for the minimum detectable shift (sd for numeric, mass for counts)
SD_SHIFTS = np.geomspace(0.02, 4.0, 14)
MASS_SHIFTS = np.geomspace(0.004, 0.5, 13)
#: methods whose null is resampled here; any other falls back to its fixed threshold
CALIBRATED_METHODS = frozenset({"ks", "wasserstein", "jensenshannon", "psi", "chisquare", "z"})
#: methods read from category (or few distinct values) counts
_COUNT_ONLY = frozenset({"chisquare", "z"})
_DAYS_PER_MONTH = 30
#: a numeric column with at most this many distinct values in the baseline is discrete:
#: its drift p-value is an exact permutation test on the pooled value counts
FEW_VALUES = 64
#: permutations of a discrete column's test: drawn in batches (the first of
#: PERMUTATION_BATCH, each next one 4x the last) until the p-value is resolved (at least
#: PERMUTATION_HITS permuted statistics at or above the window's), at most
#: PERMUTATIONS_MAX, so p-values down to ~1/PERMUTATIONS_MAX are resolved
PERMUTATION_BATCH = 100
PERMUTATIONS_MAX = 60_000
PERMUTATION_HITS = 10
#: the check name stored fits are filed under, and the version of their build: bump it
#: whenever `_build` (or a statistic in `monitor.drift.resampled`) changes its numbers
FIT_CHECK = "drift"
NULL_VERSION = 2
_FAMILIES = ("exponential", "chi2", "kolmogorov")


def family_alpha(false_alarms_per_month: float, window: timedelta) -> float:
    """The per-window family-wise false-alarm rate a monthly budget allows.

    One month is 30 days; with hourly windows a budget of 1 gives 1/720."""
    if false_alarms_per_month <= 0 or window <= timedelta(0):
        raise DriftError(
            f"false_alarms_per_month ({false_alarms_per_month}) and window ({window}) "
            "must be positive"
        )
    windows = timedelta(days=_DAYS_PER_MONTH) / window
    return float(min(1.0, false_alarms_per_month / max(windows, 1.0)))


def holm_levels(
    p_values: Mapping[str, float], alpha: float, factors: Mapping[str, float]
) -> dict[str, float]:
    """Holm's step-down level of each test, each divided by its feedback factor.

    Tests are ranked by ``p · factor``; the i-th (from 0) of k is compared with
    ``alpha / (k - i)``. Once one test is not rejected, the later ones keep the level
    it failed at, so none of them can be rejected either. Family-wise rate <= alpha.
    """
    order = sorted(p_values, key=lambda key: p_values[key] * factors.get(key, 1.0))
    levels, k, open_ = {}, len(order), True
    level = alpha / max(k, 1)
    for i, key in enumerate(order):
        factor = factors.get(key, 1.0)
        if open_:
            level = alpha / (k - i)
            open_ = p_values[key] * factor < level
        levels[key] = level / factor
    return levels


def bucket_sizes(n: int) -> tuple[int, int]:
    """The two log-spaced bucket sizes (ratio √2) around a window of n rows."""
    n = max(int(n), 2)
    k = math.floor(2 * math.log2(n) + 1e-9)
    low, high = round(2 ** (k / 2)), round(2 ** ((k + 1) / 2))
    if low > n:  # rounding of 2**(k/2)
        low = n
    return (n, n) if low == n else (low, max(high, n))


@dataclass(frozen=True)
class Calibrated:
    """A test's calibrated verdict inputs: the tail probability of its statistic and
    the score threshold and minimum detectable shift at a given α."""

    p_value: float
    statistic: float  # s², standardized


class _Null:
    """The standardized null at one bucket size, its tail model and power curve."""

    def __init__(self, null: np.ndarray, family: str, df: int, shifts: np.ndarray,
                 q10: np.ndarray):
        self.null = null
        finite = np.sort(null[np.isfinite(null)])
        self.size, self.inf_share = len(null), 1.0 - len(finite) / max(len(null), 1)
        self.sorted = finite
        self.u = float(np.quantile(null, 1 - TAIL_SHARE)) if len(null) else 0.0
        if not math.isfinite(self.u):
            self.u = float(finite[-1]) if len(finite) else 0.0
        self.family, self.df = family, max(df, 1)
        excess = finite[finite > self.u] - self.u
        self.mean_excess = float(excess.mean()) if len(excess) else 0.0
        if family == "chi2":
            positive = finite[finite > 0]
            median = float(np.median(finite)) if len(finite) else 0.0
            scale = median / float(chdtri(self.df, 0.5)) if median > 0 else (
                float(positive.mean()) / self.df if len(positive) else 0.0
            )
            self.scale = scale
            self._anchor = float(chdtrc(self.df, self.u / scale)) if scale > 0 else 0.0
        self.shifts, self.q10 = shifts, q10
        self._critical: dict[float, float] = {}

    def to_bytes(self) -> bytes:
        """What rebuilds this null exactly (`from_bytes`): the resampled statistics, the
        tail family and its degrees of freedom, the power curve."""
        return pack({
            "null": self.null, "family": np.array(_FAMILIES.index(self.family)),
            "df": np.array(self.df), "shifts": self.shifts, "q10": self.q10,
        })

    @classmethod
    def from_bytes(cls, payload: bytes) -> _Null:
        arrays = unpack(payload, ("null", "family", "df", "shifts", "q10"))
        family = int(arrays["family"])
        if not 0 <= family < len(_FAMILIES):
            raise DriftError(f"stored null has an unknown tail family ({family})")
        return cls(arrays["null"], _FAMILIES[family], int(arrays["df"]), arrays["shifts"],
                   arrays["q10"])

    def survival(self, y: float) -> float:
        """P(S² >= y) under the null."""
        if self.family == "kolmogorov":  # n_eff·D² of two continuous samples
            return float(kolmogorov(math.sqrt(max(y, 0.0)))) if math.isfinite(y) else 0.0
        if not math.isfinite(y):
            return self.inf_share
        if y <= self.u or self.size == 0:
            above = len(self.sorted) - np.searchsorted(self.sorted, y, "left")
            return float((above + self.inf_share * self.size + 1) / (self.size + 1))
        return max(TAIL_SHARE * self._tail(y), self.inf_share)

    def _tail(self, y: float) -> float:
        """P(S² >= y | S² > u) from the tail model."""
        if self.family == "chi2":
            if self.scale <= 0 or self._anchor <= 0:
                return 0.0
            return float(min(1.0, chdtrc(self.df, y / self.scale) / self._anchor))
        if self.mean_excess <= 0:
            return 0.0
        return float(math.exp(-(y - self.u) / self.mean_excess))

    def critical(self, alpha: float) -> float:
        """The s² at which the tail probability falls to alpha (cached per alpha)."""
        if alpha not in self._critical:
            self._critical[alpha] = self._critical_value(alpha)
        return self._critical[alpha]

    def _critical_value(self, alpha: float) -> float:
        if self.family == "kolmogorov":
            return float(kolmogi(min(max(alpha, 1e-300), 1.0))) ** 2
        if alpha >= TAIL_SHARE or self.size == 0:
            return float(np.quantile(self.sorted, 1 - min(alpha, 1.0))) if len(
                self.sorted) else 0.0
        ratio = alpha / TAIL_SHARE
        if self.family == "chi2":
            if self.scale <= 0:
                return self.u
            return float(self.scale * chdtri(self.df, ratio * self._anchor))
        return float(self.u - self.mean_excess * math.log(ratio))

    def min_detectable(self, alpha: float) -> float | None:
        """The smallest shift whose 10th-percentile statistic reaches the critical value
        (None when even the largest shift tried is not detected with 90% power)."""
        if not len(self.q10):
            return None
        target = self.critical(alpha)
        reached = np.nonzero(self.q10 >= target)[0]
        if not len(reached):
            return None
        j = int(reached[0])
        if j == 0:
            return float(self.shifts[0])
        lo, hi = self.q10[j - 1], self.q10[j]
        t = (target - lo) / (hi - lo) if hi > lo else 1.0
        log_shift = (1 - t) * math.log(self.shifts[j - 1]) + t * math.log(self.shifts[j])
        return float(math.exp(log_shift))


class ColumnCalibration:
    """The resampled nulls of one baseline column, built lazily per method and size.

    With a `FitStore`, a null is read from it before it is built and kept in it after
    (keyed by column, method and bucket size, and fingerprinted by `fingerprint`)."""

    def __init__(self, reference: ColumnReference, resamples: int = DEFAULT_RESAMPLES,
                 seed: int = 0, *, fits: FitStore | None = None):
        self.reference, self.resamples, self.seed = reference, int(resamples), seed
        self.fits = fits
        self._fingerprints: dict[str, str] = {}
        column = reference.column
        self.m = column.n
        self._nulls: dict[tuple[str, int], _Null] = {}
        counts = column.value_counts() if column.n else {}
        self.keys = _sorted_keys(counts)
        self.key_counts = np.array([counts[k] for k in self.keys], dtype=float)
        if column.kind == "numeric" and column.n:
            self.atoms, self.atom_counts = _atoms(column.values)
        else:
            self.atoms, self.atom_counts = np.empty(0), np.empty(0)

    def uses_counts(self, method: str) -> bool:
        """Whether `method` reads this column as counts of distinct values."""
        if self.reference.column.kind == "categorical" or method in _COUNT_ONLY:
            return True
        if method in ("ks", "wasserstein"):  # read from the values' ECDF, ties and all
            return False
        return self.reference.n_unique <= 20  # Evidently's per-value shares for JS/PSI

    @property
    def discrete(self) -> bool:
        """Categorical, or numeric with at most FEW_VALUES distinct values: its p-value is
        an exact permutation test (see `assess`)."""
        column = self.reference.column
        return column.kind == "categorical" or self.reference.n_unique <= FEW_VALUES

    def shift_unit(self, method: str) -> str:
        return "mass" if self.uses_counts(method) else "sd"

    def assess(self, method: str, current: Column, score: float) -> Calibrated | None:
        """The calibrated p-value of a window's statistic (None: method not calibrated)."""
        if method not in CALIBRATED_METHODS or not self.m or not current.n:
            return None
        if not math.isfinite(score) and method not in _COUNT_ONLY:
            return None
        y = self._observed(method, current, score)
        n = current.n
        if self.discrete:
            return Calibrated(self._permutation_p(method, current, y), y)
        if method == "ks":  # n_eff·D² of two continuous samples: Kolmogorov's distribution,
            # exact in the limit for any shape (and conservative where values tie)
            return Calibrated(float(kolmogorov(math.sqrt(max(y, 0.0)))), y)
        low, high = bucket_sizes(n)
        p_low = self.null(method, low).survival(y)
        if high == low:
            return Calibrated(p_low, y)
        p_high = self.null(method, high).survival(y)
        return Calibrated(_log_interp(n, low, high, p_low, p_high), y)

    def critical_score(self, method: str, n: int, alpha: float) -> float:
        """The Evidently score at which the test turns significant at alpha (distances:
        the distance; p-value tests: the p-value Evidently's formula gives there)."""
        low, high = bucket_sizes(n)
        y = interpolate_log_n(n, low, high, self.null(method, low).critical(alpha),
                        self.null(method, high).critical(alpha))
        neff = effective_rows(n, self.m)
        if method in ("wasserstein", "jensenshannon"):
            return math.sqrt(max(y, 0.0) / neff)
        if method == "psi":
            return y / neff
        if method == "ks":  # the asymptotic p-value of that gap
            return float(kolmogorov(math.sqrt(max(y, 0.0))))
        if method == "z":
            return float(2 * ndtr(-math.sqrt(max(y, 0.0))))
        df = max(len(self.keys) - 1, 1)
        return float(chdtrc(df, y * (n + self.m) / self.m))

    def min_detectable_shift(self, method: str, n: int, alpha: float) -> float | None:
        """Smallest shift detected with 90% power at alpha in a window of n rows."""
        low, high = bucket_sizes(n)
        a = self.null(method, low).min_detectable(alpha)
        b = self.null(method, high).min_detectable(alpha) if high != low else a
        if a is None or b is None:
            return None
        return _log_interp(n, low, high, a, b)

    # -- the nulls ------------------------------------------------------------------

    def null(self, method: str, n: int) -> _Null:
        """The null of `method` for windows of n rows: cached in memory, else read from
        the fit store, else built (and kept in the store)."""
        key = (method, n)
        if key not in self._nulls:
            self._nulls[key] = self._stored(method, n) or self._build_and_keep(method, n)
        return self._nulls[key]

    def fingerprint(self, method: str) -> str:
        """A digest of everything `method`'s nulls are built from: the baseline column's
        values and counts as the resamples see them, the resample count and seed, the
        build's constants and `NULL_VERSION`. Any change builds the nulls again."""
        if method not in self._fingerprints:
            counts = self.uses_counts(method)
            column = self.reference.column
            data = (
                (repr(self.keys), self.key_counts) if counts
                else (self.atoms, self.atom_counts, bool(column.integer), self.reference.std)
            )
            self._fingerprints[method] = fingerprint(
                NULL_VERSION, method, counts, self.m, self.resamples, self.seed, *data,
                POWER_RESAMPLES, POWER, MAX_ATOMS, SD_SHIFTS, MASS_SHIFTS,
                sorted(CALIBRATED_METHODS),
            )
        return self._fingerprints[method]

    def _fit_key(self, method: str, n: int) -> str:
        return f"{self.reference.name}|{method}|{n}"

    def _stored(self, method: str, n: int) -> _Null | None:
        if self.fits is None:
            return None
        payload = self.fits.load(FIT_CHECK, self._fit_key(method, n), self.fingerprint(method))
        if payload is None:
            return None
        try:
            return _Null.from_bytes(payload)
        except DriftError as err:
            log.warning("null of %s (%s, %d rows): %s", self.reference.name, method, n, err)
            return None

    def _build_and_keep(self, method: str, n: int) -> _Null:
        null = self._build(method, n)
        if self.fits is not None:
            self.fits.save(FIT_CHECK, self._fit_key(method, n), self.fingerprint(method),
                           null.to_bytes())
        return null

    def _rng(self, method: str, n: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, n, sorted(CALIBRATED_METHODS).index(method)])

    def _build(self, method: str, n: int) -> _Null:
        rng = self._rng(method, n)
        counts = self.uses_counts(method)
        probs = (self.key_counts if counts else self.atom_counts) / self.m
        ref = self._pseudo_ref(counts)
        win = rng.multinomial(n, probs, size=self.resamples).astype(float)
        power = min(POWER_RESAMPLES, self.resamples)
        if counts:
            null = count_statistic(method, ref, win, self.m, n)
            shifts, q10 = self._mass_power(method, ref[:power], n, rng)
            return _Null(null, "chi2", len(self.keys) - 1, shifts, q10)
        integer = self.reference.column.integer
        null = atom_statistic(method, self.atoms, ref, win, self.m, n, 0.0, integer)
        ref, win = ref[:power], win[:power]
        if method in ("ks", "wasserstein"):
            cdfs = (np.cumsum(ref, axis=1) / self.m, np.cumsum(win, axis=1) / n)
            std = atom_std(self.atoms, ref, self.m)
            shifted = [
                ecdf_statistic(method, self.atoms, *cdfs, std, effective_rows(n, self.m),
                                d * self.reference.std)
                for d in SD_SHIFTS
            ]
        else:
            shifted = [
                atom_statistic(method, self.atoms, ref, win, self.m, n,
                               d * self.reference.std, False)
                for d in SD_SHIFTS
            ]
        q10 = np.quantile(np.array(shifted), 1 - POWER, axis=1)
        # K-S of a continuous column: the Kolmogorov distribution is its exact null (for
        # any shape); resampling the baseline with replacement adds ties that shrink it
        family = "kolmogorov" if method == "ks" and not self.discrete else "exponential"
        return _Null(null, family, 1, SD_SHIFTS, q10)

    def _permutation_p(self, method: str, current: Column, observed: float) -> float:
        """The exact p-value of a discrete column's statistic: under no drift every split
        of the pooled baseline and window rows into m and n is as likely, so the window's
        counts of each value are multivariate hypergeometric given the pooled counts.
        Seeded; drawn in batches until PERMUTATION_HITS permuted statistics reach the
        window's or PERMUTATIONS_MAX are drawn."""
        ref_counts, cur_counts = self.reference.column.value_counts(), current.value_counts()
        keys = _sorted_keys({**{k: 0 for k in ref_counts}, **{k: 0 for k in cur_counts}})
        ref = np.array([ref_counts.get(k, 0) for k in keys], dtype=np.int64)
        pooled = ref + np.array([cur_counts.get(k, 0) for k in keys], dtype=np.int64)
        n, m = current.n, self.m
        numeric = self.reference.column.kind == "numeric" and not self.uses_counts(method)
        atoms = np.asarray(keys, dtype=float) if numeric else None
        # the window's statistic on the same footing as the draws' (same keys, same order)
        observed = float(self._permuted(method, atoms, ref[None, :].astype(float),
                                        (pooled - ref)[None, :].astype(float), m, n)[0])
        floor = observed - 1e-9 * abs(observed) if math.isfinite(observed) else observed
        # a column of many categories draws smaller batches (memory) and fewer in all (time)
        largest = int(max(100, 4_000_000 // len(keys)))
        most = int(max(largest, min(PERMUTATIONS_MAX, 200_000_000 // len(keys))))
        rng = np.random.default_rng([self.seed, n, sorted(CALIBRATED_METHODS).index(method), 7])
        hits, drawn, batch = 0, 0, min(PERMUTATION_BATCH, largest)
        while drawn < most and hits < PERMUTATION_HITS:
            win = rng.multivariate_hypergeometric(pooled, n, size=batch).astype(float)
            stats = self._permuted(method, atoms, pooled[None, :] - win, win, m, n)
            hits += int(np.sum(stats >= floor))
            drawn += batch
            batch = min(4 * batch, largest, most - drawn)
        return (hits + 1) / (drawn + 1)

    def _permuted(self, method: str, atoms: np.ndarray | None, ref: np.ndarray, win: np.ndarray,
                  m: int, n: int) -> np.ndarray:
        if atoms is None and method == "chisquare":
            # the homogeneity chi-square of the 2 x k table: finite wherever the pooled
            # count is (Evidently's goodness of fit is infinite whenever a rare value
            # lands in the window only, which left rare categories nearly untestable)
            pooled = ref + win
            e_ref, e_win = pooled * (m / (m + n)), pooled * (n / (m + n))
            with np.errstate(divide="ignore", invalid="ignore"):
                terms = np.where(pooled > 0, (ref - e_ref) ** 2 / e_ref + (win - e_win) ** 2 / e_win, 0.0)
            return terms.sum(axis=1)
        if atoms is None:
            return count_statistic(method, ref, win, m, n)
        return atom_statistic(method, atoms, ref, win, m, n, 0.0, self.reference.column.integer)

    def _pseudo_ref(self, counts: bool) -> np.ndarray:
        """The resampled baselines: the same draws for every bucket (same seed), drawn
        again rather than kept, so memory stays per bucket, not per column."""
        rng = np.random.default_rng([self.seed, 0, 99])
        probs = (self.key_counts if counts else self.atom_counts) / self.m
        return rng.multinomial(self.m, probs, size=self.resamples).astype(float)

    def _mass_power(self, method: str, ref: np.ndarray, n: int, rng: np.random.Generator):
        if len(self.keys) < 2:
            return MASS_SHIFTS[:0], np.empty(0)
        probs = self.key_counts / self.m
        order = np.argsort(-probs, kind="stable")
        top, second = order[0], order[1]
        q10 = []
        for eps in MASS_SHIFTS:
            moved = probs.copy()
            take = min(eps, moved[top])
            moved[top] -= take
            moved[second] += take
            win = rng.multinomial(n, moved / moved.sum(), size=len(ref)).astype(float)
            q10.append(np.quantile(count_statistic(method, ref, win, self.m, n), 1 - POWER))
        return MASS_SHIFTS, np.array(q10)

    def _observed(self, method: str, current: Column, score: float) -> float:
        n, m = current.n, self.m
        neff = effective_rows(n, m)
        if method in ("wasserstein", "jensenshannon"):
            return neff * score**2
        if method == "psi":
            return neff * score
        if method == "ks":
            return neff * ks_gap(self.reference.column.values, current.values) ** 2
        cur_counts = current.value_counts()
        keys = self.keys + _sorted_keys({k: 0 for k in cur_counts if k not in set(self.keys)})
        if method == "z":
            keys = _sorted_keys({k: 0 for k in keys})
        ref_counts = self.reference.column.value_counts()
        ref = np.array([[ref_counts.get(k, 0) for k in keys]], dtype=float)
        win = np.array([[cur_counts.get(k, 0) for k in keys]], dtype=float)
        return float(count_statistic(method, ref, win, m, n)[0])


# -- helpers ------------------------------------------------------------------------


def ks_gap(ref: np.ndarray, cur: np.ndarray) -> float:
    """max |F_ref - F_cur| of two sorted samples, from the window's values placed among
    the baseline's only (the window is the short side): between two window values F_cur
    is flat, so the gap peaks at a window value or just before one."""
    m, n = len(ref), len(cur)
    if not m or not n:
        return 0.0
    below = ref.searchsorted(cur, "left") / m  # F_ref just before each window value
    upto = ref.searchsorted(cur, "right") / m  # F_ref at it
    # F_cur just before and at each window value (ties: the first and last of the run)
    first = np.searchsorted(cur, cur, "left") / n
    last = np.searchsorted(cur, cur, "right") / n
    return float(max(np.max(np.abs(below - first)), np.max(np.abs(upto - last))))


def _atoms(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct sorted values and their counts, merged into at most MAX_ATOMS groups of
    consecutive values (each at its mean) for large baselines."""
    atoms, counts = np.unique(values, return_counts=True)
    if len(atoms) <= MAX_ATOMS:
        return atoms, counts.astype(float)
    group = np.minimum((np.cumsum(counts) - counts) * MAX_ATOMS // len(values), MAX_ATOMS - 1)
    sizes = np.bincount(group, counts).astype(float)
    sums = np.bincount(group, atoms * counts)
    keep = sizes > 0
    return sums[keep] / sizes[keep], sizes[keep]


def _sorted_keys(counts: Mapping) -> list:
    try:
        return sorted(counts)
    except TypeError:  # mixed types: Evidently's sort would fail too; keep a stable order
        return sorted(counts, key=str)


def _log_interp(n: int, low: int, high: int, a: float, b: float) -> float:
    if high == low:
        return a
    t = (math.log(n) - math.log(low)) / (math.log(high) - math.log(low))
    la, lb = math.log(max(a, 1e-300)), math.log(max(b, 1e-300))
    return float(math.exp((1 - t) * la + t * lb))


def interpolate_log_n(n: int, low: int, high: int, a: float, b: float) -> float:
    """The value at n of the line through (log low, a) and (log high, b)."""
    if high == low:
        return a
    t = (math.log(n) - math.log(low)) / (math.log(high) - math.log(low))
    return float((1 - t) * a + t * b)
