"""Intake: predictions in (HTTP, files, client, SQL), validation with quarantine, sampling.

The cycle calls `read_window` for a window's bounded sample; the rows that failed
validation come back in it and the store keeps them with the run.
"""

from monitor.intake.records import (
    IngestResult,
    LabelRecord,
    PredictionRecord,
    Rejection,
    WindowSample,
)
from monitor.intake.sources import FileSource, LogSource, SqlSource, read_window, source_for

__all__ = [
    "IngestResult",
    "LabelRecord",
    "PredictionRecord",
    "Rejection",
    "FileSource",
    "LogSource",
    "SqlSource",
    "WindowSample",
    "read_window",
    "source_for",
]
