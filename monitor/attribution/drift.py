"""How the model's reasoning shifts: global importance and attribution drift.

Global importance is the mean |attribution| per feature. Attribution drift compares the
current importance ranking with the baseline's by nDCG, the way SageMaker Clarify does:
the relevance of a feature is its baseline importance, the order is the current ranking,
and the ideal order is the baseline ranking (1.0 means the same order; Clarify alerts
below 0.9). Per feature it also reports the relative change of importance and the
Wasserstein distance between the baseline and current attribution distributions,
divided by the baseline importance so features of any scale compare.

The ranking can stay put while a feature doubles its influence, so each feature's
importance change is also tested on its own: the relative change of mean |attribution|
against its null, bootstrapped on both sides from the baseline attributions (a
pseudo-baseline of the baseline's rows, a pseudo-window of the window's rows), with
Holm's correction over the features at `family_alpha`. Each feature gets a p-value and
the smallest relative change this many explained rows detect with 90% power.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri
from scipy.stats import wasserstein_distance

from monitor.errors import AttributionError

DEFAULT_NDCG_THRESHOLD = 0.9
#: per-window family-wise false-alarm rate of the per-feature tests when none is given
DEFAULT_FAMILY_ALPHA = 1.0 / (30 * 96)
#: bootstrap resamples of the null of each feature's importance change
RESAMPLES = 500
POWER = 0.9
_EPS = 1e-12


@dataclass(frozen=True)
class FeatureAttributionDrift:
    """One feature's importance then and now, and how far its attributions moved."""

    feature: str
    baseline_importance: float
    current_importance: float
    #: (current - baseline) / baseline importance
    relative_change: float
    #: Wasserstein distance between the attribution distributions / baseline importance
    distance: float
    baseline_rank: int
    current_rank: int
    #: tail probability (two-sided) of this relative change when nothing changed
    p_value: float | None = None
    #: the per-feature level it was compared with (Holm over the features)
    alpha: float | None = None
    #: the importance changed more than sampling explains at `alpha`
    drifted: bool = False
    #: smallest relative importance change detected with 90% power at `alpha`
    min_detectable_change: float | None = None


@dataclass(frozen=True)
class AttributionDrift:
    """nDCG of the current importance ranking against the baseline, and per-feature shifts.

    `drifted` is the ranking verdict (nDCG below `threshold`); `drifted_features` the
    features whose own importance changed significantly, ranking or not.
    """

    ndcg: float
    threshold: float
    drifted: bool
    features: tuple[FeatureAttributionDrift, ...]
    family_alpha: float | None = None

    @property
    def drifted_features(self) -> tuple[str, ...]:
        """Features whose importance changed beyond their calibrated threshold."""
        return tuple(f.feature for f in self.features if f.drifted)

    def feature(self, name: str) -> FeatureAttributionDrift:
        """The entry for feature `name` (KeyError when it is not there)."""
        for entry in self.features:
            if entry.feature == name:
                return entry
        raise KeyError(name)


def global_importance(values: np.ndarray | pd.DataFrame) -> np.ndarray | pd.Series:
    """Mean |attribution| per feature: a Series for a DataFrame, else an array ``(d,)``."""
    if isinstance(values, pd.DataFrame):
        return values.abs().mean(axis=0)
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        array = array.reshape(len(array), -1)
    return np.abs(array).mean(axis=0)


def ndcg(baseline_importance: np.ndarray, current_importance: np.ndarray) -> float:
    """nDCG of the ranking by `current_importance`, relevance = `baseline_importance`."""
    relevance = np.asarray(baseline_importance, dtype=np.float64)
    discounts = 1.0 / np.log2(np.arange(2, len(relevance) + 2))
    ideal = np.sort(relevance)[::-1] @ discounts
    if ideal <= _EPS:
        return 1.0
    # stable sort: ties keep the baseline's feature order
    order = np.argsort(-np.asarray(current_importance, dtype=np.float64), kind="stable")
    return float(relevance[order] @ discounts / ideal)


