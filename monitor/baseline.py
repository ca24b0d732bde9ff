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


#: rows named in a message about incomplete or invalid baseline rows
SHOWN_ROWS = 5


@dataclass(frozen=True)
class BaselineSummary:
    id: int
    model: str
    version: int
    rows: int
    source: str
    attribution_method: str | None
    #: mean |attribution| per feature as stored (None where it could not be computed)
    importance: dict[str, float | None] | None
    performance: dict[str, Any] | None
    #: what the operator should know about the data (rows left out, no label column)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reference:
    """Baseline data read from a file: features (config order), labels, and notes."""

    frame: pd.DataFrame
    labels: np.ndarray | None
    notes: tuple[str, ...] = ()
    #: the columns named in `[models.segments] attributes` (None when the file has none)
    attributes: pd.DataFrame | None = None


def _row_names(path: Path, index: pd.Index) -> str:
    """'row 3 (line 4)' style positions of data rows, the first few only."""
    csv = path.suffix.lower() in (".csv", ".txt")
    shown = [f"{i + 1} (line {i + 2})" if csv else str(i + 1) for i in list(index[:SHOWN_ROWS])]
    more = f" and {len(index) - SHOWN_ROWS} more" if len(index) > SHOWN_ROWS else ""
    return "row" + ("s " if len(index) > 1 else " ") + ", ".join(shown) + more


def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise ConfigError([f"baseline data {path} does not exist (models.baseline.data or --data)"])
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv", ".txt"):
        raise ConfigError([f"baseline data {path}: expected a .csv or .parquet file"])
    if path.stat().st_size == 0:
        raise ConfigError([f"baseline data {path}: the file is empty (0 bytes)"])
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except pd.errors.EmptyDataError as err:
        raise ConfigError([f"baseline data {path}: has no header row and no data"]) from err
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ConfigError([f"baseline data {path}: cannot be parsed as CSV: {err}"]) from err
    except (OSError, ValueError) as err:
        # pyarrow's ArrowInvalid is a ValueError: not a Parquet file, truncated, ...
        raise ConfigError([f"baseline data {path}: cannot be read: {str(err).splitlines()[0]}"]) from err


def read_reference(path: Path, model: ModelConfig) -> Reference:
    """The feature columns (config order) and the label column of a CSV/Parquet file.

    Raises ConfigError naming the file (and feature and rows) when the file is empty or
    unreadable, lacks a feature column, or has non-numeric text in a numeric feature.
    A missing label column is a note (performance can then never be compared).
    """
    frame = _read_table(path)
    names = list(model.features.names)
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ConfigError([f"baseline data {path}: missing feature column(s) {missing}"])
    problems = []
    for name in model.features.numeric:
        column = frame[name]
        numbers = pd.to_numeric(column, errors="coerce")
        bad = column.index[numbers.isna() & column.notna()]
        if len(bad):
            problems.append(
                f"baseline data {path}: feature {name!r} is declared numeric but {_row_names(path, bad)} "
                f"hold(s) text such as {str(column[bad[0]])[:40]!r} (list it under features.categorical?)"
            )
        else:
            frame[name] = numbers.astype("float64")
    if problems:
        raise ConfigError(problems)
    labels, notes = None, []
    if model.label and model.label in frame.columns:
        labels = frame[model.label].to_numpy()
    elif model.label:
        notes.append(
            f"baseline data {path} has no label column {model.label!r}: the baseline has no "
            "performance, so performance can never alert"
        )
        log.warning("%s", notes[-1])
    attributes, note = _reference_attributes(frame, model, path)
    if note:
        notes.append(note)
        log.warning("%s", note)
    return Reference(frame[names].copy(), labels, tuple(notes), attributes)


def _reference_attributes(
    frame: pd.DataFrame, model: ModelConfig, path: Path
) -> tuple[pd.DataFrame | None, str | None]:
    """The baseline file's attribute columns, and a note when some are absent (segments
    and fairness then run without a baseline for them: no drift against it)."""
    declared = list(model.segments.attributes)
    if not declared:
        return None, None
    present = [n for n in declared if n in frame.columns]
    absent = [n for n in declared if n not in frame.columns]
    note = None
    if absent:
        note = (
            f"baseline data {path} has no column for the segment attribute(s) {absent}: "
            "segments and fairness are analyzed without a baseline for them (no drift "
            "against the baseline, reference groups taken from each window)"
        )
    if not present:
        return None, note
    return frame[present].astype(object).where(frame[present].notna(), None), note


