"""`DriftAnalyzer`: learns a baseline once, then scores windows against it."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from types import MappingProxyType

import numpy as np
import pandas as pd

from monitor.config import DriftConfig, PerformanceConfig
from monitor.drift.calibration import FEW_VALUES, ColumnCalibration, family_alpha, holm_levels
from monitor.drift.fitted import FitStore
from monitor.drift.performance import (
    TASKS,
    compare,
    error_floors,
    labelled,
    metric_intervals,
    performance_metrics,
)
from monitor.drift.records import DataQuality, DriftReport, FeatureDrift, FeatureQuality, Kind
from monitor.drift.stattests import Column, ColumnReference, clean_column, fit_references
from monitor.errors import DriftError
from monitor.vocab import PREDICTION_KEY, Task

log = logging.getLogger(__name__)

#: unseen categories listed per feature in data quality (the count is not capped)
MAX_UNSEEN = 20
#: a numeric column with at most this many distinct baseline values is compared value by
#: value (the count-based tests bin it per value, as `stattests` does): a value the
#: baseline never had is an unseen value, like a new category
DISCRETE_VALUES = 20
_NO_FACTORS: Mapping[str, float] = MappingProxyType({})
#: the family-wise rate when none is given: 1 false alarm a month, 15-minute windows
DEFAULT_FAMILY_ALPHA = family_alpha(1.0, timedelta(minutes=15))


class DriftAnalyzer:
    """Drift, data quality and performance of windows against one baseline.

    ``fit(reference)`` cleans and sorts the reference columns, counts their values and
    measures the baseline's performance once; ``analyze(window)`` then scores each
    window with Evidently's stat tests (the one DataDriftPreset would choose, or the
    configured method and threshold). Fitting is cheap (a sort and a count per column),
    so ``baseline.mode = "previous_window"`` simply fits a new analyzer on the previous
    window's frame, predictions and labels and analyzes the current window with it.

    In calibrated mode (``threshold_mode``, default from the config) the same scores are
    decided from each test's resampled null at the window's size (see
    `monitor.drift.calibration`), the tests of one window sharing `family_alpha` (the
    per-window false-alarm rate, `calibration.family_alpha(budget, window)`) by Holm's
    correction. The nulls are built on first use per size bucket and cached; given a
    `FitStore` (``fits``, or later `keep_fits_in`), they are read from it before they are
    built and kept in it, so another process on the same baseline builds none.
    """

    def __init__(
        self,
        numeric: Sequence[str],
        categorical: Sequence[str],
        config: DriftConfig,
        task: str,
        performance: PerformanceConfig | None = None,
        *,
        threshold_mode: str | None = None,
        family_alpha: float | None = None,
        performance_alpha: float | None = None,
        seed: int = 0,
        fits: FitStore | None = None,
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
        self.threshold_mode = threshold_mode or config.threshold_mode
        if self.threshold_mode not in ("calibrated", "fixed"):
            raise DriftError(
                f"threshold_mode must be 'calibrated' or 'fixed', got {self.threshold_mode!r}"
            )
        self.family_alpha = DEFAULT_FAMILY_ALPHA if family_alpha is None else family_alpha
        if not 0 < self.family_alpha <= 1:
            raise DriftError(f"family_alpha must be in (0, 1], got {self.family_alpha!r}")
        #: the rate performance_drop may spend per window (its part of the alert budget),
        #: split over the metrics; `performance.ci_level`, when set, overrides it
        self.performance_alpha = performance_alpha
        self.seed, self.fits = seed, fits
        self._calibrations: dict[str, ColumnCalibration] = {}
        self._singleton_counts: dict[str, int] = {}
        self._label_scale: float | None = None
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
            y, _ = labelled(labels, predictions)
            self._label_scale = float(np.std(y)) if len(y) else None
        self._calibrations = {}
        self._singleton_counts = {}
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
                self._quality(columns, self._seen(columns), rows),
                None,
                True,
                min_rows,
                rows,
                self.threshold_mode,
                self.family_alpha if self.threshold_mode == "calibrated" else None,
            )
        _require_columns(current, self.kinds, "window")
        columns = {n: clean_column(n, current[n], k) for n, k in self.kinds.items()}
        # values the baseline never had cannot be judged by its null (a p-value of 1e-300
        # every window): they leave the test and are judged in data quality instead
        seen = self._seen(columns)
        features = {
            name: self._test(name, seen[name], threshold_factors.get(name, 1.0))
            for name in self.kinds
        }
        for name, column in seen.items():
            if not column.n and columns[name].n:
                features[name] = dataclasses.replace(
                    features[name], note="every value in the window is one the baseline never "
                    "had: judged in data quality, not by a drift test")
        pred_column = (
            self._prediction_column(predictions)
            if self._prediction is not None and predictions is not None
            else None
        )
        prediction = self._prediction_drift(
            pred_column, threshold_factors.get(PREDICTION_KEY, 1.0)
        )
        if self.threshold_mode == "calibrated":
            tests = dict(features)
            if prediction is not None:
                tests[PREDICTION_KEY] = prediction
            decided = self._calibrated(
                tests, {**seen, PREDICTION_KEY: pred_column}, threshold_factors
            )
            prediction = decided.pop(PREDICTION_KEY, None)
            features = decided
        tested = [f for f in features.values() if np.isfinite(f.score)]
        share = sum(f.drifted for f in tested) / len(tested) if tested else 0.0
        return DriftReport(
            features=features,
            dataset_drift=bool(tested) and share >= self.config.drift_share,
            drift_share=float(share),
            share_threshold=self.config.drift_share,
            prediction=prediction,
            quality=self._quality(columns, seen, rows),
            performance=self._performance(predictions, labels),
            insufficient_data=False,
            min_rows=min_rows,
            rows=rows,
            threshold_mode=self.threshold_mode,
            family_alpha=self.family_alpha if self.threshold_mode == "calibrated" else None,
        )

    # -- calibrated decisions ------------------------------------------------------------

    def calibration(self, name: str) -> ColumnCalibration:
        """The resampled nulls of feature `name` (or PREDICTION_KEY), built on first use."""
        if name not in self._calibrations:
            reference = self._prediction if name == PREDICTION_KEY else self._references[name]
            if reference is None:
                raise DriftError("no prediction baseline was fitted")
            seed = self.seed * 7919 + sorted([*self.kinds, PREDICTION_KEY]).index(name)
            self._calibrations[name] = ColumnCalibration(
                reference, self.config.calibration_resamples, seed, fits=self.fits
            )
        return self._calibrations[name]

    def keep_fits_in(self, fits: FitStore) -> None:
        """Read and keep this baseline's nulls in `fits` from now on (the nulls already
        in memory stay there)."""
        self.fits = fits
        for calibration in self._calibrations.values():
            calibration.fits = fits

    def prepare(self, rows: int) -> None:
        """Build (and cache) the nulls a window of `rows` rows will need, so that the
        first window of that size costs no more than the next (calibrated mode only)."""
        if not self._fitted:
            raise DriftError("DriftAnalyzer.prepare called before fit(reference)")
        if self.threshold_mode != "calibrated":
            return
        from monitor.drift.calibration import CALIBRATED_METHODS, bucket_sizes

        names = [*self.kinds, *([PREDICTION_KEY] if self._prediction is not None else [])]
        for name in names:
            reference = self._prediction if name == PREDICTION_KEY else self._references[name]
            if reference is None or not reference.column.n:
                continue
            configured = (
                self.config.prediction_method if name == PREDICTION_KEY else self._method(name)[0]
            )
            method = configured or reference.default_method(reference.column)
            if (configured is None and method not in ("ks", "chisquare", "z")
                    and reference.column.kind == "numeric" and reference.n_unique > FEW_VALUES):
                method = "ks"  # decided by K-S (see `_decided_by`): its power curve is needed
            if method in CALIBRATED_METHODS:
                for size in set(bucket_sizes(rows)):
                    self.calibration(name).null(method, size)

    def _calibrated(
        self,
        tests: Mapping[str, FeatureDrift],
        columns: Mapping[str, Column | None],
        factors: Mapping[str, float],
    ) -> dict[str, FeatureDrift]:
        """Each test decided by its calibrated p-value at Holm's level of the family."""
        assessed, deciders = {}, {}
        for name, result in tests.items():
            column = columns[name]
            if column is None or not np.isfinite(result.score):
                continue
            decider = self._decided_by(name, result)
            found = self.calibration(name).assess(decider, column, result.score)
            if found is not None:
                assessed[name], deciders[name] = found, decider
        levels = holm_levels(
            {name: a.p_value for name, a in assessed.items()}, self.family_alpha, factors
        )
        decided = dict(tests)
        for name, found in assessed.items():
            result, alpha, decider = tests[name], levels[name], deciders[name]
            calibration, n = self.calibration(name), columns[name].n  # type: ignore[union-attr]
            drifted = found.p_value < alpha
            shift = calibration.min_detectable_shift(decider, n, alpha)
            if decider != result.method:
                # significance from K-S; the distance is the size of the change, and its
                # fixed threshold the smallest change worth an alert
                critical = result.threshold
                if shift is not None and result.method == "wasserstein":
                    shift = max(shift, result.threshold)  # normed by the baseline's sd
            else:
                critical = calibration.critical_score(result.method, n, alpha)
            if not result.p_value_test:
                # the fixed distance threshold stays as a minimum effect: on big windows
                # a significant but tiny distance is the baseline's own sampling error
                drifted = drifted and result.score >= result.threshold
                critical = max(critical, result.threshold)
            decided[name] = dataclasses.replace(
                result,
                drifted=bool(drifted),
                threshold=critical,
                p_value=found.p_value,
                alpha=alpha,
                min_detectable_shift=shift,
                shift_unit=calibration.shift_unit(decider),
                decided_by=decider,
            )
        return decided

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
            kind = "categorical" if self.task == Task.MULTICLASS else "numeric"
            check_method(self.config.prediction_method, kind)

    def _test(self, name: str, column: Column, factor: float) -> FeatureDrift:
        method, threshold = self._method(name)
        return self._references[name].test(column, method, threshold, factor)

    def _decided_by(self, name: str, result: FeatureDrift) -> str:
        """The test whose p-value decides a calibrated verdict: the column's own, except
        that a continuous numeric column scored with Evidently's default distance is
        decided by the two-sample K-S test (its null is exact for any shape: heavy tails,
        a mass at zero). The resampled null of the Wasserstein distance was 2x too
        permissive at p < 0.01 and 50x at p < 1e-4 on a zero-inflated lognormal amount;
        the distance stays as the size of the change and its minimum effect."""
        configured = (self.config.prediction_method if name == PREDICTION_KEY
                      else self._method(name)[0])
        reference = self._prediction if name == PREDICTION_KEY else self._references[name]
        if (configured is None and not result.p_value_test and reference is not None
                and reference.column.kind == "numeric" and reference.n_unique > FEW_VALUES):
            return "ks"
        return result.method

    def _prediction_column(self, predictions: np.ndarray) -> Column:
        values = np.asarray(predictions, dtype=float)
        if self.task == Task.MULTICLASS:
            if values.ndim != 2:
                raise DriftError(
                    f"multiclass predictions must be (rows, classes), got shape {values.shape}"
                )
            classes = pd.Series(values.argmax(axis=1), dtype="int64")
            classes[~np.isfinite(values).all(axis=1)] = -1
            return clean_column(PREDICTION_KEY, classes[classes >= 0], "categorical")
        return clean_column(PREDICTION_KEY, pd.Series(values.reshape(-1)), "numeric")

    def _prediction_drift(self, column: Column | None, factor: float) -> FeatureDrift | None:
        if self._prediction is None or column is None:
            return None
        return self._prediction.test(
            column, self.config.prediction_method, self.config.prediction_threshold, factor
        )

    def _performance(self, predictions: np.ndarray | None, labels: np.ndarray | None):
        y, _ = labelled(labels, predictions)
        if len(y) < self.config.min_rows:
            return None
        current = performance_metrics(self.task, labels, predictions)
        cfg = self.performance_config
        level = self.interval_level(len(current))
        intervals = metric_intervals(self.task, labels, predictions, level=level, seed=self.seed)
        return compare(
            current,
            self._baseline_performance,
            cfg.max_drop,
            len(y),
            max_error_increase=cfg.max_error_increase,
            error_floors=error_floors(cfg.max_error_increase_abs, self._label_scale),
            intervals=intervals,
            ci_level=level,
        )

    def interval_level(self, metrics: int) -> float:
        """The two-sided level of each metric's interval: `performance.ci_level` when set;
        else one-sided `performance_alpha` split over the `metrics` (Bonferroni: only the
        whole interval beyond the limit alerts, so one tail counts); else 0.95."""
        if self.performance_config.ci_level is not None:
            return self.performance_config.ci_level
        if self.performance_alpha is None:
            return 0.95
        return 1 - 2 * self.performance_alpha / max(metrics, 1)

    def _by_value(self, name: str) -> bool:
        """True when feature `name` is compared value by value (categorical, or numeric
        with few distinct baseline values): a value outside the baseline's is unseen."""
        ref = self._references[name]
        if ref.column.kind == "categorical":
            return True
        return bool(ref.column.n) and ref.n_unique <= DISCRETE_VALUES

    def _seen(self, columns: Mapping[str, Column]) -> dict[str, Column]:
        """Each column without the values its baseline never had (the same object when
        it has none: nothing is copied in the common case)."""
        out = dict(columns)
        for name, column in columns.items():
            if not column.n or not self._by_value(name):
                continue
            keys = self._references[name].keys
            counts = column.value_counts()
            if keys.issuperset(counts):
                continue
            if column.kind == "numeric":
                keep = np.isin(column.values, np.fromiter(keys, dtype=np.float64, count=len(keys)))
            else:
                keep = np.fromiter((v in keys for v in column.values), dtype=bool,
                                   count=column.n)
            out[name] = Column(column.kind, column.values[keep], column.integer,
                               {k: c for k, c in counts.items() if k in keys})
        return out

    def _quality(self, columns: Mapping[str, Column], seen: Mapping[str, Column],
                 rows: int) -> DataQuality:
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
            by_value = self._by_value(name)
            if by_value and seen[name] is not column:
                unseen = tuple(sorted(_shown(v) for v in set(column.value_counts()) - ref.keys))
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
                missing=rows - column.n,
                unseen_rows=column.n - seen[name].n,
                reference_values=ref.column.n if by_value else 0,
                reference_singletons=self._singletons(name) if by_value else 0,
            )
        return DataQuality(result)

    def _singletons(self, name: str) -> int:
        """Values seen exactly once in the baseline's column (counted once per fit)."""
        if name not in self._singleton_counts:
            counts = self._references[name].column.value_counts().values()
            self._singleton_counts[name] = sum(1 for c in counts if c == 1)
        return self._singleton_counts[name]


def _shown(value: object) -> str:
    """A value as data quality lists it: 3.0 of an integer column as "3"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _require_columns(frame: pd.DataFrame, names: Mapping[str, Kind], what: str) -> None:
    missing = [name for name in names if name not in frame.columns]
    if missing:
        present = ", ".join(map(str, frame.columns)) or "none"
        raise DriftError(
            f"the {what} has no column {', '.join(repr(m) for m in missing)} "
            f"(configured features missing; columns present: {present})"
        )
