"""Baselines: what "normal" looks like for a model, computed once and versioned.

A baseline holds a bounded reference sample, per-feature statistics, the model's own
predictions on the sample, their attributions and global importance, and the
performance on it when labels exist. `monitor baseline MODEL` builds one from the
training data; `adopt_run_as_baseline` builds one from a monitored window (the
"Expected change — adopt as new baseline" answer in Slack).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from monitor.config import ModelConfig, Settings
from monitor.errors import ConfigError, RunError
from monitor.store import transaction
from monitor.store.baselines import save_baseline
from monitor.vocab import Task

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BaselineSummary:
    id: int
    model: str
    version: int
    rows: int
    source: str
    attribution_method: str | None
    importance: dict[str, float] | None
    performance: dict[str, Any] | None


def read_reference(path: Path, model: ModelConfig) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The feature columns (config order) and the label column of a CSV/Parquet file."""
    if not path.exists():
        raise ConfigError([f"baseline data {path} does not exist (models.baseline.data or --data)"])
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    elif suffix in (".csv", ".txt"):
        frame = pd.read_csv(path)
    else:
        raise ConfigError([f"baseline data {path}: expected a .csv or .parquet file"])
    names = list(model.features.names)
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ConfigError([f"baseline data {path}: missing feature column(s) {missing}"])
    labels = None
    if model.label and model.label in frame.columns:
        labels = frame[model.label].to_numpy()
    return frame[names].copy(), labels


def feature_stats(frame: pd.DataFrame, model: ModelConfig) -> dict[str, Any]:
    """Per-feature statistics kept with the baseline (and shown in reports)."""
    stats: dict[str, Any] = {}
    for name in model.features.numeric:
        col = pd.to_numeric(frame[name], errors="coerce")
        valid = col.dropna()
        q = valid.quantile([0.01, 0.5, 0.99]).tolist() if len(valid) else [None] * 3
        stats[name] = {
            "kind": "numeric",
            "missing_share": float(col.isna().mean()),
            "mean": _f(valid.mean()),
            "std": _f(valid.std()),
            "min": _f(valid.min()),
            "max": _f(valid.max()),
            "p01": _f(q[0]),
            "p50": _f(q[1]),
            "p99": _f(q[2]),
        }
    for name in model.features.categorical:
        col = frame[name]
        counts = col.dropna().astype(str).value_counts().head(50)
        stats[name] = {
            "kind": "categorical",
            "missing_share": float(col.isna().mean()),
            "categories": {str(k): int(v) for k, v in counts.items()},
        }
    return stats


def _f(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def model_predictions(loaded: Any, frame: pd.DataFrame, model: ModelConfig) -> np.ndarray:
    """What the model predicts, in the form the prediction log keeps.

    Binary: P(positive) per row; regression: the value; multiclass: (n, k) scores.
    """
    if model.task == Task.MULTICLASS:
        return np.asarray(loaded.predict_frame(frame), dtype=float)
    return np.asarray(loaded.score(frame, model.task, None), dtype=float).reshape(-1)


def compute_and_store(
    settings: Settings,
    engine: Engine,
    model: ModelConfig,
    frame: pd.DataFrame,
    labels: np.ndarray | None,
    *,
    source: str,
    created_by: str,
    progress: Progress | None = None,
) -> BaselineSummary:
    """Predict, explain, summarise and store a baseline for `frame`; make it active."""
    from monitor.attribution import explain_for_model, global_importance
    from monitor.drift import performance_metrics
    from monitor.model import load_model

    step = progress or (lambda _msg: None)
    if len(frame) > model.baseline.max_rows:
        keep = np.random.default_rng(model.seed).choice(len(frame), model.baseline.max_rows, replace=False)
        keep.sort()
        frame = frame.iloc[keep].reset_index(drop=True)
        labels = labels[keep] if labels is not None else None
    frame = frame.reset_index(drop=True)
    step("loading model")
    loaded = load_model(model.path)
    step("predicting")
    predictions = model_predictions(loaded, frame, model)
    step("explaining")
    explained = frame.iloc[: model.attribution.max_samples]
    explanation = explain_for_model(model, loaded, explained, frame)
    importance = {k: float(v) for k, v in global_importance(explanation.values).items()}
    step("statistics")
    stats = feature_stats(frame, model)
    performance = None
    if labels is not None:
        performance = performance_metrics(model.task, labels, predictions)
    step("storing")
    with transaction(engine) as session:
        row = save_baseline(
            session,
            model=model.name,
            task=model.task,
            source=source,
            created_by=created_by,
            sample=frame,
            predictions=predictions,
            labels=labels,
            feature_stats=stats,
            attributions=explanation.values.reset_index(drop=True),
            attribution_method=explanation.method,
            importance=importance,
            performance=performance,
        )
        summary = BaselineSummary(
            id=row.id,
            model=model.name,
            version=row.version,
            rows=len(frame),
            source=source,
            attribution_method=explanation.method,
            importance=importance,
            performance=performance,
        )
    log.info(
        "baseline v%d stored for %s: %d rows from %s (attributions: %s)",
        summary.version,
        model.name,
        summary.rows,
        source,
        summary.attribution_method,
    )
    return summary


def build_baseline(
    settings: Settings,
    engine: Engine,
    model_name: str,
    data: Path | None = None,
    *,
    created_by: str = "cli",
    progress: Progress | None = None,
) -> BaselineSummary:
    """`monitor baseline`: a new active baseline from the training data file."""
    model = settings.model(model_name)
    path = data or model.baseline.data
    if path is None:
        raise ConfigError([f"models[{model.name}].baseline.data: not set; pass --data PATH"])
    frame, labels = read_reference(Path(path), model)
    if frame.empty:
        raise ConfigError([f"baseline data {path}: has no rows"])
    return compute_and_store(
        settings,
        engine,
        model,
        frame,
        labels,
        source=str(path),
        created_by=created_by,
        progress=progress,
    )


def adopt_run_as_baseline(settings: Settings, engine: Engine, run_id: int, *, created_by: str) -> int:
    """Make the window of run `run_id` the model's new baseline; returns the baseline id."""
    from monitor.intake import read_window
    from monitor.store.runs import get_run

    with transaction(engine) as session:
        run = get_run(session, run_id)
        if run is None:
            raise RunError(f"run {run_id} does not exist")
        name, start, end = run.model, run.window_start, run.window_end
    model = settings.model(name)
    window = read_window(model, engine, start, end)
    if window.frame.empty:
        raise RunError(f"run {run_id}: the window {start} .. {end} has no rows left to adopt")
    summary = compute_and_store(
        settings,
        engine,
        model,
        window.frame.reset_index(drop=True),
        window.labels,
        source=f"run:{run_id}",
        created_by=created_by,
    )
    return summary.id
