"""Intake: predictions in (HTTP, files, client, SQL), validation with quarantine, sampling.

The cycle calls `read_window` for a window's bounded sample and `quarantine_rows` to
keep the rows that failed validation, in its own transaction.
"""

from monitor.intake.records import (
    IngestResult,
    LabelRecord,
    PredictionRecord,
    Rejection,
    WindowSample,
)
from monitor.intake.sources import read_window
from monitor.store.predictions import quarantine_rows

__all__ = [
    "IngestResult",
    "LabelRecord",
    "PredictionRecord",
    "Rejection",
    "WindowSample",
    "quarantine_rows",
    "read_window",
]
