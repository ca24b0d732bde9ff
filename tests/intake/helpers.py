"""Shared builders for intake tests: model configs and rows from real sklearn data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer, load_iris

from monitor.config import ModelConfig, Secrets, Settings

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NUMERIC = ("mean_radius", "mean_texture", "mean_area", "mean_smoothness")
CLINICS = ("north", "south", "east")


def model_config(name: str = "cancer", **extra: Any) -> ModelConfig:
    """A binary model over four breast-cancer features and a categorical clinic."""
    data = {
        "name": name,
        "path": "model.keras",
        "task": "binary_classification",
        "features": {"numeric": list(NUMERIC), "categorical": ["clinic"]},
        **extra,
    }
    return ModelConfig(**data)


def iris_config(**extra: Any) -> ModelConfig:
    data = {
        "name": "iris",
        "path": "model.keras",
        "task": "multiclass_classification",
        "class_names": ["setosa", "versicolor", "virginica"],
        "features": {"numeric": ["sl", "sw", "pl", "pw"]},
        **extra,
    }
    return ModelConfig(**data)


def replay_retention_days(start: datetime = T0) -> int:
    """A `scheduler.retention_days` that keeps traffic stamped from `start` on (the tests
    replay March 2026), counted from today so that it keeps doing so as the calendar moves:
    ingest quarantines older rows as too_old."""
    return (datetime.now(UTC) - start).days + 2


#: the `[scheduler]` table of a test config.toml whose rows are stamped from T0 on
REPLAY_SCHEDULER = f"[scheduler]\nretention_days = {replay_retention_days()}\n"


def settings(*models: ModelConfig, env: dict[str, str] | None = None, **sections: Any) -> Settings:
    """Settings of `models`; unless `scheduler` is given, its retention keeps T0's traffic."""
    sections.setdefault("scheduler", {"retention_days": replay_retention_days()})
    return Settings(models=models, secrets=Secrets.from_env(env or {}), **sections)


def cancer_rows(
    n: int = 100,
    start: datetime = T0,
    step: timedelta = timedelta(seconds=1),
    prefix: str = "r",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Valid prediction records built from the breast-cancer data (cycled)."""
    data = load_breast_cancer()
    x = data.data[:, [0, 1, 3, 4]]
    rng = np.random.default_rng(seed)
    # a fixed logistic score on standardized radius: a real, monotone "model"
    z = (x[:, 0] - x[:, 0].mean()) / x[:, 0].std()
    score = 1 / (1 + np.exp(-2 * z))
    rows = []
    for i in range(n):
        j = i % len(x)
        rows.append(
            {
                "model": "cancer",
                "request_id": f"{prefix}{i}",
                "timestamp": (start + i * step).isoformat(),
                "features": {
                    **{f: float(v) for f, v in zip(NUMERIC, x[j], strict=True)},
                    "clinic": CLINICS[int(rng.integers(3))],
                },
                "prediction": float(score[j]),
                "label": int(data.target[j]),
            }
        )
    return rows


def iris_rows(n: int = 60) -> list[dict[str, Any]]:
    data = load_iris()
    rows = []
    for i in range(n):
        j = i % len(data.data)
        scores = [0.1, 0.1, 0.1]
        scores[int(data.target[j])] = 0.8
        rows.append(
            {
                "model": "iris",
                "request_id": f"i{i}",
                "timestamp": (T0 + timedelta(seconds=i)).isoformat(),
                "features": dict(
                    zip(["sl", "sw", "pl", "pw"], map(float, data.data[j]), strict=True)
                ),
                "prediction": scores if i % 2 else int(data.target[j]),
            }
        )
    return rows
