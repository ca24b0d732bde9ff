"""Performance without labels (CBPE, DLE) and with them (realized, calibration).

Pure engines: numpy, pandas and scikit-learn only; no database, no TensorFlow. See
`PerformanceEstimator` for the entry point.
"""

from monitor.estimation.calibration import (
    brier_score,
    expected_calibration_error,
    reliability_bins,
)
from monitor.estimation.cbpe import CBPE
from monitor.estimation.dle import DLE
from monitor.estimation.estimator import PerformanceEstimator
from monitor.estimation.realized import realized_metrics
from monitor.estimation.records import (
    HIGHER_IS_BETTER,
    CalibrationChoice,
    Estimate,
    EstimationError,
    FitSummary,
    Method,
    MetricEstimate,
    Realized,
    ReliabilityBin,
    Task,
)

__all__ = [
    "CBPE",
    "DLE",
    "HIGHER_IS_BETTER",
    "CalibrationChoice",
    "Estimate",
    "EstimationError",
    "FitSummary",
    "MetricEstimate",
    "Method",
    "PerformanceEstimator",
    "Realized",
    "ReliabilityBin",
    "Task",
    "brier_score",
    "expected_calibration_error",
    "realized_metrics",
    "reliability_bins",
]
