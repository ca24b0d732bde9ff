"""Baselines in the database: versioned, one active per model.

The reference sample (features, the model's predictions, labels) and its attributions
are kept as Parquet bytes; statistics, importance and performance as JSON.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from monitor.store.tables import Baseline, Model
from monitor.vocab import PREDICTION_KEY

PRED = PREDICTION_KEY
LABEL = "__label__"
#: prefix of the stored sample's attribute columns ([models.segments] attributes)
ATTR = "__attr__"


@dataclass(frozen=True)
class BaselineData:
    """An active baseline, decoded for the analyzers."""

    id: int
    model: str
    version: int
    created_at: datetime
    source: str
    sample: pd.DataFrame
    predictions: np.ndarray
    labels: np.ndarray | None
    attributions: pd.DataFrame | None
    attribution_method: str | None
    importance: Mapping[str, float] | None
    performance: Mapping[str, Any] | None
    feature_stats: Mapping[str, Any]
    #: the reference rows' attributes that are not model inputs (aligned with `sample`),
    #: None when the baseline data had none
    attributes: pd.DataFrame | None = None


def frame_to_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(buffer, index=False)
    return buffer.getvalue()


def bytes_to_frame(data: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data))


def ensure_model(session: Session, name: str, task: str) -> Model:
    """The model's row, created on first use."""
    model = session.scalars(select(Model).where(Model.name == name)).first()
    if model is None:
        model = Model(name=name, task=task)
        session.add(model)
        session.flush()
    return model


def save_baseline(
    session: Session,
    *,
    model: str,
    task: str,
    source: str,
    created_by: str,
    sample: pd.DataFrame,
    predictions: np.ndarray,
    labels: np.ndarray | None,
    feature_stats: Mapping[str, Any],
    attributions: pd.DataFrame | None,
    attribution_method: str | None,
    importance: Mapping[str, float] | None,
    performance: Mapping[str, Any] | None,
    attributes: pd.DataFrame | None = None,
) -> Baseline:
    """Store a new version and make it the active one; returns the row."""
    row = ensure_model(session, model, task)
    version = (session.scalar(select(func.max(Baseline.version)).where(Baseline.model_id == row.id)) or 0) + 1
    session.execute(update(Baseline).where(Baseline.model_id == row.id).values(active=False))
    stored = sample.reset_index(drop=True).copy()
    preds = np.asarray(predictions, dtype=float)
    if preds.ndim == 1:
        stored[PRED] = preds
    else:
        for k in range(preds.shape[1]):
            stored[f"{PRED}{k}"] = preds[:, k]
    if labels is not None:
        stored[LABEL] = pd.Series(labels).astype("float64" if _numeric(labels) else "string").values
    if attributes is not None:
        for name in attributes.columns:
            stored[f"{ATTR}{name}"] = _attribute_column(attributes[name])
    baseline = Baseline(
        model_id=row.id,
        version=version,
        active=True,
        created_by=created_by,
        source=source,
        rows=len(sample),
        sample=frame_to_bytes(stored),
        feature_stats=dict(feature_stats),
        attributions=frame_to_bytes(attributions) if attributions is not None else None,
        attribution_method=attribution_method,
        global_importance=dict(importance) if importance is not None else None,
        performance=dict(performance) if performance is not None else None,
    )
    session.add(baseline)
    session.flush()
    return baseline


def _attribute_column(column: pd.Series) -> np.ndarray:
    """An attribute column Parquet can hold: numbers as floats, anything else as text."""
    if _numeric(column.to_numpy()):
        return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    return column.map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v)).to_numpy(
        dtype=object
    )


def _numeric(values: Any) -> bool:
    return pd.api.types.is_numeric_dtype(pd.Series(values).dropna().infer_objects())


def active_baseline(session: Session, model: str) -> BaselineData | None:
    """The model's active baseline, decoded; None when it has none."""
    row = session.execute(
        select(Baseline, Model.name)
        .join(Model, Model.id == Baseline.model_id)
        .where(Model.name == model, Baseline.active.is_(True))
    ).first()
    return decode(row[0], row[1]) if row else None


def decode(row: Baseline, model: str) -> BaselineData:
    stored = bytes_to_frame(row.sample)
    pred_cols = [c for c in stored.columns if c.startswith(PRED)]
    if pred_cols == [PRED]:
        predictions = stored[PRED].to_numpy(dtype=float)
    else:
        ordered = sorted(pred_cols, key=lambda c: int(c.removeprefix(PRED)))
        predictions = stored[ordered].to_numpy(dtype=float)
    labels = stored[LABEL].to_numpy() if LABEL in stored else None
    attr_cols = [c for c in stored.columns if c.startswith(ATTR)]
    attributes = None
    if attr_cols:
        attributes = stored[attr_cols].rename(columns=lambda c: c.removeprefix(ATTR)).astype(object)
    sample = stored.drop(columns=[*pred_cols, *([LABEL] if LABEL in stored else []), *attr_cols])
    return BaselineData(
        id=row.id,
        model=model,
        version=row.version,
        created_at=row.created_at,
        source=row.source,
        sample=sample,
        predictions=predictions,
        labels=labels,
        attributions=bytes_to_frame(row.attributions) if row.attributions else None,
        attribution_method=row.attribution_method,
        importance=row.global_importance,
        performance=row.performance,
        feature_stats=row.feature_stats,
        attributes=attributes,
    )
