"""Segments: the window cut by attribute values and their pairwise crosses.

Per segment (at least ``min_rows`` sampled rows; single values first, then crosses,
largest first, at most ``max_segments``): rows, the prediction rate (classification:
the share of each predicted class; binary: the share decided positive) or mean
(regression), drift of the prediction against the baseline's same segment (two-sample
KS on scores for binary and regression, chi-square on predicted classes for
multiclass; Bonferroni across the tested segments), realized performance on labelled
rows and, through an optional callable, estimated performance. Rates are weighted when
the sample is stratified (`sampling.stratified_sample`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency, ks_2samp

from monitor.fairness.groups import GroupKeys
from monitor.fairness.records import MISSING, FairnessError, as_weights, frozen, plain

if TYPE_CHECKING:
    from monitor.config import ModelConfig

log = logging.getLogger(__name__)

TASKS = ("binary_classification", "multiclass_classification", "regression")
#: estimated performance of a segment: given the segment's row positions in the window
#: arrays, metric name -> value (e.g. CBPE / DLE restricted to those rows)
Estimator = Callable[[np.ndarray], Mapping[str, float]]
SegmentKey = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SegmentResult:
    """One segment of one window, against the baseline's same segment."""

    key: SegmentKey
    rows: int
    #: weighted share of the window (the estimated share when the sample is stratified)
    share: float
    #: binary: share decided positive; multiclass: None; regression: None
    prediction_rate: float | None
    #: classification: predicted class -> weighted share
    class_shares: Mapping[str, float]
    #: binary: mean score; regression: mean prediction
    prediction_mean: float | None
    baseline_rows: int
    baseline_rate: float | None
    baseline_mean: float | None
    drift_method: str | None
    drift_p_value: float | None
    drifted: bool
    labelled_rows: int
    realized: Mapping[str, float] = field(default_factory=dict)
    baseline_realized: Mapping[str, float] = field(default_factory=dict)
    estimated: Mapping[str, float] = field(default_factory=dict)
    note: str | None = None

    def __post_init__(self) -> None:
        for name in ("class_shares", "realized", "baseline_realized", "estimated"):
            object.__setattr__(self, name, frozen(getattr(self, name)))

    @property
    def name(self) -> str:
        """``sex=F`` or ``sex=F & age_band=40-60``."""
        return " & ".join(f"{a}={v}" for a, v in self.key)

    def to_dict(self) -> dict[str, Any]:
        def flat(mapping: Mapping[str, float]) -> dict[str, Any]:
            return {k: plain(float(v)) for k, v in mapping.items()}

        return {
            "name": self.name,
            "values": dict(self.key),
            "rows": int(self.rows),
            "share": plain(float(self.share)),
            "prediction_rate": plain(self.prediction_rate),
            "class_shares": flat(self.class_shares),
            "prediction_mean": plain(self.prediction_mean),
            "baseline_rows": int(self.baseline_rows),
            "baseline_rate": plain(self.baseline_rate),
            "baseline_mean": plain(self.baseline_mean),
            "drift_method": self.drift_method,
            "drift_p_value": plain(self.drift_p_value),
            "drifted": bool(self.drifted),
            "labelled_rows": int(self.labelled_rows),
            "realized": flat(self.realized),
            "baseline_realized": flat(self.baseline_realized),
            "estimated": flat(self.estimated),
            "note": self.note,
        }


@dataclass(frozen=True)
class SegmentReport:
    """The segments of one window. `candidates`: segments with enough rows before the
    `max_segments` cap; `tested`: segments whose drift was tested (the Bonferroni m)."""

    segments: tuple[SegmentResult, ...]
    rows: int
    candidates: int
    max_segments: int
    min_rows: int
    p_value: float
    tested: int
    weighted: bool

    @property
    def drifted(self) -> tuple[SegmentResult, ...]:
        return tuple(s for s in self.segments if s.drifted)

    def segment(self, name: str) -> SegmentResult:
        """The segment called `name` (``sex=F``); KeyError when not reported."""
        for seg in self.segments:
            if seg.name == name:
                return seg
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "segments": [s.to_dict() for s in self.segments],
            "rows": int(self.rows),
            "candidates": int(self.candidates),
            "dropped": int(self.candidates - len(self.segments)),
            "max_segments": int(self.max_segments),
            "min_rows": int(self.min_rows),
            "p_value": plain(self.p_value),
            "tested": int(self.tested),
            "weighted": bool(self.weighted),
            "drifted": [s.name for s in self.drifted],
        }


@dataclass(frozen=True)
class _Window:
    """Predictions of a frame in the shapes the segment statistics need."""

    scores: np.ndarray  # (n,) binary score / regression value; (n,) predicted class for multiclass
    classes: np.ndarray | None  # (n,) predicted class (classification)
    labels: np.ndarray  # (n,) float, NaN unknown
    weights: np.ndarray


