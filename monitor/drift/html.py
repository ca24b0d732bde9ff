"""Evidently's own interactive drift report for one window, on demand."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from monitor.errors import DriftError


def render_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
    drift_share: float = 0.5,
) -> str:
    """The HTML page of ``Report([DataDriftPreset()])`` for `current` against `reference`.

    Only the named columns are compared, typed as given. This runs Evidently's full
    report (seconds on large frames): meant for a person asking for it, not for the
    scheduled runs. Raises DriftError when a column is missing or the report fails.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    names = [*numeric, *categorical]
    if not names:
        raise DriftError("render_html needs at least one numeric or categorical column")
    for what, frame in (("reference", reference), ("window", current)):
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise DriftError(f"the {what} has no column {', '.join(map(repr, missing))}")
    definition = DataDefinition(
        numerical_columns=list(numeric), categorical_columns=list(categorical)
    )
    try:
        snapshot = Report([DataDriftPreset(drift_share=drift_share)]).run(
            Dataset.from_pandas(current[names], data_definition=definition),
            Dataset.from_pandas(reference[names], data_definition=definition),
        )
        return snapshot.get_html_str(as_iframe=False)
    except (ValueError, TypeError, KeyError) as err:
        raise DriftError(f"Evidently could not build the drift report: {err}") from err
