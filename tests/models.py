"""A small real model, its baseline data, a config, and traffic: shared by the cycle
and Slack tests (registered as a plugin by tests/conftest.py, trained once a session)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.config import Settings, load_settings

FEATURES = ["mean_radius", "mean_texture", "mean_smoothness", "mean_compactness", "mean_symmetry"]
SHIFTED = ["mean_radius", "mean_texture"]
T0 = datetime(2026, 11, 2, 8, tzinfo=UTC)
WINDOW = timedelta(hours=1)
#: a retention that keeps the tests' traffic stamped from T0 whatever today's date
#: (ingest quarantines rows older than retention as too_old)
RETENTION_DAYS = max(90, (datetime.now(UTC) - T0).days + 30)


@pytest.fixture(scope="session")
def cancer() -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" ", "_"))[FEATURES].astype("float64")
    frame["malignant"] = (data.target == 0).astype(int).to_numpy()
    train = frame.sample(frac=0.6, random_state=1)
    return train.reset_index(drop=True), frame.drop(train.index).reset_index(drop=True)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, cancer) -> Path:
    """A trained dict-input Keras MLP saved as .keras, and its training data as Parquet."""
    import keras

    train, _ = cancer
    keras.utils.set_random_seed(3)
    inputs = {n: keras.Input(shape=(1,), name=n) for n in FEATURES}
    parts = []
    for n in FEATURES:
        norm = keras.layers.Normalization()
        norm.adapt(train[[n]].to_numpy("float32"))
        parts.append(norm(inputs[n]))
    x = keras.layers.Dense(16, activation="relu")(keras.layers.Concatenate()(parts))
    out = keras.layers.Dense(1, activation="sigmoid")(x)
    net = keras.Model(inputs, out)
    net.compile(optimizer=keras.optimizers.Adam(0.02), loss="binary_crossentropy")
    net.fit({n: train[[n]].to_numpy("float32") for n in FEATURES}, train["malignant"].to_numpy("float32"),
            epochs=15, verbose=0)
    path = tmp_path_factory.mktemp("model")
    net.save(path / "model.keras")
    train.to_parquet(path / "train.parquet", index=False)
    return path


CONFIG = """
[database]
url = "{url}"
[scheduler]
retention_days = """ + str(RETENTION_DAYS) + """
[[models]]
name = "cancer"
path = "{model_dir}/model.keras"
task = "binary_classification"
label = "malignant"
window = "1h"
schedule = "interval:1h"
sample_size = 300
[models.features]
numeric = {features}
[models.baseline]
data = "{model_dir}/train.parquet"
max_rows = 400
[models.attribution]
max_samples = 60
[models.alerts]
resolve_after = 2
"""


@pytest.fixture
def settings(db_url, model_dir, write_config) -> Settings:
    body = CONFIG.format(url=db_url, model_dir=model_dir, features=str(FEATURES).replace("'", '"'))
    return load_settings(write_config(body), env={})


@pytest.fixture
def send_traffic(cancer) -> Callable[..., list[str]]:
    """Ingest one window of predictions (optionally shifted, with labels) through intake."""
    import json

    from monitor.intake.ingest import ingest_predictions, parse_body

    _, held_out = cancer

    def send(engine, settings, start: datetime, *, n: int = 200, shift: bool = False,
             seed: int = 0, labels: bool = True, bad: int = 0) -> list[str]:
        rng = np.random.default_rng(seed)
        rows = held_out.sample(n, replace=True, random_state=seed).reset_index(drop=True)
        if shift:
            rows["mean_radius"] *= 1.5
            rows["mean_texture"] += 8.0
        records, ids = [], []
        for i, row in rows.iterrows():
            rid = f"{start:%H}-{seed}-{i}"
            ids.append(rid)
            ts = start + timedelta(seconds=float(rng.uniform(0, 3599)))
            record = {"model": "cancer", "request_id": rid, "timestamp": ts.isoformat(),
                      "features": {f: float(row[f]) for f in FEATURES},
                      "prediction": float(rng.uniform(0.3, 0.7) if shift else 0.8 * row["malignant"] + 0.1)}
            if labels:
                record["label"] = int(row["malignant"])
            records.append(record)
        for j in range(bad):
            records.append({"model": "cancer", "request_id": f"bad-{j}", "timestamp": start.isoformat(),
                            "features": {"mean_radius": "x"}, "prediction": 0.5})
        body = json.dumps(records).encode()
        ingest_predictions(engine, settings.models, parse_body(body), source="test")
        return ids

    return send
