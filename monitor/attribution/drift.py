"""How the model's reasoning shifts: global importance and attribution drift.

Global importance is the mean |attribution| per feature. Attribution drift compares the
current importance ranking with the baseline's by nDCG, the way SageMaker Clarify does:
the relevance of a feature is its baseline importance, the order is the current ranking,
and the ideal order is the baseline ranking (1.0 means the same order; Clarify alerts
below 0.9). Per feature it also reports the relative change of importance and the
Wasserstein distance between the baseline and current attribution distributions,
divided by the baseline importance so features of any scale compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

from monitor.errors import AttributionError

DEFAULT_NDCG_THRESHOLD = 0.9
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


@dataclass(frozen=True)
class AttributionDrift:
    """nDCG of the current importance ranking against the baseline, and per-feature shifts."""

    ndcg: float
    threshold: float
    drifted: bool
    features: tuple[FeatureAttributionDrift, ...]

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
) -> AttributionDrift:
    """Compare two sets of per-sample attributions ``(rows, d)`` with columns `feature_names`.

    Returns `AttributionDrift`; `drifted` is True when nDCG < `threshold`.
    """
    base, cur = _matrix(baseline_values, feature_names), _matrix(current_values, feature_names)
    if len(base) == 0 or len(cur) == 0:
        raise AttributionError("attribution drift needs baseline and current attributions")
    base_imp, cur_imp = np.abs(base).mean(axis=0), np.abs(cur).mean(axis=0)
    score = ndcg(base_imp, cur_imp)
    base_rank = _ranks(base_imp)
    cur_rank = _ranks(cur_imp)
    features = []
    for i, name in enumerate(feature_names):
        scale = max(base_imp[i], _EPS)
        features.append(FeatureAttributionDrift(
            feature=name,
            baseline_importance=float(base_imp[i]),
            current_importance=float(cur_imp[i]),
            relative_change=float((cur_imp[i] - base_imp[i]) / scale),
            distance=float(wasserstein_distance(base[:, i], cur[:, i]) / scale),
            baseline_rank=int(base_rank[i]),
            current_rank=int(cur_rank[i]),
        ))
    return AttributionDrift(score, threshold, score < threshold, tuple(features))


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
