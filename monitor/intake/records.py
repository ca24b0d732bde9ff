"""Plain records that cross the intake boundary: validated rows, rejections, outcomes.

Everything here is a frozen dataclass; nothing imports the database, HTTP or TensorFlow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

#: short codes a rejected row can carry (documented in the README)
REASONS = (
    "invalid_json",
    "missing_request_id",
    "unknown_model",
    "model_mismatch",
    "bad_timestamp",
    #: stamped further ahead of the server's clock than server.max_future_skew
    "future_timestamp",
    #: stamped before what the log keeps (scheduler.retention_days)
    "too_old",
    "missing_feature",
    "extra_feature",
    "wrong_type",
    "non_finite",
    "bad_prediction",
    "missing_label",
    "bad_label",
    #: a declared attribute ([models.segments] attributes) absent or null
    "missing_attribute",
    #: an attribute that is not a scalar (text, number or bool), or attributes not an object
    "bad_attribute",
    #: an unexpected error on this row (the detail names the exception class)
    "internal_error",
)
#: not an error: a request id already seen; the first row is kept, never stored twice
DUPLICATE = "duplicate"


@dataclass(frozen=True)
class PredictionRecord:
    """One validated prediction, ready for the log.

    `prediction` is normalized: a float (binary: P(positive); regression: the value),
    a tuple of class scores, or an int class index (multiclass).
    """

    model: str
    request_id: str
    ts: datetime
    features: Mapping[str, Any]
    prediction: Any
    label: Any = None
    #: the declared attributes that are not model inputs (None when none are declared)
    attributes: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class LabelRecord:
    """Ground truth for one request; may arrive before or after its prediction."""

    model: str
    request_id: str
    label: Any


@dataclass(frozen=True)
class Rejection:
    """A row that failed validation: kept in quarantine with the raw text and the reason."""

    raw: str
    reason: str
    detail: str
    source: str
    model: str | None = None
    #: the row's own timestamp when it could be read (runs count their window's rows)
    ts: datetime | None = None


@dataclass(frozen=True)
class IngestResult:
    """What an ingest call did: rows stored, rows quarantined, counts per reason.

    `reasons` also counts `duplicate` rows, which are neither stored nor quarantined.
    """

    accepted: int
    quarantined: int
    reasons: Mapping[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The HTTP answer: ``{"accepted", "quarantined", "reasons"}``."""
        return {
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "reasons": dict(self.reasons),
        }

    def __add__(self, other: IngestResult) -> IngestResult:
        reasons = Counter(self.reasons)
        reasons.update(other.reasons)
        return IngestResult(
            self.accepted + other.accepted, self.quarantined + other.quarantined, dict(reasons)
        )


@dataclass(frozen=True)
class WindowSample:
    """A bounded, seeded sample of one window's valid rows, for the cycle.

    frame: one column per feature (numeric then categorical), index = request_id.
    predictions: (n,) float, or (n, k) class scores for multiclass.
    labels: (n,) with NaN/None where unknown, or None when no sampled row has one.
    attributes: the rows' declared attributes (not model inputs), or None.
    rows: valid rows seen in the window before sampling.
    rejected / reasons: rows of this read that failed validation, and their counts.
    """

    frame: pd.DataFrame
    timestamps: np.ndarray
    predictions: np.ndarray
    labels: np.ndarray | None
    rows: int
    rejected: tuple[Rejection, ...]
    reasons: Mapping[str, int]
    #: one column per `[models.segments] attributes` name, aligned with `frame` (same
    #: index); None when the model declares no attribute
    attributes: pd.DataFrame | None = None
    #: per-row weights (inverse inclusion rates) of a stratified sample, else None
    weights: np.ndarray | None = None
    #: `[models.segments] stratify`: the window's sample stratified by attributes (a
    #: WindowSample with `weights`), drawn beside this uniform one; None otherwise
    stratified: WindowSample | None = None
    #: how the stratified sample was drawn (`monitor.fairness.StratifiedSample`: strata,
    #: rows, rows drawn, weights), reported with the segments
    sampling: Any = None
