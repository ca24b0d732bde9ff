"""A readable stand-in for the model: a shallow decision tree per window, and its fidelity.

`surrogate_report` distils the window's explained rows (inputs -> the model's explained
output) into a regression tree of depth <= 4 (scikit-learn), measures its fidelity as
R^2 on held-out rows of the window, and writes its rules as text. The fidelity is
compared with a range calibrated on the baseline: bootstrap windows of the same size
drawn from the baseline, split into train and held-out rows the same way (a row drawn
twice stays on one side), give the distribution of fidelity and of the top split's
feature a clean window of that size shows. A window whose fidelity falls below the
`alpha` quantile (`lower_bound`: a normal tail where the draws cannot reach it; the model
became harder to summarise) or whose top split uses a
feature the baseline's windows almost never split on first is flagged.

The baseline's part depends on the baseline, the settings and the window's size only,
so it is fitted once (`SurrogateBaseline`) and, given a `FitStore`, kept: the bootstrap
range is built per size bucket (the drift nulls' log-spaced buckets, ratio √2) and read
at the window's size by interpolating the two neighbouring buckets in log n; its draws
come from their own generator (seeded by the seed and the bucket size), not from the
window's.

Pure: arrays and DataFrames in, a frozen `SurrogateReport` out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitor.drift.calibration import bucket_sizes, interpolate_log_n
from monitor.drift.fitted import FitStore, fingerprint, pack, unpack
from monitor.drift.records import plain
from monitor.errors import DriftError

log = logging.getLogger(__name__)
#: baselines (fingerprints) whose unusable surrogate this process has logged already
_SAID_UNUSABLE: set[str] = set()

#: a numeric column is encoded as is; a categorical one as one indicator per baseline
#: category, named like this (the rules read "color = red" / "color != red")
DUMMY_SEP = " = "
#: the check name the baseline's fits are filed under, and the version of their build:
#: bump it whenever the bootstrap (or `fit_tree`) changes its numbers
FIT_CHECK = "surrogate"
BOOTSTRAP_VERSION = 1
#: the bootstrap range needs this many fidelities for its `alpha` quantile
MIN_FIDELITIES = 20
#: below this many bootstrap fidelities beyond the `alpha` quantile, it is a normal tail
TAIL_DRAWS = 5


@dataclass(frozen=True)
class SurrogateTree:
    """One fitted tree: its held-out fidelity, rules and the feature of its first split."""

    fidelity: float | None
    depth: int
    rules: tuple[str, ...]
    top_feature: str | None
    train_rows: int
    test_rows: int
    #: impurity-based importance of each input feature in the tree (sums to 1)
    importance: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "fidelity": plain(self.fidelity),
            "depth": self.depth,
            "rules": list(self.rules),
            "top_feature": self.top_feature,
            "train_rows": self.train_rows,
            "test_rows": self.test_rows,
            "importance": {k: plain(v) for k, v in self.importance.items()},
        }


@dataclass(frozen=True)
class SurrogateReport:
    """A window's surrogate against the range the baseline's windows of its size show."""

    tree: SurrogateTree
    #: fidelity below this (the baseline's `alpha` quantile) is unusual for the window's size
    lower_bound: float | None
    baseline_median: float | None
    #: the first split of a tree fitted on the whole baseline
    baseline_top_feature: str | None
    #: share of the baseline's bootstrap windows whose first split used `tree.top_feature`
    top_feature_share: float | None
    alpha: float
    resamples: int
    #: when the first split moved: one-sided Wilcoxon p-value that, on the window's held-out
    #: rows, a one-split tree on the baseline's first feature errs more than one on the new one
    top_split_p_value: float | None = None
    #: the baseline's median fidelity below which a tree of this depth does not summarise
    #: the model at all: the check then says so and raises nothing
    min_fidelity: float = 0.0

    @property
    def usable(self) -> bool:
        """Whether a tree of this depth summarises the model on its own baseline (median
        fidelity at the window's size at least `min_fidelity`). A surrogate that never
        fitted cannot lose fidelity: its changes are noise, not news."""
        return self.baseline_median is None or self.baseline_median >= self.min_fidelity

    @property
    def note(self) -> str | None:
        if self.usable:
            return None
        return (f"a depth-{self.tree.depth} tree explains {self.baseline_median:.0%} of the "
                f"model's output on its own baseline (median R², below surrogate.min_fidelity "
                f"{self.min_fidelity:.0%}): it cannot summarise this model, so its changes "
                "raise no alert")

    @property
    def fidelity_low(self) -> bool:
        f, bound = self.tree.fidelity, self.lower_bound
        return self.usable and f is not None and bound is not None and f < bound

    @property
    def top_split_changed(self) -> bool:
        p = self.top_split_p_value
        return (
            self.usable
            and self.tree.top_feature is not None
            and self.tree.top_feature != self.baseline_top_feature
            and p is not None
            and p < self.alpha
        )

    @property
    def flagged(self) -> bool:
        return self.fidelity_low or self.top_split_changed

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.tree.to_dict(),
            "lower_bound": plain(self.lower_bound),
            "baseline_median": plain(self.baseline_median),
            "baseline_top_feature": self.baseline_top_feature,
            "top_feature_share": plain(self.top_feature_share),
            "top_split_p_value": plain(self.top_split_p_value),
            "alpha": self.alpha,
            "resamples": self.resamples,
            "fidelity_low": self.fidelity_low,
            "top_split_changed": self.top_split_changed,
            "usable": self.usable,
            "min_fidelity": self.min_fidelity,
            "note": self.note,
        }


def categories_of(reference: pd.DataFrame, categorical: Sequence[str]) -> dict[str, list[str]]:
    """The categories each categorical feature takes in the baseline (indicator columns)."""
    return {
        name: sorted(reference[name].dropna().astype(str).unique().tolist())[:50] for name in categorical
    }


def encode(
    frame: pd.DataFrame, numeric: Sequence[str], categories: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """The tree's inputs: numeric features as floats (missing -> the column's median, or
    0), categoricals as one indicator per baseline category (an unseen one: all zeros)."""
    columns: dict[str, np.ndarray] = {}
    for name in numeric:
        col = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        fill = col.median() if col.notna().any() else 0.0
        columns[name] = col.fillna(fill).to_numpy()
    for name, values in categories.items():
        col = frame[name].astype("string")
        for value in values:
            columns[f"{name}{DUMMY_SEP}{value}"] = (col == value).fillna(False).to_numpy(dtype=float)
    return pd.DataFrame(columns, index=frame.index)


def _feature_of(column: str, categories: Mapping[str, Sequence[str]]) -> str:
    for name in categories:
        if column.startswith(f"{name}{DUMMY_SEP}"):
            return name
    return column


def fit_tree(
    x: pd.DataFrame | np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    categories: Mapping[str, Sequence[str]],
    *,
    max_depth: int,
    with_rules: bool = True,
    columns: Sequence[str] | None = None,
) -> SurrogateTree:
    """Fit on rows `train`, score R^2 on rows `test`; rules as scikit-learn's text.

    `x` is the encoded frame, or its float32 matrix with `columns` (the bootstrap loop
    passes arrays: scikit-learn's checks on DataFrames cost more than the fit)."""
    from sklearn.tree import DecisionTreeRegressor, export_text

    if isinstance(x, pd.DataFrame):
        columns = [str(c) for c in x.columns]
        x = np.ascontiguousarray(x.to_numpy(dtype=np.float32))
    names = list(columns or [])
    tree = DecisionTreeRegressor(max_depth=max_depth, min_samples_leaf=5, random_state=0)
    tree.fit(x[train], y[train])
    fidelity = None
    if len(test) >= 5 and float(np.var(y[test])) > 0:
        residual = y[test] - tree.predict(x[test])
        fidelity = float(1.0 - np.sum(residual**2) / np.sum((y[test] - y[test].mean()) ** 2))
    structure = tree.tree_
    top = None
    if structure.node_count > 1:
        top = _feature_of(names[structure.feature[0]], categories)
    importance: dict[str, float] = {}
    for column, value in zip(names, tree.feature_importances_, strict=True):
        feature = _feature_of(column, categories)
        importance[feature] = importance.get(feature, 0.0) + float(value)
    rules: tuple[str, ...] = ()
    if with_rules:
        text = export_text(tree, feature_names=names, decimals=3)
        rules = tuple(line.rstrip() for line in text.splitlines() if line.strip())
    return SurrogateTree(
        fidelity, int(tree.get_depth()), rules, top, int(len(train)), int(len(test)), importance
    )


def _split(n: int, holdout: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    cut = max(1, int(round(n * (1 - holdout))))
    return np.sort(order[:cut]), np.sort(order[cut:])


def _bootstrap_split(
    n_rows: int, size: int, holdout: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`size` rows drawn with replacement from `n_rows`; a row drawn twice lands on one
    side only, so held-out rows never repeat training rows."""
    drawn = rng.integers(0, n_rows, size=size)
    unique = np.unique(drawn)
    held = rng.random(len(unique)) < holdout
    in_test = np.isin(drawn, unique[held])
    return drawn[~in_test], drawn[in_test]


@dataclass(frozen=True)
class BootstrapRange:
    """Fidelities and first splits of bootstrap windows of `size` rows of the baseline."""

    size: int
    fidelities: np.ndarray
    #: how many bootstrap trees split first on each feature ("" for no split)
    tops: Mapping[str, int]

    @property
    def draws(self) -> int:
        return sum(self.tops.values())

    def top_share(self, feature: str | None) -> float | None:
        return self.tops.get(feature or "", 0) / self.draws if self.draws else None

    def to_bytes(self) -> bytes:
        names = sorted(self.tops)
        return pack({"size": np.array(self.size), "fidelities": self.fidelities,
                     "top_names": np.array(names, dtype=str),
                     "top_counts": np.array([self.tops[n] for n in names], dtype=np.int64)})

    @classmethod
    def from_bytes(cls, payload: bytes) -> BootstrapRange:
        arrays = unpack(payload, ("size", "fidelities", "top_names", "top_counts"))
        tops = dict(zip(arrays["top_names"].tolist(), arrays["top_counts"].tolist(), strict=True))
        return cls(int(arrays["size"]), arrays["fidelities"], tops)


class SurrogateBaseline:
    """What the surrogate learns from the baseline alone: its encoding, the first split
    of a tree fitted on all of it, and the bootstrap range of fidelity per size bucket.

    Each is built on first use; with a `FitStore` it is read from the store first and
    kept there once built (fingerprinted by the encoded baseline, its output and every
    setting the trees depend on)."""

    def __init__(
        self,
        reference: pd.DataFrame,
        reference_output: np.ndarray,
        *,
        numeric: Sequence[str],
        categorical: Sequence[str],
        max_depth: int = 3,
        holdout: float = 0.3,
        resamples: int = 200,
        seed: int = 0,
        fits: FitStore | None = None,
    ):
        self.numeric, self.categories = list(numeric), categories_of(reference, categorical)
        reference_output = np.asarray(reference_output, dtype=float)
        keep = np.isfinite(reference_output)  # a NaN output cannot be distilled
        reference = reference[keep]
        encoded = encode(reference, self.numeric, self.categories)
        self.columns = [str(c) for c in encoded.columns]
        self.x = np.ascontiguousarray(encoded.to_numpy(dtype=np.float32))
        self.y = reference_output[keep]
        self.max_depth, self.holdout, self.resamples, self.seed = max_depth, holdout, resamples, seed
        self.fits = fits
        self.fingerprint = fingerprint(
            BOOTSTRAP_VERSION, self.columns, self.x, self.y, max_depth, holdout, resamples, seed
        )
        self._ranges: dict[int, BootstrapRange] = {}
        self._top: tuple[str | None] | None = None

    @property
    def top_feature(self) -> str | None:
        """The first split of a tree fitted on the whole baseline."""
        if self._top is None:
            payload = self._load("whole")
            if payload is not None:
                self._top = (payload.decode() or None,)
            else:
                everything = np.arange(len(self.x))
                whole = fit_tree(self.x, self.y, everything, everything[:0], self.categories,
                                 max_depth=self.max_depth, with_rules=False, columns=self.columns)
                self._top = (whole.top_feature,)
                self._save("whole", (whole.top_feature or "").encode())
        return self._top[0]

    def range_at(self, size: int) -> BootstrapRange:
        """The bootstrap range of windows of `size` rows (a bucket size)."""
        if size not in self._ranges:
            found = None
            payload = self._load(str(size))
            if payload is not None:
                try:
                    found = BootstrapRange.from_bytes(payload)
                except DriftError as err:
                    log.warning("surrogate bootstrap at %d rows: %s", size, err)
            if found is None:
                found = self._bootstrap(size)
                self._save(str(size), found.to_bytes())
            self._ranges[size] = found
        return self._ranges[size]

    def _bootstrap(self, size: int) -> BootstrapRange:
        """`resamples` trees on bootstrap windows of `size` rows, each scored on its held-
        out rows (a row drawn twice stays on one side)."""
        rng = np.random.default_rng([self.seed, size, 7])
        fidelities: list[float] = []
        tops: dict[str, int] = {}
        for _ in range(self.resamples if len(self.x) >= 10 else 0):
            b_train, b_test = _bootstrap_split(len(self.x), size, self.holdout, rng)
            if len(b_train) < 5:
                continue
            fitted = fit_tree(self.x, self.y, b_train, b_test, self.categories,
                              max_depth=self.max_depth, with_rules=False, columns=self.columns)
            tops[fitted.top_feature or ""] = tops.get(fitted.top_feature or "", 0) + 1
            if fitted.fidelity is not None:
                fidelities.append(fitted.fidelity)
        return BootstrapRange(size, np.array(fidelities, dtype=float), tops)

    def _load(self, key: str) -> bytes | None:
        return None if self.fits is None else self.fits.load(FIT_CHECK, key, self.fingerprint)

    def _save(self, key: str, payload: bytes) -> None:
        if self.fits is not None:
            self.fits.save(FIT_CHECK, key, self.fingerprint, payload)


def surrogate_report(
    inputs: pd.DataFrame,
    output: np.ndarray,
    reference: pd.DataFrame,
    reference_output: np.ndarray,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    max_depth: int = 3,
    holdout: float = 0.3,
    resamples: int = 200,
    alpha: float = 0.01,
    seed: int = 0,
    fits: FitStore | None = None,
    min_fidelity: float = 0.0,
) -> SurrogateReport:
    """The window's surrogate tree and its place in the baseline's calibrated range.

    `inputs`/`output`: the window's explained rows and the model's explained output;
    `reference`/`reference_output`: the baseline's rows and the same output on them;
    `fits`: where the baseline's bootstrap ranges are read and kept (see `SurrogateBaseline`).
    """
    baseline = SurrogateBaseline(
        reference, reference_output, numeric=numeric, categorical=categorical,
        max_depth=max_depth, holdout=holdout, resamples=resamples, seed=seed, fits=fits,
    )
    return window_surrogate(inputs, output, baseline, alpha=alpha, min_fidelity=min_fidelity)


def window_surrogate(
    inputs: pd.DataFrame, output: np.ndarray, baseline: SurrogateBaseline, *, alpha: float = 0.01,
    min_fidelity: float = 0.0,
) -> SurrogateReport:
    """The window's tree against `baseline`'s bootstrap range at the window's size: the
    two neighbouring size buckets' `alpha` quantiles, medians and first-split shares,
    interpolated in log n."""
    rng = np.random.default_rng(baseline.seed)
    # a row whose output is not a number (a NaN the model produced) cannot be distilled
    y = np.asarray(output, dtype=float)
    keep = np.isfinite(y)
    inputs, y = inputs[keep], y[keep]
    x = encode(inputs, baseline.numeric, baseline.categories)
    train, test = _split(len(x), baseline.holdout, rng)
    tree = fit_tree(x, y, train, test, baseline.categories, max_depth=baseline.max_depth)

    n = len(x)
    low, high = bucket_sizes(n)
    ranges = [baseline.range_at(size) for size in (low, high)]
    lower = median = share = None
    if all(len(r.fidelities) >= MIN_FIDELITIES for r in ranges):
        lower = interpolate_log_n(n, low, high, *(lower_bound(r.fidelities, alpha) for r in ranges))
    if all(len(r.fidelities) for r in ranges):
        median = interpolate_log_n(n, low, high, *(float(np.median(r.fidelities)) for r in ranges))
    shares = [r.top_share(tree.top_feature) for r in ranges]
    if None not in shares:
        share = interpolate_log_n(n, low, high, *shares)
    top = baseline.top_feature
    p_split = None
    if tree.top_feature is not None and top not in (None, tree.top_feature):
        p_split = split_moved_p_value(x, y, train, test, tree.top_feature, top, baseline.categories)
    drawn = min(len(r.fidelities) for r in ranges)
    report = SurrogateReport(tree, lower, median, top, share, alpha, drawn, p_split, min_fidelity)
    if not report.usable and baseline.fingerprint not in _SAID_UNUSABLE:
        _SAID_UNUSABLE.add(baseline.fingerprint)  # once per baseline and process
        log.warning("surrogate: %s", report.note)
    return report


def lower_bound(fidelities: Sequence[float], alpha: float) -> float:
    """The fidelity a clean window falls below with probability `alpha`.

    The empirical `alpha` quantile of the bootstrap fidelities while the draws reach it
    (`alpha` × draws >= TAIL_DRAWS); beyond, a normal tail from their mean and standard
    deviation, or the smallest draw when lower (200 draws cannot place the 1e-5 quantile
    a budget's share asks for: the smallest of them is only the 0.5% point)."""
    f = np.asarray(fidelities, dtype=float)
    if alpha * len(f) >= TAIL_DRAWS:
        return float(np.quantile(f, alpha))
    from scipy.stats import norm

    normal = float(np.mean(f) - norm.isf(alpha) * np.std(f, ddof=1))
    return min(normal, float(np.min(f)))


def split_moved_p_value(
    x: pd.DataFrame,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    new: str,
    old: str,
    categories: Mapping[str, Sequence[str]],
) -> float | None:
    """Whether the window really prefers splitting on `new` over `old`: one-split trees on
    each, fitted on the training rows; a one-sided Wilcoxon signed-rank test on the
    held-out rows that the squared errors of `old`'s tree exceed `new`'s.

    Calibrated by the window's own noise: a bootstrap of the baseline alone reproduces
    the baseline sample's first split too faithfully (clean windows from the same
    population then look changed)."""
    from scipy.stats import wilcoxon
    from sklearn.tree import DecisionTreeRegressor

    if len(test) < 10:
        return None

    def errors(feature: str) -> np.ndarray:
        cols = [c for c in x.columns if _feature_of(str(c), categories) == feature]
        stump = DecisionTreeRegressor(max_depth=1, min_samples_leaf=5, random_state=0)
        stump.fit(x.iloc[train][cols].to_numpy(), y[train])
        return (y[test] - stump.predict(x.iloc[test][cols].to_numpy())) ** 2

    diff = errors(old) - errors(new)
    if not np.any(diff != 0):
        return 1.0
    return float(wilcoxon(diff, alternative="greater", zero_method="zsplit").pvalue)


__all__ = [
    "BootstrapRange",
    "SurrogateBaseline",
    "SurrogateReport",
    "SurrogateTree",
    "categories_of",
    "encode",
    "fit_tree",
    "surrogate_report",
    "window_surrogate",
]
