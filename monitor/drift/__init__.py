"""Drift engine: Evidently's stat tests on a baseline learned once, per window.

Per feature drift, dataset drift (share of drifted features), prediction drift, data
quality and performance against the baseline, as frozen records; and Evidently's own
HTML report on demand. By default each verdict is calibrated to the window's row
count within a false-alarm budget (`calibration`). Evidently is imported lazily (only
for methods we do not compute from the cached reference, and for `render_html`).
"""

from monitor.drift.analyzer import PREDICTION_KEY, DriftAnalyzer
from monitor.drift.calibration import family_alpha
from monitor.drift.html import render_html
from monitor.drift.performance import HIGHER_IS_BETTER, compare, performance_metrics
from monitor.drift.records import (
    DataQuality,
    DriftReport,
    FeatureDrift,
    FeatureQuality,
    MetricChange,
    PerformanceResult,
)
from monitor.drift.stattests import P_VALUE_METHODS

__all__ = [
    "HIGHER_IS_BETTER",
    "P_VALUE_METHODS",
    "PREDICTION_KEY",
    "DataQuality",
    "DriftAnalyzer",
    "DriftReport",
    "FeatureDrift",
    "FeatureQuality",
    "MetricChange",
    "PerformanceResult",
    "compare",
    "family_alpha",
    "performance_metrics",
    "render_html",
]
