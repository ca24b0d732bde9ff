"""`monitor ingest` on JSONL, CSV, Parquet and TFRecord PredictionLog files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from sqlalchemy import Engine

from monitor.intake.files import iter_file, masked_crc32c
from monitor.store.predictions import count_predictions, quarantined
from tests.intake.helpers import NUMERIC, REPLAY_SCHEDULER, cancer_rows, model_config

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
""" + REPLAY_SCHEDULER


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
    # a.jsonl twice: its rows and its broken line are duplicates the second time
    assert "cancer: 30 accepted, 1 quarantined" in proc.stdout
    assert "duplicate: 11" in proc.stdout and "invalid_json: 1" in proc.stdout
    assert count_predictions(engine, "cancer") == 30
    assert [q.reason for q in quarantined(engine)] == ["invalid_json"]


def _tfrecord(path: Path, payloads: list[bytes]) -> None:
    """A TFRecord file as TensorFlow writes it (length CRCs real, payload CRCs zero)."""
    with open(path, "wb") as handle:
        for payload in payloads:
            length = struct.pack("<Q", len(payload))
            handle.write(length + struct.pack("<I", masked_crc32c(length)) + payload + b"\0" * 4)


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


# -- corrupt files (issue 11 item 2) ---------------------------------------------------


def _flat(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([
        {**r["features"], "request_id": r["request_id"], "timestamp": r["timestamp"],
         "prediction": r["prediction"]}
        for r in rows
    ])


def test_bad_timestamp_deep_in_a_jsonl_is_quarantined_and_the_load_goes_on(
    db_url, engine: Engine, tmp_path: Path, write_config, run_monitor
) -> None:
    write_config(CONFIG.format(url=db_url))
    rows = cancer_rows(12_000, prefix="big-")
    rows[7_000]["timestamp"] = "9999-12-31T23:30:00-05:00"
    rows[9_000]["timestamp"] = "0001-01-01T00:00:00+05:00"
    (tmp_path / "big.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    first = run_monitor("ingest", "cancer", "big.jsonl", "--no-progress")
    assert first.returncode == 0, first.stderr
    assert "cancer: 11998 accepted, 2 quarantined" in first.stdout
    assert "Traceback" not in first.stderr
    again = run_monitor("ingest", "cancer", "big.jsonl", "--no-progress")
    assert again.returncode == 0, again.stderr
    assert "cancer: 0 accepted, 0 quarantined" in again.stdout and "duplicate: 12000" in again.stdout
    assert count_predictions(engine, "cancer") == 11_998
    assert [q.reason for q in quarantined(engine)] == ["bad_timestamp", "bad_timestamp"]


def test_corrupt_files_give_a_message_or_quarantined_rows_never_a_traceback(
    db_url, engine: Engine, tmp_path: Path, write_config, run_monitor
) -> None:
    write_config(CONFIG.format(url=db_url))
    rows = cancer_rows(40, prefix="c-")
    lines = _flat(rows[:10]).to_csv(index=False).splitlines()
    lines[3] += ",surplus"  # a ragged line
    lines[5] = lines[5].replace("north", "n\udcffrth").replace("south", "s\udcffuth")
    lines[5] = lines[5].replace("east", "e\udcffst")
    (tmp_path / "ragged.csv").write_bytes(
        "\n".join(lines).encode("utf-8", "surrogateescape").replace(b"\xed\xb3\xbf", b"\xff")
    )
    (tmp_path / "empty.csv").write_bytes(b"")
    _flat(rows[10:20]).to_parquet(tmp_path / "whole.parquet")
    data = (tmp_path / "whole.parquet").read_bytes()
    (tmp_path / "truncated.parquet").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.tfrecord").write_bytes(b"\xff" * 8 + b"\x00" * 4 + b"junk" * 100)
    (tmp_path / "bad-utf8.jsonl").write_bytes(
        orjson.dumps(rows[20]) + b"\n" + b'{"request_id": "\xff\xfe"}' + b"\n" + orjson.dumps(rows[21])
    )
    names = ["ragged.csv", "empty.csv", "truncated.parquet", "garbage.tfrecord", "bad-utf8.jsonl"]
    proc = run_monitor("ingest", "cancer", *names, "--no-progress")
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr
    assert proc.returncode == 1  # two files could not be read at all: said, then exit 1
    assert "empty.csv: empty CSV file" in proc.stderr
    assert "truncated.parquet: not a readable Parquet file" in proc.stderr
    # ragged.csv: 8 of its 10 rows; the garbage TFRecord is one quarantined row
    assert "cancer: 10 accepted, 4 quarantined" in proc.stdout, proc.stdout
    assert count_predictions(engine, "cancer") == 10
    details = sorted(q.detail for q in quarantined(engine))
    assert any("fields where the header has" in d for d in details)
    assert any("not valid UTF-8" in d for d in details)
    assert any("garbage.tfrecord" in d and "length checksum" in d for d in details)


def test_csv_cells_are_typed_per_cell(db_url, engine: Engine, tmp_path: Path, write_config,
                                      run_monitor) -> None:
    write_config(CONFIG.format(url=db_url))
    flat = _flat(cancer_rows(20, prefix="cell-"))
    flat["mean_area"] = flat["mean_area"].astype(object)
    flat.loc[4, "mean_area"] = "big"
    flat.to_csv(tmp_path / "one-bad-cell.csv", index=False)
    proc = run_monitor("ingest", "cancer", "one-bad-cell.csv", "--no-progress", check=True)
    assert "cancer: 19 accepted, 1 quarantined" in proc.stdout
    assert [q.reason for q in quarantined(engine)] == ["wrong_type"]


def test_garbage_tfrecord_length_is_checked_before_allocating(tmp_path: Path) -> None:
    from monitor.errors import IntakeError
    from monitor.intake.files import iter_tfrecords

    huge = struct.pack("<Q", 2**60)
    path = tmp_path / "x.tfrecord"
    # a well-formed header claiming 2**60 bytes: refused by size, not allocated
    path.write_bytes(huge + struct.pack("<I", masked_crc32c(huge)) + b"abc")
    with open(path, "rb") as handle, pytest.raises(IntakeError, match="claims"):
        list(iter_tfrecords(handle, path.stat().st_size))
    rows = list(iter_file(path, model_config(), "tfrecord"))
    assert len(rows) == 1 and type(rows[0][0]).__name__ == "Unparsed"


def test_files_source_quarantines_a_bad_row_in_one_window_only(tmp_path: Path) -> None:
    from datetime import timedelta

    from monitor.intake.files import iter_window_file
    from tests.intake.helpers import T0

    rows = cancer_rows(6, start=T0, step=timedelta(hours=1), prefix="w-")
    rows[1]["features"]["mean_area"] = "big"  # in the window [T0+1h, T0+2h) only
    lines = [orjson.dumps(r) for r in rows] + [b"{broken"]
    path = tmp_path / "w.jsonl"
    path.write_bytes(b"\n".join(lines))
    windows = [(T0 + timedelta(hours=h), T0 + timedelta(hours=h + 1)) for h in range(6)]
    seen = [list(iter_window_file(path, model_config(), s, e, "jsonl")) for s, e in windows]
    assert [len(w) for w in seen] == [1, 1, 1, 1, 1, 1]
    assert sum(type(o).__name__ == "Unparsed" for w in seen for o, _ in w) == 0  # mtime: now
    import os

    stamp = (T0 + timedelta(hours=2, minutes=5)).timestamp()
    os.utime(path, (stamp, stamp))
    seen = [list(iter_window_file(path, model_config(), s, e, "jsonl")) for s, e in windows]
    assert [len(w) for w in seen] == [1, 1, 2, 1, 1, 1]  # the broken line: mtime's window
