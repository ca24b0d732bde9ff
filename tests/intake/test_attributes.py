"""Attributes that are not model inputs: validated like features, stored beside them,
read back into the window sample; every entry point (HTTP, JSONL, CSV, client)."""

from __future__ import annotations

import csv
import json
from datetime import timedelta

import numpy as np
import orjson
import pytest
from sqlalchemy import Engine, select

from monitor.client import PredictionLogger
from monitor.intake import read_window
from monitor.intake.files import iter_file
from monitor.intake.ingest import ingest_predictions, parse_body
from monitor.intake.prepare import prepare_predictions
from monitor.intake.validate import Invalid, Validator, check_predictions
from monitor.server import BackgroundServer, create_app
from monitor.store import transaction
from monitor.store.tables import Prediction, Quarantine
from tests.intake.helpers import NUMERIC, T0, cancer_rows, model_config, settings

SEGMENTS = {"attributes": ["sex", "age_band"]}


def _model(**extra):
    return model_config(segments=SEGMENTS, **extra)


def _rows(n: int = 20) -> list[dict]:
    rows = cancer_rows(n)
    for i, row in enumerate(rows):
        row["attributes"] = {"sex": "FM"[i % 2], "age_band": 40 + i % 3, "zip": "never kept"}
    return rows


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        pytest.param(None, "missing_attribute", id="no-attributes"),
        pytest.param({"sex": "F"}, "missing_attribute", id="one-missing"),
        pytest.param({"sex": None, "age_band": 1}, "missing_attribute", id="null"),
        pytest.param({"sex": ["F"], "age_band": 1}, "bad_attribute", id="list"),
        pytest.param({"sex": {"v": 1}, "age_band": 1}, "bad_attribute", id="object"),
        pytest.param({"sex": "F", "age_band": float("nan")}, "bad_attribute", id="nan"),
        pytest.param({"sex": "x" * 300, "age_band": 1}, "bad_attribute", id="long-text"),
        pytest.param(["F", 1], "bad_attribute", id="not-an-object"),
    ],
)
def test_a_declared_attribute_missing_or_not_a_scalar_is_refused(attributes, reason) -> None:
    row = cancer_rows(1)[0]
    row["attributes"] = attributes
    with pytest.raises(Invalid) as bad:
        Validator(_model()).check(row)
    assert bad.value.reason == reason
    fast = prepare_predictions([(row, None)], {"cancer": Validator(_model())}, source="t")
    assert [r.reason for r in fast.rejected] == [reason] and not fast.rows


def test_undeclared_attributes_are_dropped_and_none_kept_without_a_declaration() -> None:
    row = _rows(1)[0]
    record = Validator(_model()).check(row)
    assert record.attributes == {"sex": "F", "age_band": 40}
    assert "zip" not in record.attributes and "sex" not in record.features
    assert Validator(model_config()).check(row).attributes is None  # nothing declared: ignored
    fast = prepare_predictions([(row, None)], {"cancer": Validator(model_config())}, source="t")
    assert fast.rows[0][5] is None


def test_fast_and_detailed_paths_agree_with_attributes() -> None:
    rows = _rows(30)
    rows[3]["attributes"].pop("sex")
    rows[4]["attributes"]["age_band"] = [1]
    rows[5]["features"]["mean_radius"] = "x"  # the feature's reason comes first
    rows[5]["attributes"] = None
    rows[6]["features"] = {k: rows[6]["features"][k] for k in reversed(list(rows[6]["features"]))}
    items = [(r, None) for r in rows]
    slow = check_predictions(items, {"cancer": Validator(_model())}, source="t")
    fast = prepare_predictions(items, {"cancer": Validator(_model())}, source="t")
    assert [r.request_id for r in slow.records] == [r[1] for r in fast.rows]
    assert [(r.reason, r.detail) for r in slow.rejected] == [(r.reason, r.detail) for r in fast.rejected]
    assert [r.reason for r in slow.rejected] == ["missing_attribute", "bad_attribute", "wrong_type"]
    for record, row in zip(slow.records, fast.rows, strict=True):
        assert orjson.loads(row[5]) == record.attributes


def _stored(engine: Engine) -> dict[str, dict | None]:
    with transaction(engine) as session:
        return dict(session.execute(select(Prediction.request_id, Prediction.attributes)).all())


def test_ingest_stores_attributes_and_the_window_carries_them(engine: Engine) -> None:
    model = _model()
    rows = _rows(40)
    rows[7]["attributes"] = {"sex": "F"}  # quarantined with its reason, never lost
    result = ingest_predictions(engine, [model], parse_body(json.dumps(rows).encode()), source="http")
    assert result.accepted == 39 and result.reasons == {"missing_attribute": 1}
    stored = _stored(engine)
    assert stored["r0"] == {"sex": "F", "age_band": 40} and "r7" not in stored
    with transaction(engine) as session:
        reasons = session.scalars(select(Quarantine.reason)).all()
    assert reasons == ["missing_attribute"]

    window = read_window(model, engine, T0, T0 + timedelta(hours=1))
    assert list(window.attributes.columns) == ["sex", "age_band"]
    assert list(window.attributes.index) == list(window.frame.index)
    assert window.attributes.loc["r1", "sex"] == "M" and window.attributes.loc["r2", "age_band"] == 42
    assert read_window(model_config(), engine, T0, T0 + timedelta(hours=1)).attributes is None


def test_a_row_logged_before_attributes_were_declared_is_quarantined_by_the_run(engine: Engine) -> None:
    rows = cancer_rows(5)
    ingest_predictions(engine, [model_config()], parse_body(json.dumps(rows).encode()), source="http")
    assert set(_stored(engine).values()) == {None}
    window = read_window(_model(), engine, T0, T0 + timedelta(hours=1))
    assert window.rows == 0 and window.reasons == {"missing_attribute": 5}