def complete_rows(frame: pd.DataFrame, source: str) -> tuple[np.ndarray, str | None]:
    """A mask of rows with every feature present, and a note on the others (or None).

    The model cannot predict on a missing value, so incomplete rows only count in the
    baseline's missing shares (production rows with one are logged and counted the same
    way, and left out of attributions).
    """
    incomplete = frame.isna().any(axis=1).to_numpy()
    if not incomplete.any():
        return ~incomplete, None
    index = frame.index[incomplete]
    where = {c: int(frame.loc[incomplete, c].isna().sum()) for c in frame.columns}
    columns = ", ".join(f"{c} ({n})" for c, n in where.items() if n)
    # the index is the row's position in the file (kept through the max_rows subsample)
    positions = _row_names(Path(source), index) if pd.api.types.is_integer_dtype(index) \
        else f"ids {list(index[:SHOWN_ROWS])}"
    note = (
        f"{int(incomplete.sum())} of {len(frame)} baseline rows have missing values ({columns}; "
        f"{positions}): they count in the missing shares but are left out of predictions, "
        "attributions and performance (production rows with a missing value are judged against "
        "these shares in data quality)"
    )
    return ~incomplete, note


def feature_stats(frame: pd.DataFrame, model: ModelConfig) -> dict[str, Any]:
    """Per-feature statistics kept with the baseline (and shown in reports).

    `rows` and `missing` are the counts behind `missing_share`: data quality tests a
    window's missing values against them (the share is an estimate from `rows` rows)."""
    stats: dict[str, Any] = {}
    for name in model.features.numeric:
        col = pd.to_numeric(frame[name], errors="coerce")
        valid = col.dropna()
        q = valid.quantile([0.01, 0.5, 0.99]).tolist() if len(valid) else [None] * 3
        stats[name] = {
            "kind": "numeric",
            "missing_share": float(col.isna().mean()),
            "rows": len(col),
            "missing": int(col.isna().sum()),
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
            "rows": len(col),
            "missing": int(col.isna().sum()),
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
    notes: tuple[str, ...] = (),
    attributes: pd.DataFrame | None = None,
) -> BaselineSummary:
    """Predict, explain, summarise and store a baseline for `frame`; make it active.

    Rows with a missing feature count in the statistics only (see `complete_rows`);
    `notes` (and any added here) are returned on the summary for the operator.
    """
    from monitor.attribution import explain_for_model, global_importance
    from monitor.drift import performance_metrics
    from monitor.model import check_features, load_model

    step = progress or (lambda _msg: None)
    if len(frame) > model.baseline.max_rows:
        keep = np.random.default_rng(model.seed).choice(len(frame), model.baseline.max_rows, replace=False)
        keep.sort()
        frame = frame.iloc[keep]
        labels = labels[keep] if labels is not None else None
        attributes = attributes.iloc[keep] if attributes is not None else None
    notes = list(notes)
    stats = feature_stats(frame, model)
    complete, note = complete_rows(frame[list(model.features.names)], source)
    if note:
        log.warning("model %s: %s", model.name, note)
        notes.append(note)
    if not complete.any():
        raise ConfigError([f"baseline data {source}: no row has every feature present"])
    frame = frame[complete].reset_index(drop=True)
    labels = labels[complete] if labels is not None else None
    if attributes is not None:
        attributes = attributes[complete].reset_index(drop=True)
    step("loading model")
    loaded = load_model(model.path)
    notes.extend(check_features(loaded, model.features.numeric, model.features.categorical,
                                where=f"models[{model.name}].features"))
    step("predicting")
    predictions = model_predictions(loaded, frame, model)
    step("explaining")
    explained = frame.iloc[: model.attribution.max_samples]
    explanation = explain_for_model(model, loaded, explained, frame)
    importance = {k: _f(v) for k, v in global_importance(explanation.values).items()}
    step("statistics")
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
            attributes=attributes,
        )
        session.flush()
        summary = BaselineSummary(
            id=row.id,
            model=model.name,
            version=row.version,
            rows=len(frame),
            source=source,
            attribution_method=explanation.method,
            # what the database holds, so the CLI never shows a number it did not store
            importance=dict(row.global_importance) if row.global_importance is not None else None,
            performance=performance,
            notes=tuple(notes),
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
    reference = read_reference(Path(path), model)
    if reference.frame.empty:
        raise ConfigError([f"baseline data {path}: has no rows"])
    return compute_and_store(
        settings,
        engine,
        model,
        reference.frame,
        reference.labels,
        source=str(path),
        created_by=created_by,
        progress=progress,
        notes=reference.notes,
        attributes=reference.attributes,
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
        attributes=window.attributes.reset_index(drop=True) if window.attributes is not None else None,
    )
    return summary.id
