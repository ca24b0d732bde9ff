"""Shared vocabulary of the fairness and segment engines: error, metric names, JSON helpers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Any

import numpy as np

from monitor.errors import MonitorError

#: the group key of rows whose attribute value is missing (they join no group)
MISSING = "(missing)"


class FairnessError(MonitorError):
    """Fairness or segment metrics cannot be computed from the given data or settings."""


class Metric(StrEnum):
    """A per-group fairness metric. Lower values are worse for the group in every one."""

    SELECTION_RATE = "selection_rate"
    DISPARATE_IMPACT = "disparate_impact"
    PARITY_DIFFERENCE = "statistical_parity_difference"
    TPR_DIFFERENCE = "true_positive_rate_difference"
    FPR_DIFFERENCE = "false_positive_rate_difference"
    AVERAGE_ODDS = "average_odds_difference"

    @property
    def is_ratio(self) -> bool:
        return self is Metric.DISPARATE_IMPACT

    @property
    def needs_labels(self) -> bool:
        return self in (Metric.TPR_DIFFERENCE, Metric.FPR_DIFFERENCE, Metric.AVERAGE_ODDS)


def plain(value: Any) -> Any:
    """A JSON-safe scalar: numpy -> Python, NaN/inf -> None, enums -> their value."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def frozen(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    """A read-only copy of `mapping` (for frozen dataclass fields)."""
    return MappingProxyType(dict(mapping))


def group_keys(values: Any) -> np.ndarray:
    """Attribute values as text group keys (object array); missing ones become MISSING."""
    series = np.asarray(values, dtype=object).reshape(-1)
    out = np.empty(len(series), dtype=object)
    for i, value in enumerate(series):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out[i] = MISSING
        elif isinstance(value, float) and value.is_integer():
            out[i] = str(int(value))
        else:
            out[i] = str(value)
    return out


def as_weights(weights: Any, rows: int) -> np.ndarray:
    """Row weights as floats (ones when None); FairnessError on a bad shape or value."""
    if weights is None:
        return np.ones(rows)
    w = np.asarray(weights, dtype=float).reshape(-1)
    if len(w) != rows:
        raise FairnessError(f"{len(w)} weights for {rows} rows: they must be aligned by row")
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise FairnessError("weights must be finite and positive")
    return w
