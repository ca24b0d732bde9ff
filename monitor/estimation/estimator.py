"""One entry point for label-free performance estimation: CBPE or DLE by the model's task.

    estimator = PerformanceEstimator(task, decision_threshold=0.5).fit(
        baseline_features, baseline_scores, baseline_labels)
    estimate = estimator.estimate(window_features, window_scores)   # no labels needed
    realized = estimator.realized(window_labels, window_scores)     # the labelled rows

Scores are shaped as the prediction log keeps them: (n,) P(class 1) for binary, (n, k)
for multiclass, (n,) values for regression; labels are class indices (or class names
when `class_names` is given) or values, NaN where unknown. Estimates assume no concept
drift: inputs may shift, the relation between inputs and outcomes may not.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from monitor.estimation.cbpe import CBPE
from monitor.estimation.dle import DLE
from monitor.estimation.realized import realized_metrics
from monitor.estimation.records import (
    Estimate,
    EstimationError,
    FitSummary,
    Method,
    Realized,
    Task,
)

log = logging.getLogger(__name__)


class PerformanceEstimator:
    """Learns a labelled baseline once, then estimates each window's performance."""

    def __init__(
        self,
        task: Task | str,
        *,
        class_names: Sequence[str] = (),
        decision_threshold: float = 0.5,
        band_sigmas: float = 3.0,
        categorical: Sequence[str] | None = None,
        seed: int = 0,
    ):
        self.task = Task(task)
        self.class_names = tuple(class_names)
        if not 0.0 < decision_threshold < 1.0:
            raise EstimationError(f"decision_threshold must be in (0, 1), got {decision_threshold}")
        self.decision_threshold = float(decision_threshold)
        self.band_sigmas = float(band_sigmas)
        self.seed = seed
        self._categorical = categorical
        self._engine: CBPE | DLE | None = None
        self.summary: FitSummary | None = None

    @classmethod
    def for_model(cls, model) -> PerformanceEstimator:
        """An unfitted estimator set up from a `ModelConfig`."""
        return cls(
            model.task,
            class_names=model.class_names,
            decision_threshold=model.decision_threshold,
            categorical=model.features.categorical,
            seed=model.seed,
        )

    def fit(
        self,
        baseline_features: pd.DataFrame | None,
        baseline_scores: np.ndarray,
        baseline_labels: np.ndarray | None,
    ) -> PerformanceEstimator:
        """Learn from the baseline's labelled rows; EstimationError when it has none."""
        labels = self._labels(baseline_labels, len(baseline_scores))
        keep = np.isfinite(labels)
        if not keep.any():
            raise EstimationError(
                "the baseline has no labels, so performance cannot be estimated: set "
                "models.label and include that column in models.baseline.data"
            )
        y, scores = labels[keep], np.asarray(baseline_scores, dtype=float)[keep]
        if self.task is Task.REGRESSION:
            if baseline_features is None:
                raise EstimationError("DLE needs the baseline's features")
            features = baseline_features.reset_index(drop=True).loc[keep]
            self._engine = DLE(self.band_sigmas, self.seed, self._categorical).fit(features, scores, y)
            calibration = ()
        else:
            classes = len(self.class_names) or (2 if self.task is Task.BINARY else None)
            cbpe = CBPE(self.task, self.decision_threshold, self.band_sigmas, self.seed)
            self._engine = cbpe.fit(scores, y.astype(int), classes)
            calibration = cbpe.calibration
        realized = self.realized(y, scores)
        self.summary = FitSummary(
            self.task,
            Method.DLE if self.task is Task.REGRESSION else Method.CBPE,
            int(keep.sum()),
            realized.metrics,
            calibration,
        )
        log.info("performance estimator fitted on %d labelled baseline rows", keep.sum())
        return self

    def estimate(self, features: pd.DataFrame | None, scores: np.ndarray) -> Estimate:
        """Estimated metrics of a window, from its inputs and scores alone."""
        if self._engine is None:
            raise EstimationError("estimate called before fit")
        if isinstance(self._engine, DLE):
            if features is None:
                raise EstimationError("DLE needs the window's features")
            return self._engine.estimate(features, scores)
        return self._engine.estimate(scores)

    def realized(self, labels: np.ndarray | None, scores: np.ndarray) -> Realized:
        """Metrics of a window's labelled rows (the same definitions the estimate uses)."""
        mapped = None if labels is None else self._labels(labels, len(scores))
        return realized_metrics(self.task, mapped, scores, self.decision_threshold)

    def _labels(self, labels: np.ndarray | None, rows: int) -> np.ndarray:
        """Labels as floats (NaN where unknown); class names mapped to indices."""
        if labels is None:
            return np.full(rows, np.nan)
        raw = pd.Series(np.asarray(labels, dtype=object))
        if self.class_names and self.task is not Task.REGRESSION:
            index = {name: i for i, name in enumerate(self.class_names)}
            raw = raw.map(lambda v: index.get(v, v) if isinstance(v, str) else v)
        out = pd.to_numeric(raw, errors="coerce").to_numpy(float)
        if len(out) != rows:
            raise EstimationError(f"{len(out)} labels for {rows} predictions: align them by row")
        return out
