"""`DriftAnalyzer`: learns a baseline once, then scores windows against it."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np
import pandas as pd

from monitor.config import DriftConfig, PerformanceConfig
from monitor.drift.performance import TASKS, compare, labelled, performance_metrics
from monitor.drift.records import DataQuality, DriftReport, FeatureDrift, FeatureQuality, Kind
from monitor.drift.stattests import Column, ColumnReference, clean_column, fit_references
from monitor.errors import DriftError
from monitor.vocab import PREDICTION_KEY

log = logging.getLogger(__name__)

#: unseen categories listed per feature in data quality (the count is not capped)
MAX_UNSEEN = 20
_NO_FACTORS: Mapping[str, float] = MappingProxyType({})


class DriftAnalyzer:
    """Drift, data quality and performance of windows against one baseline.

    ``fit(reference)`` cleans and sorts the reference columns, counts their values and
    measures the baseline's performance once; ``analyze(window)`` then scores each
    window with Evidently's stat tests (the one DataDriftPreset would choose, or the
    configured method and threshold). Fitting is cheap (a sort and a count per column),
    so ``baseline.mode = "previous_window"`` simply fits a new analyzer on the previous
    window's frame, predictions and labels and analyzes the current window with it.
    """

    def __init__(
        self,
        numeric: Sequence[str],
        categorical: Sequence[str],
        config: DriftConfig,
        task: str,
        performance: PerformanceConfig | None = None,
    ):
        if task not in TASKS:
            raise DriftError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
        overlap = sorted(set(numeric) & set(categorical))
        if overlap:
            raise DriftError(f"features listed as both numeric and categorical: {overlap}")
        self.kinds: dict[str, Kind] = {
            **{name: "numeric" for name in numeric},
            **{name: "categorical" for name in categorical},
        }
        if not self.kinds:
            raise DriftError("at least one numeric or categorical feature is required")
        self.config, self.task = config, task
        self.performance_config = performance or PerformanceConfig()
        self._references: dict[str, ColumnReference] = {}
        self._prediction: ColumnReference | None = None
        self._baseline_performance: dict[str, float] | None = None
        self._fitted = False

    @property
    def baseline_performance(self) -> Mapping[str, float] | None:
        """The baseline's metrics (None when it had no labels or predictions)."""
        return self._baseline_performance

    def fit(
        self,
        reference: pd.DataFrame,
        predictions: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> DriftAnalyzer:
        """Learn the reference: cleaned columns, counts, the baseline's performance.

        Returns self. Raises DriftError naming any configured feature the reference
        lacks, or a configured method that cannot be used on its column's type.
        """
        _require_columns(reference, self.kinds, "reference")
        if len(reference) < self.config.min_rows:
            log.warning(
                "drift reference has %d rows, fewer than min_rows=%d",
                len(reference),
                self.config.min_rows,
            )
        self._check_methods()
        self._references = fit_references(reference, self.kinds)
        self._prediction = None
        if predictions is not None:
            column = self._prediction_column(predictions)
            self._prediction = ColumnReference(PREDICTION_KEY, column)
        self._baseline_performance = None
        if labels is not None and predictions is not None:
            self._baseline_performance = performance_metrics(self.task, labels, predictions)
        self._fitted = True
        return self

    def analyze(
        self,
        current: pd.DataFrame,
        predictions: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        *,
        threshold_factors: Mapping[str, float] = _NO_FACTORS,
    ) -> DriftReport:
        """Score one window: per-feature drift, dataset and prediction drift, data
        quality and (when enough rows are labelled) performance.

        `threshold_factors` maps a feature (or PREDICTION_KEY) to a factor > 1 that
        makes its test less sensitive. A window of fewer than `min_rows` rows gets a
        report marked `insufficient_data` with data quality only.
        """
        if not self._fitted:
            raise DriftError("DriftAnalyzer.analyze called before fit(reference)")
        for key, factor in threshold_factors.items():
            if not factor > 0:
                raise DriftError(f"threshold factor for {key!r} must be > 0, got {factor!r}")
        rows, min_rows = len(current), self.config.min_rows
        if rows < min_rows:
            present = {n: k for n, k in self.kinds.items() if n in current.columns}
            columns = {n: clean_column(n, current[n], k) for n, k in present.items()}
            return DriftReport(
                {},
                False,
                0.0,
                self.config.drift_share,
                None,
                self._quality(columns, rows),
                None,
                True,
                min_rows,
                rows,
            )
        _require_columns(current, self.kinds, "window")
        columns = {n: clean_column(n, current[n], k) for n, k in self.kinds.items()}
        features = {
            name: self._test(name, columns[name], threshold_factors.get(name, 1.0))
            for name in self.kinds
        }
        tested = [f for f in features.values() if np.isfinite(f.score)]
        share = sum(f.drifted for f in tested) / len(tested) if tested else 0.0
        return DriftReport(
            features=features,
            dataset_drift=bool(tested) and share >= self.config.drift_share,
            drift_share=float(share),
            share_threshold=self.config.drift_share,
            prediction=self._prediction_drift(
                predictions, threshold_factors.get(PREDICTION_KEY, 1.0)
            ),
            quality=self._quality(columns, rows),
            performance=self._performance(predictions, labels),
            insufficient_data=False,
            min_rows=min_rows,
            rows=rows,
        )

    # -- helpers -------------------------------------------------------------------------

    def _method(self, name: str) -> tuple[str | None, float | None]:
        override = self.config.features.get(name)
        method = (override.method if override else None) or self.config.method
        threshold = (override.threshold if override else None) or self.config.threshold
        return method, threshold

    def _check_methods(self) -> None:
        """Refuse a configured method Evidently does not allow for the column's type."""
        from monitor.drift.stattests import check_method

        for name, kind in self.kinds.items():
            method, _ = self._method(name)
            if method is not None:
                try:
                    check_method(method, kind)
                except DriftError as err:
                    raise DriftError(f"feature {name!r}: {err}") from err
        if self.config.prediction_method is not None:
            kind = "categorical" if self.task == "multiclass_classification" else "numeric"
            check_method(self.config.prediction_method, kind)

    def _test(self, name: str, column: Column, factor: float) -> FeatureDrift:
        method, threshold = self._method(name)
        return self._references[name].test(column, method, threshold, factor)

    def _prediction_column(self, predictions: np.ndarray) -> Column:
        values = np.asarray(predictions, dtype=float)
        if self.task == "multiclass_classification":
            if values.ndim != 2:
                raise DriftError(
                    f"multiclass predictions must be (rows, classes), got shape {values.shape}"
                )
            classes = pd.Series(values.argmax(axis=1), dtype="int64")
            classes[~np.isfinite(values).all(axis=1)] = -1
            return clean_column(PREDICTION_KEY, classes[classes >= 0], "categorical")
        return clean_column(PREDICTION_KEY, pd.Series(values.reshape(-1)), "numeric")

    def _prediction_drift(
        self, predictions: np.ndarray | None, factor: float
    ) -> FeatureDrift | None:
        if self._prediction is None or predictions is None:
            return None
        column = self._prediction_column(predictions)
        return self._prediction.test(
            column, self.config.prediction_method, self.config.prediction_threshold, factor
        )

    def _performance(self, predictions: np.ndarray | None, labels: np.ndarray | None):
        y, _ = labelled(labels, predictions)
        if len(y) < self.config.min_rows:
            return None
        current = performance_metrics(self.task, labels, predictions)
        cfg = self.performance_config
        return compare(current, self._baseline_performance, cfg.max_drop, len(y),
                       max_error_increase=cfg.max_error_increase)

    def _quality(self, columns: Mapping[str, Column], rows: int) -> DataQuality:
        result = {}
        for name, column in columns.items():
            ref = self._references[name]
            out_of_range, unseen = 0, ()
            if column.kind == "numeric" and column.n and ref.column.n:
                values = column.values
                out_of_range = int(
                    values.searchsorted(ref.min, "left")
                    + (column.n - values.searchsorted(ref.max, "right"))
                )
            elif column.kind == "categorical":
                unseen = tuple(sorted(str(v) for v in set(column.value_counts()) - ref.keys))
            constant = column.n > 0 and (
                column.values[0] == column.values[-1]
                if column.kind == "numeric"
                else len(column.value_counts()) == 1
            )
            result[name] = FeatureQuality(
                missing_share=(rows - column.n) / rows if rows else 0.0,
                out_of_range=out_of_range,
                unseen_categories=unseen[:MAX_UNSEEN],
                unseen_count=len(unseen),
                constant=bool(constant),
                all_missing=rows > 0 and column.n == 0,
            )
        return DataQuality(result)


def _require_columns(frame: pd.DataFrame, names: Mapping[str, Kind], what: str) -> None:
    missing = [name for name in names if name not in frame.columns]
    if missing:
        present = ", ".join(map(str, frame.columns)) or "none"
        raise DriftError(
            f"the {what} has no column {', '.join(repr(m) for m in missing)} "
            f"(configured features missing; columns present: {present})"
        )
