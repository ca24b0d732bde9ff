"""`monitor ingest` on JSONL, CSV, Parquet and TFRecord PredictionLog files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from sqlalchemy import Engine

from monitor.intake.files import iter_file
from monitor.store.predictions import count_predictions, quarantined
from tests.intake.helpers import NUMERIC, cancer_rows, model_config

CONFIG = """
[database]
url = "{url}"
[[models]]
name = "cancer"
path = "model.keras"
task = "binary_classification"
[models.features]
numeric = ["mean_radius", "mean_texture", "mean_area", "mean_smoothness"]
categorical = ["clinic"]
"""


def test_ingest_command_reads_jsonl_csv_and_parquet(
    db_url, engine: Engine, tmp_path: Path, write_config, run_monitor
) -> None:
    write_config(CONFIG.format(url=db_url))
    rows = cancer_rows(30)
    lines = [orjson.dumps(r) for r in rows[:10]] + [b"{broken"]
    (tmp_path / "a.jsonl").write_bytes(b"\n".join(lines))
    flat = pd.DataFrame(
        [
            {
                **r["features"],
                "request_id": r["request_id"],
                "timestamp": r["timestamp"],
                "prediction": r["prediction"],
            }
            for r in rows[10:]
        ]
    )
    flat.iloc[:10].to_csv(tmp_path / "b.csv", index=False)
    flat.iloc[10:].to_parquet(tmp_path / "c.parquet")
    proc = run_monitor(
        "ingest", "cancer", "a.jsonl", "b.csv", "c.parquet", "a.jsonl", "--no-progress", check=True
    )
    # a.jsonl twice: its rows are duplicates the second time, its broken line is kept twice
    assert "cancer: 30 accepted, 2 quarantined" in proc.stdout
    assert "duplicate: 10" in proc.stdout and "invalid_json: 2" in proc.stdout
    assert count_predictions(engine, "cancer") == 30
    assert [q.reason for q in quarantined(engine)] == ["invalid_json", "invalid_json"]


def _tfrecord(path: Path, payloads: list[bytes]) -> None:
    with open(path, "wb") as handle:
        for payload in payloads:
            handle.write(struct.pack("<Q", len(payload)) + b"\0" * 4 + payload + b"\0" * 4)


def test_prediction_log_tfrecord(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    from tensorflow_serving.apis import prediction_log_pb2

    rows = cancer_rows(3)
    predict = prediction_log_pb2.PredictionLog()
    predict.log_metadata.timestamp_secs = 1_770_000_000
    for name in NUMERIC:
        values = np.array([[r["features"][name]] for r in rows], dtype=np.float32)
        predict.predict_log.request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
    clinic = np.array([r["features"]["clinic"].encode() for r in rows])
    predict.predict_log.request.inputs["clinic"].CopyFrom(tf.make_tensor_proto(clinic))
    scores = np.array([[r["prediction"]] for r in rows], dtype=np.float32)
    predict.predict_log.response.outputs["probabilities"].CopyFrom(tf.make_tensor_proto(scores))
    classify = prediction_log_pb2.PredictionLog()
    example = classify.classify_log.request.input.example_list.examples.add()
    for name in NUMERIC:
        example.features.feature[name].float_list.value.append(1.5)
    example.features.feature["clinic"].bytes_list.value.append(b"north")
    result = classify.classify_log.response.result.classifications.add()
    for label, score in (("0", 0.3), ("1", 0.7)):
        cls = result.classes.add()
        cls.label, cls.score = label, score
    path = tmp_path / "prediction_logs-00000"
    _tfrecord(path, [predict.SerializeToString(), b"junk", classify.SerializeToString()])
    out = list(iter_file(path, model_config(), "tfrecord"))
    assert len(out) == 5
    first, _ = out[0]
    assert first["features"]["clinic"] == rows[0]["features"]["clinic"]
    assert first["prediction"] == pytest.approx(rows[0]["prediction"], rel=1e-6)
    assert first["timestamp"] == 1_770_000_000 and first["request_id"].endswith("-0")
    assert type(out[3][0]).__name__ == "Unparsed"
    assert out[4][0]["prediction"] == {"0": pytest.approx(0.3), "1": pytest.approx(0.7)}
    again = list(iter_file(path, model_config(), "tfrecord"))
    assert [r[0]["request_id"] for r in again if isinstance(r[0], dict)] == [
        r[0]["request_id"] for r in out if isinstance(r[0], dict)
    ]
