"""Frames built from scikit-learn's bundled data sets, and Evidently's own verdicts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_wine

CATEGORICAL = ["region", "channel", "grade"]


@dataclass(frozen=True)
class Frames:
    reference: pd.DataFrame
    current: pd.DataFrame
    numeric: list[str]
    categorical: list[str]


def _with_categories(frame: pd.DataFrame, rng: np.random.Generator, shifted: bool) -> pd.DataFrame:
    """Add a 4-level, a 2-level and an integer-coded categorical column."""
    n = len(frame)
    frame = frame.copy()
    region_p = [0.25, 0.25, 0.25, 0.25] if shifted else [0.4, 0.3, 0.2, 0.1]
    frame["region"] = rng.choice(["north", "south", "east", "west"], n, p=region_p)
    frame["channel"] = rng.choice(["web", "store"], n, p=[0.5, 0.5] if shifted else [0.6, 0.4])
    frame["grade"] = rng.choice([1, 2, 3], n)
    return frame


def breast_cancer_frames(
    reference_rows: int, current_rows: int, shift: float = 0.3, seed: int = 0
) -> Frames:
    """Reference and current windows resampled from load_breast_cancer; in the current
    one the first four of the eight numeric columns move by `shift` standard deviations."""
    data = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    # eight columns keep Evidently's report (the slow side of every comparison) quick
    numeric = list(data.columns[[0, 1, 2, 3, 4, 20, 21, 22]])
    data = data[numeric]
    rng = np.random.default_rng(seed)

    def sample(rows: int, shifted: bool) -> pd.DataFrame:
        frame = data.iloc[rng.integers(0, len(data), rows)].reset_index(drop=True)
        if shifted:
            moved = numeric[:4]
            noise = rng.normal(1.0, 0.1, (rows, len(moved)))
            frame[moved] = frame[moved] + shift * frame[moved].std().to_numpy() * noise
        return _with_categories(frame, rng, shifted)

    return Frames(sample(reference_rows, False), sample(current_rows, True), numeric, CATEGORICAL)


def wine_frames(seed: int = 1) -> Frames:
    """load_wine split by class: a reference of classes 0-1, a window with class 2."""
    data = load_wine(as_frame=True).frame
    rng = np.random.default_rng(seed)
    numeric = [c for c in data.columns if c != "target"]
    reference = _with_categories(data[data.target < 2].drop(columns="target"), rng, False)
    current = _with_categories(data[data.target > 0].drop(columns="target"), rng, True)
    # a low-cardinality numeric column exercises chi-square / Z on numbers
    reference["visits"] = rng.integers(0, 4, len(reference)).astype(float)
    # (within the reference's values: a value it never had leaves the analyzer's test for
    # data quality, where Evidently's chi-square gives p = 0; test_analyzer covers that)
    current["visits"] = rng.choice([0.0, 1.0, 2.0, 3.0], len(current), p=[0.1, 0.2, 0.3, 0.4])
    return Frames(
        reference.reset_index(drop=True),
        current.reset_index(drop=True),
        [*numeric, "visits"],
        CATEGORICAL,
    )


def evidently_verdicts(
    frames: Frames, **preset: Any
) -> tuple[dict[str, tuple[str, float, float, bool]], float]:
    """Per column (method display name, score, threshold, drifted) and the drifted
    share, read out of the snapshot of ``Report([DataDriftPreset(**preset)])``."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=frames.numeric, categorical_columns=frames.categorical
    )
    snapshot = (
        Report([DataDriftPreset(**preset)], include_tests=True)
        .run(
            Dataset.from_pandas(frames.current, data_definition=definition),
            Dataset.from_pandas(frames.reference, data_definition=definition),
        )
        .dict()
    )
    drifted = {
        t["metric_config"]["params"]["column"]: t["status"] == "FAIL"
        for t in snapshot["tests"]
        if t["id"] == "drift"
    }
    columns, share = {}, None
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            name = config["column"]
            columns[name] = (config["method"], metric["value"], config["threshold"], drifted[name])
        elif config["type"].endswith(":DriftedColumnsCount"):
            share = metric["value"]["share"]
    return columns, share
