"""Segments and fairness: per-group rates, drift and performance; bias with intervals;
explanation disparity. Pure engines (numpy, pandas, scipy): no database, no TensorFlow."""

from monitor.fairness.disparity import DisparityAnalyzer, DisparityReport, FeatureInfluence, ReasonDisparity
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
from monitor.fairness.sampling import StratifiedSample, Stratum, allocate, stratified_sample
from monitor.fairness.segments import SegmentAnalyzer, SegmentReport, SegmentResult

__all__ = [
    "DisparityAnalyzer",
    "DisparityReport",
    "FeatureInfluence",
    "ReasonDisparity",
    "SegmentAnalyzer",
    "SegmentReport",
    "SegmentResult",
    "StratifiedSample",
    "Stratum",
    "allocate",
    "stratified_sample",
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