def test_csv_columns_named_as_attributes_become_attributes(tmp_path) -> None:
    path = tmp_path / "p.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["request_id", "timestamp", *NUMERIC, "clinic", "prediction", "sex", "age_band"])
        writer.writerow(["a", T0.isoformat(), 1, 2, 3, 4, "north", 0.2, "F", "40-60"])
        writer.writerow(["b", T0.isoformat(), 1, 2, 3, 4, "north", 0.2, "", "40-60"])
    rows = list(iter_file(path, _model()))
    assert rows[0][0]["attributes"] == {"sex": "F", "age_band": "40-60"}
    assert "sex" not in rows[0][0]["features"]
    checked = check_predictions(rows, {"cancer": Validator(_model())}, source="t", default_model="cancer")
    assert [r.attributes for r in checked.records] == [{"sex": "F", "age_band": "40-60"}]
    assert [r.reason for r in checked.rejected] == ["missing_attribute"]


def test_http_and_client_carry_attributes(engine: Engine) -> None:
    app = create_app(settings(_model(), env={"MONITOR_INGEST_TOKEN": "tok"}), engine)
    with BackgroundServer(app) as server:
        with PredictionLogger(server.url, model="cancer", token="tok", batch_size=5) as logger:
            for row in _rows(10):
                assert logger.log(
                    row["features"], row["prediction"], request_id=row["request_id"],
                    timestamp=row["timestamp"], attributes=row["attributes"],
                )
            logger.log(row["features"], 0.5, request_id="no-attrs")
        assert (logger.sent, logger.quarantined) == (10, 1)
    stored = _stored(engine)
    assert len(stored) == 10 and stored["r9"] == {"sex": "M", "age_band": 40}


def test_a_stratified_window_sample_represents_a_small_group_with_weights(engine: Engine) -> None:
    """`[models.segments] stratify`: a 4 % group reaches min_rows in the stratified sample,
    the weights add up to the window's rows, the uniform sample stays as it was."""
    model = model_config(segments={"attributes": ["sex"], "stratify": True, "min_rows": 40}, sample_size=200)
    rows = cancer_rows(2000)
    for i, row in enumerate(rows):
        row["attributes"] = {"sex": "F" if i % 25 == 0 else "M"}
    ingest_predictions(engine, [model], parse_body(json.dumps(rows).encode()), source="http")
    window = read_window(model, engine, T0, T0 + timedelta(hours=1))
    uniform = read_window(model_config(segments={"attributes": ["sex"]}, sample_size=200), engine, T0,
                          T0 + timedelta(hours=1))
    assert list(window.frame.index) == list(uniform.frame.index)  # drift keeps the uniform sample
    assert (window.attributes["sex"] == "F").sum() < 20

    strat = window.stratified
    assert len(strat.frame) == 200 and (strat.attributes["sex"] == "F").sum() == 40
    assert strat.weights.sum() == pytest.approx(2000)
    f = (strat.attributes["sex"] == "F").to_numpy()
    assert strat.weights[f] == pytest.approx(np.full(40, 80 / 40))
    doc = window.sampling.to_dict()
    assert {s["values"]["sex"]: (s["rows"], s["sampled"]) for s in doc["strata"]} == {
        "F": (80, 40), "M": (1920, 160)
    }


def test_tfrecord_inputs_and_example_features_named_as_attributes(tmp_path) -> None:
    tf = pytest.importorskip("tensorflow")
    from tensorflow_serving.apis import prediction_log_pb2

    from tests.intake.test_files import _tfrecord

    rows = cancer_rows(2)
    predict = prediction_log_pb2.PredictionLog()
    for name in NUMERIC:
        values = np.array([[r["features"][name]] for r in rows], dtype=np.float32)
        predict.predict_log.request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
    clinic = np.array([r["features"]["clinic"].encode() for r in rows])
    predict.predict_log.request.inputs["clinic"].CopyFrom(tf.make_tensor_proto(clinic))
    predict.predict_log.request.inputs["sex"].CopyFrom(tf.make_tensor_proto(np.array([b"F", b"M"])))
    predict.predict_log.request.inputs["age_band"].CopyFrom(tf.make_tensor_proto(np.array([[40], [60]])))
    scores = np.array([[r["prediction"]] for r in rows], dtype=np.float32)
    predict.predict_log.response.outputs["probabilities"].CopyFrom(tf.make_tensor_proto(scores))
    classify = prediction_log_pb2.PredictionLog()
    example = classify.classify_log.request.input.example_list.examples.add()
    for name in NUMERIC:
        example.features.feature[name].float_list.value.append(1.5)
    example.features.feature["clinic"].bytes_list.value.append(b"north")
    example.features.feature["sex"].bytes_list.value.append(b"F")
    example.features.feature["age_band"].int64_list.value.append(18)
    result = classify.classify_log.response.result.classifications.add()
    for label, score in (("0", 0.3), ("1", 0.7)):
        cls = result.classes.add()
        cls.label, cls.score = label, score
    path = tmp_path / "prediction_logs-00000"
    _tfrecord(path, [predict.SerializeToString(), classify.SerializeToString()])
    out = [row for row, _ in iter_file(path, _model(), "tfrecord")]
    assert [r["attributes"] for r in out] == [
        {"sex": "F", "age_band": 40}, {"sex": "M", "age_band": 60}, {"sex": "F", "age_band": 18}
    ]
    checked = check_predictions([(r, None) for r in out], {"cancer": Validator(_model())}, source="t",
                                default_model="cancer")
    assert len(checked.records) == 3 and not checked.rejected