class SegmentAnalyzer:
    """Segments of windows against one baseline: ``fit(baseline)`` then ``analyze(window)``.

    Frames hold one column per segment attribute or feature, aligned by row with the
    predictions (as the prediction log keeps them) and labels (NaN where unknown).
    """

    def __init__(
        self,
        columns: Sequence[str],
        task: str,
        *,
        numeric: Sequence[str] = (),
        max_segments: int = 50,
        min_rows: int = 30,
        bins: int = 4,
        p_value: float = 0.01,
        threshold: float = 0.5,
        class_names: Sequence[str] = (),
    ):
        if task not in TASKS:
            raise FairnessError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
        if not columns:
            raise FairnessError("no segment attribute or feature to analyze")
        self.columns, self.task = tuple(columns), task
        self.keys = GroupKeys(self.columns, numeric, bins)
        self.max_segments, self.min_rows, self.p_value = max_segments, min_rows, p_value
        self.threshold, self.class_names = threshold, tuple(class_names)
        self._baseline: _Window | None = None
        self._baseline_keys: dict[str, np.ndarray] = {}

    @classmethod
    def from_config(cls, model: ModelConfig) -> SegmentAnalyzer:
        """Build from a `ModelConfig` (its segments, task, class names, fairness threshold)."""
        seg = model.segments
        threshold = model.fairness.threshold
        return cls(
            seg.names,
            model.task,
            numeric=[n for n in seg.features if n in set(model.features.numeric)],
            max_segments=seg.max_segments,
            min_rows=seg.min_rows,
            bins=seg.bins,
            p_value=seg.p_value,
            threshold=0.5 if threshold is None or model.task != "binary_classification" else threshold,
            class_names=model.class_names,
        )

    def fit(self, frame: pd.DataFrame, predictions: Any, labels: Any = None) -> SegmentAnalyzer:
        """Learn the baseline: bin edges, and each segment's predictions. Returns self."""
        self.keys.fit(frame)
        self._baseline = self._window(frame, predictions, labels, None)
        self._baseline_keys = self.keys.transform(frame)
        return self

    def analyze(
        self,
        frame: pd.DataFrame,
        predictions: Any,
        labels: Any = None,
        weights: Any = None,
        *,
        estimate: Estimator | None = None,
    ) -> SegmentReport:
        """Score one window's segments. `weights` reweight rates and performance;
        `estimate` (optional) gives estimated performance from a segment's row positions."""
        window = self._window(frame, predictions, labels, weights)
        keys = self.keys.transform(frame)
        chosen, candidates = self._choose(keys)
        base_masks = {k: _mask(self._baseline_keys, k) for k, _ in chosen} if self._baseline else {}
        tested = sum(int(base_masks.get(k, np.zeros(0)).sum() >= self.min_rows) for k, _ in chosen)
        level = self.p_value / max(tested, 1)
        results = tuple(
            self._segment(key, mask, window, base_masks.get(key), level, estimate) for key, mask in chosen
        )
        log.debug("segments: %d of %d reported, %d tested for drift", len(results), candidates, tested)
        return SegmentReport(
            results,
            len(window.scores),
            candidates,
            self.max_segments,
            self.min_rows,
            self.p_value,
            tested,
            weights is not None,
        )

    def membership(self, frame: pd.DataFrame) -> list[tuple[str, ...]]:
        """Per row of `frame`, the segments it belongs to (``sex=F``, ``age=(39.9, 46.8]``,
        then ``sex=F & age=...`` crosses), whatever their size: for `monitor why`."""
        keys = self.keys.transform(frame)
        out = []
        for i in range(len(frame)):
            values = [(name, str(keys[name][i])) for name in self.columns if keys[name][i] != MISSING]
            singles = [f"{a}={v}" for a, v in values]
            pairs = [f"{a}={v} & {b}={w}" for (a, v), (b, w) in itertools.combinations(values, 2)]
            out.append(tuple(singles + pairs))
        return out

    def _window(self, frame: pd.DataFrame, predictions: Any, labels: Any, weights: Any) -> _Window:
        values = np.asarray(predictions, dtype=float)
        n = len(values)
        if len(frame) != n:
            raise FairnessError(f"{len(frame)} segment rows for {n} predictions")
        y = np.full(n, np.nan)
        if labels is not None:
            y = pd.to_numeric(pd.Series(np.asarray(labels, dtype=object).reshape(-1)), errors="coerce")
            y = y.to_numpy(float)
            if len(y) != n:
                raise FairnessError(f"{len(y)} labels for {n} predictions: they must be aligned by row")
        if self.task == "multiclass_classification":
            if values.ndim != 2:
                raise FairnessError(f"multiclass predictions must be (rows, classes), got {values.shape}")
            classes = values.argmax(axis=1)
            return _Window(classes.astype(float), classes, y, as_weights(weights, n))
        scores = values.reshape(-1)
        classes = (scores >= self.threshold).astype(int) if self.task == "binary_classification" else None
        return _Window(scores, classes, y, as_weights(weights, n))

    def _choose(self, keys: Mapping[str, np.ndarray]) -> tuple[list[tuple[SegmentKey, np.ndarray]], int]:
        """Segments with >= min_rows rows: single values, then pairwise crosses, largest first."""
        singles, crosses = [], []
        for name in self.columns:
            for value in sorted(set(keys[name].tolist()) - {MISSING}):
                mask = keys[name] == value
                if mask.sum() >= self.min_rows:
                    singles.append((((name, value),), mask))
        for a, b in itertools.combinations(self.columns, 2):
            pairs = pd.DataFrame({"a": keys[a], "b": keys[b]})
            sizes = pairs.groupby(["a", "b"]).size()
            for (va, vb), size in sizes.items():
                if size >= self.min_rows and MISSING not in (va, vb):
                    crosses.append((((a, va), (b, vb)), (keys[a] == va) & (keys[b] == vb)))
        order = lambda item: (-int(item[1].sum()), item[0])  # noqa: E731
        ranked = sorted(singles, key=order) + sorted(crosses, key=order)
        return ranked[: self.max_segments], len(ranked)

    def _segment(
        self,
        key: SegmentKey,
        mask: np.ndarray,
        window: _Window,
        base_mask: np.ndarray | None,
        level: float,
        estimate: Estimator | None,
    ) -> SegmentResult:
        w = window.weights
        rate, shares, mean = self._rates(window, mask)
        base_rows, base_rate, base_mean, base_perf = 0, None, None, {}
        method, p, note = None, None, None
        if base_mask is not None and self._baseline is not None:
            base_rows = int(base_mask.sum())
            base_rate, _, base_mean = self._rates(self._baseline, base_mask)
            base_perf = self._realized(self._baseline, base_mask)
            if base_rows >= self.min_rows:
                method, p = self._drift(window, mask, base_mask)
            elif base_rows == 0:
                note = "not in the baseline (a new value): drift not tested"
            else:
                note = f"baseline segment has {base_rows} rows (< {self.min_rows}): drift not tested"
        elif self._baseline is None:
            note = "no baseline: drift not tested"
        estimated = dict(estimate(np.flatnonzero(mask))) if estimate is not None else {}
        return SegmentResult(
            key,
            int(mask.sum()),
            float(w[mask].sum() / w.sum()),
            rate,
            shares,
            mean,
            base_rows,
            base_rate,
            base_mean,
            method,
            p,
            bool(p is not None and p < level),
            int(np.isfinite(window.labels[mask]).sum()),
            self._realized(window, mask),
            base_perf,
            estimated,
            note,
        )

    def _rates(
        self, window: _Window, mask: np.ndarray
    ) -> tuple[float | None, dict[str, float], float | None]:
        """(positive rate, class shares, mean prediction) of the masked rows, weighted."""
        w = window.weights[mask]
        if not w.size:  # a segment value the other side never had (a new region, product)
            return None, {}, None
        if self.task == "regression":
            return None, {}, float(np.average(window.scores[mask], weights=w))
        classes = window.classes[mask]  # type: ignore[index]
        shares = {
            self._class_name(int(c)): float(w[classes == c].sum() / w.sum()) for c in np.unique(classes)
        }
        if self.task == "binary_classification":
            rate = float(w[classes == 1].sum() / w.sum())
            return rate, shares, float(np.average(window.scores[mask], weights=w))
        return None, shares, None

    def _class_name(self, index: int) -> str:
        return self.class_names[index] if index < len(self.class_names) else str(index)

    def _drift(self, window: _Window, mask: np.ndarray, base_mask: np.ndarray) -> tuple[str, float]:
        base = self._baseline
        if base is None:
            raise FairnessError("segment drift needs fit(baseline) first")
        if self.task == "multiclass_classification":
            cur, ref = window.classes[mask], base.classes[base_mask]  # type: ignore[index]
            labels = np.union1d(np.unique(cur), np.unique(ref))
            if len(labels) < 2:
                return "chisquare", 1.0
            table = np.array([[np.sum(cur == c) for c in labels], [np.sum(ref == c) for c in labels]])
            return "chisquare", float(chi2_contingency(table)[1])
        return "ks", float(ks_2samp(window.scores[mask], base.scores[base_mask]).pvalue)

    def _realized(self, window: _Window, mask: np.ndarray) -> dict[str, float]:
        """Weighted accuracy (classification) or RMSE and MAE (regression) on labelled rows."""
        known = mask & np.isfinite(window.labels)
        if not known.any():
            return {}
        y, w = window.labels[known], window.weights[known]
        if self.task == "regression":
            err = window.scores[known] - y
            return {
                "rmse": float(np.sqrt(np.average(err**2, weights=w))),
                "mae": float(np.average(np.abs(err), weights=w)),
            }
        return {"accuracy": float(np.average(window.classes[known] == y, weights=w))}  # type: ignore[index]


def _mask(keys: Mapping[str, np.ndarray], key: SegmentKey) -> np.ndarray:
    mask = np.ones(len(next(iter(keys.values()))), dtype=bool)
    for name, value in key:
        mask &= keys[name] == value
    return mask
