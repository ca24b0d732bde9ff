"""Segments and fairness: per-group rates, drift and performance; bias with intervals;
explanation disparity. Pure engines (numpy, pandas, scipy): no database, no TensorFlow."""

from monitor.fairness.metrics import FairnessAnalyzer
from monitor.fairness.outcome import Outcome
from monitor.fairness.records import MISSING, FairnessError, Metric
from monitor.fairness.report import (
    AttributeFairness,
    Bands,
    BiasDrift,
    BiasFinding,
    FairnessReport,
    GroupFairness,
    GroupMetric,
)

__all__ = [
    "MISSING",
    "AttributeFairness",
    "Bands",
    "BiasDrift",
    "BiasFinding",
    "FairnessAnalyzer",
    "FairnessError",
    "FairnessReport",
    "GroupFairness",
    "GroupMetric",
    "Metric",
    "Outcome",
]