def attribution_drift(
    baseline_values: np.ndarray | pd.DataFrame,
    current_values: np.ndarray | pd.DataFrame,
    feature_names: Sequence[str],
    *,
    threshold: float = DEFAULT_NDCG_THRESHOLD,
    family_alpha: float = DEFAULT_FAMILY_ALPHA,
    seed: int = 0,
) -> AttributionDrift:
    """Compare two sets of per-sample attributions ``(rows, d)`` with columns `feature_names`.

    Returns `AttributionDrift`; `drifted` is True when nDCG < `threshold`, and each
    feature's `drifted` when its importance change is significant at its Holm level
    of `family_alpha` (see `importance_tests`).
    """
    base, cur = _matrix(baseline_values, feature_names), _matrix(current_values, feature_names)
    if len(base) == 0 or len(cur) == 0:
        raise AttributionError("attribution drift needs baseline and current attributions")
    base_imp, cur_imp = np.abs(base).mean(axis=0), np.abs(cur).mean(axis=0)
    score = ndcg(base_imp, cur_imp)
    base_rank = _ranks(base_imp)
    cur_rank = _ranks(cur_imp)
    tests = importance_tests(base, cur, family_alpha, seed)
    features = []
    for i, name in enumerate(feature_names):
        scale = max(base_imp[i], _EPS)
        p_value, alpha, detectable = tests[i]
        features.append(FeatureAttributionDrift(
            feature=name,
            baseline_importance=float(base_imp[i]),
            current_importance=float(cur_imp[i]),
            relative_change=float((cur_imp[i] - base_imp[i]) / scale),
            distance=float(wasserstein_distance(base[:, i], cur[:, i]) / scale),
            baseline_rank=int(base_rank[i]),
            current_rank=int(cur_rank[i]),
            p_value=p_value,
            alpha=alpha,
            drifted=bool(p_value is not None and p_value < alpha),
            min_detectable_change=detectable,
        ))
    return AttributionDrift(score, threshold, score < threshold, tuple(features), family_alpha)


def importance_tests(
    base: np.ndarray, cur: np.ndarray, family_alpha: float, seed: int = 0
) -> list[tuple[float | None, float, float | None]]:
    """Per feature (p-value, Holm level, minimum detectable relative change).

    The statistic is the relative change of mean |attribution|. Its null at these row
    counts comes from RESAMPLES pairs drawn from the baseline: a pseudo-baseline of
    len(base) rows and a pseudo-window of len(cur) rows; its spread is the bootstrap
    standard deviation and the tail is read as normal (a mean of many rows), so a
    small per-feature level does not need 1/level resamples. A feature with no
    baseline importance gets p-value None (nothing to compare with).
    """
    m, n = len(base), len(cur)
    magnitude, current = np.abs(base), np.abs(cur)
    base_imp, cur_imp = magnitude.mean(axis=0), current.mean(axis=0)
    rng = np.random.default_rng(seed)
    uniform = np.full(m, 1.0 / m)
    ref_w = rng.multinomial(m, uniform, size=RESAMPLES) / m
    win_w = rng.multinomial(n, uniform, size=RESAMPLES) / n
    ref_mean, win_mean = ref_w @ magnitude, win_w @ magnitude
    # a pseudo-baseline with no importance at all has no relative change: count it as 0
    with np.errstate(divide="ignore", invalid="ignore"):
        null = np.where(ref_mean > 0, (win_mean - ref_mean) / ref_mean, 0.0)
    spread = null.std(axis=0)
    p_values: dict[int, float] = {}
    for i in range(base.shape[1]):
        if base_imp[i] <= _EPS or not np.isfinite(spread[i]):
            continue
        change = (cur_imp[i] - base_imp[i]) / base_imp[i]
        if spread[i] <= 0:
            p_values[i] = 1.0 if change == 0 else 0.0
        else:
            p_values[i] = float(2 * ndtr(-abs(change) / spread[i]))
    from monitor.drift.calibration import holm_levels

    levels = holm_levels(p_values, family_alpha, {})
    result = []
    for i in range(base.shape[1]):
        alpha = levels.get(i, family_alpha / max(len(p_values), 1))
        if i not in p_values:
            result.append((None, alpha, None))
            continue
        detectable = float((ndtri(1 - alpha / 2) + ndtri(POWER)) * spread[i])
        result.append((p_values[i], alpha, detectable))
    return result


def _ranks(importance: np.ndarray) -> np.ndarray:
    """1 for the most important feature, 2 for the next, ..."""
    order = np.argsort(-importance, kind="stable")
    ranks = np.empty(len(importance), dtype=int)
    ranks[order] = np.arange(1, len(importance) + 1)
    return ranks


def _matrix(values: np.ndarray | pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    if isinstance(values, pd.DataFrame):
        missing = [n for n in names if n not in values.columns]
        if missing:
            raise AttributionError(f"attributions have no column for feature(s) {missing}")
        return values[list(names)].to_numpy(dtype=np.float64)
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != len(names):
        raise AttributionError(
            f"attributions of shape {array.shape} do not match {len(names)} feature names"
        )
    return array
