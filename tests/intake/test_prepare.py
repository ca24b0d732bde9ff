"""The ingest fast path: same verdicts as the detailed checks, same rows in the log."""

from __future__ import annotations

import copy
import json
import math
from collections import Counter
from datetime import timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from monitor.config import ModelConfig
from monitor.intake.decode import decode_predictions
from monitor.intake.ingest import ingest_body, ingest_predictions, parse_body
from monitor.intake.prepare import prepare_predictions
from monitor.intake.validate import Validator, check_predictions
from monitor.store.predictions import count_predictions
from monitor.store.tables import Prediction
from tests.intake.helpers import T0, cancer_rows, model_config
from tests.intake.test_validate import FEATURE_KEYS, KEYS, json_values


def _both(rows: list) -> tuple:
    """(check_predictions, prepare_predictions) of the same (object, raw) rows."""
    slow = check_predictions(rows, {"cancer": Validator(model_config())}, source="t")
    fast = prepare_predictions(rows, {"cancer": Validator(model_config())}, source="t")
    return slow, fast


def _mutated(mutations) -> list[dict]:
    """Three good rows, the middle one changed by hypothesis's (key, value, drop) list."""
    rows = cancer_rows(3)
    for key, value, drop in mutations:
        features = rows[1].get("features")
        target = features if key in FEATURE_KEYS and isinstance(features, dict) else rows[1]
        if drop:
            target.pop(key, None)
        else:
            target[key] = value
    return rows


def _assert_same(rows: list) -> None:
    slow, fast = _both(rows)
    _assert_agree(slow, fast)
    for record, row in zip(slow.records, fast.rows, strict=True):
        assert bytes(row[3]) == orjson.dumps(record.features)


def _assert_agree(slow, fast, *, as_sent: bool = False) -> None:
    """`fast` (a Prepared) stores and quarantines exactly what `slow` (Checked) does;
    `as_sent`: the features JSON is the one sent (its keys in the sender's order)."""
    assert [r.request_id for r in slow.records] == [r[1] for r in fast.rows]
    assert [(r.reason, r.detail, r.raw, r.model, r.ts) for r in slow.rejected] == [
        (r.reason, r.detail, r.raw, r.model, r.ts) for r in fast.rejected
    ]
    assert slow.duplicates == fast.duplicates
    assert [(r.model, r.request_id, r.label) for r in slow.records if r.label is not None] == [
        (r.model, r.request_id, r.label) for r in fast.labels
    ]
    for record, row in zip(slow.records, fast.rows, strict=True):
        features = orjson.loads(bytes(row[3]))
        assert features == record.features
        assert as_sent or list(features) == list(record.features)
        assert {k: type(v) for k, v in features.items()} == \
            {k: type(v) for k, v in record.features.items()}
        assert orjson.loads(row[4]) == record.prediction
        assert abs(row[2] - record.ts) < timedelta(minutes=5)  # a missing timestamp is now
        stored = None if row[5] is None else orjson.loads(row[5])
        assert stored == (None if record.attributes is None else dict(record.attributes))


def _assert_decode_same(body: bytes, models=None, default_model=None) -> bool:
    """The C decode of a body agrees with the detailed path; False when it declined."""
    models = models or [model_config()]
    validators = {m.name: Validator(m) for m in models}
    fast = decode_predictions(body, validators, source="t", default_model=default_model)
    if fast is None:
        return False
    slow = check_predictions(parse_body(body), {m.name: Validator(m) for m in models},
                             source="t", default_model=default_model)
    _assert_agree(slow, fast, as_sent=True)
    return True


def mixed_rows() -> list[dict]:
    """Good rows and one bad row per reason, reordered keys, ints, duplicates."""
    rows = cancer_rows(40)
    rows[1]["features"].pop("mean_area")
    rows[2]["features"]["surprise"] = 1.0
    rows[3]["features"]["mean_area"] = "big"
    rows[4]["features"]["mean_area"] = math.inf
    rows[5]["features"]["mean_area"] = True
    rows[6]["features"]["clinic"] = 2.5
    rows[7]["features"]["clinic"] = None
    rows[8]["timestamp"] = "yesterday-ish"
    rows[9]["prediction"] = 1.7
    rows[10]["request_id"] = ""
    rows[11]["model"] = "nope"
    rows[12]["features"] = dict(reversed(list(rows[12]["features"].items())))
    rows[13]["features"]["mean_area"] = 1000  # an int is a number
    rows[14]["features"]["clinic"] = 7
    rows[15]["features"]["clinic"] = "a},{b"  # cuts the batch JSON in the wrong place
    rows[16]["features"] = [1, 2]
    del rows[17]["prediction"]
    rows.append(copy.deepcopy(rows[0]))
    rows.append({**copy.deepcopy(rows[20]), "prediction": 0.0})
    return rows


def test_fast_and_detailed_paths_agree_on_a_mixed_batch() -> None:
    rows = mixed_rows()
    _assert_same([(r, None) for r in rows])
    _assert_same(parse_body(orjson.dumps(rows)))
    slow, fast = _both(parse_body(orjson.dumps(rows)))
    # through JSON, inf arrives as null: a missing value (stored), as is clinic's null
    assert len(fast.rows) == 40 - 11 and fast.duplicates == 2
    assert Counter(r.reason for r in fast.rejected) == {
        "missing_feature": 1,
        "wrong_type": 4,
        "extra_feature": 1,
        "bad_timestamp": 1,
        "bad_prediction": 2,
        "missing_request_id": 1,
        "unknown_model": 1,
    }


def test_decode_agrees_with_the_detailed_path_on_a_mixed_batch() -> None:
    rows = mixed_rows()
    rows[20]["features"]["clinic"] = 2**70  # orjson reads a float: wrong_type
    rows[21]["features"]["mean_area"] = 2**70  # a number either way
    rows[22]["timestamp"] = 1_767_225_600
    rows[23]["label"] = 1
    rows[24]["label"] = 7
    rows[25]["request_id"] = 12345
    rows[26]["model"] = None
    rows[4]["features"]["mean_area"] = None  # not Infinity: that body is not JSON
    body = json.dumps(rows).encode()
    assert _assert_decode_same(body)
    assert _assert_decode_same(body.replace(b'"r30"', b'"r\\\\30"'))  # an escaped row
    good = orjson.dumps(cancer_rows(20))
    assert _assert_decode_same(good)
    assert _assert_decode_same(b"  " + good.replace(b",", b" ,\n ") + b"\n")
    assert _assert_decode_same(b"[]")
    # a body the decode leaves to the general path
    assert not _assert_decode_same(b"\n".join(orjson.dumps(r) for r in cancer_rows(3)))
    assert not _assert_decode_same(good[:-1] + b',{"x":NaN}]')
    assert not _assert_decode_same(good[:-1] + b',"\xff"]')


def test_decode_stores_the_features_as_sent() -> None:
    """The C decode checks the features JSON and passes its bytes through (no float
    printed again): the sender's spelling and key order, in a batch and row by row."""
    rows = cancer_rows(3)
    spaced = orjson.dumps(rows[0]["features"]).replace(b'":', b'": ')
    reordered = dict(reversed(list(rows[1]["features"].items())))
    reordered["mean_radius"] = 0.1
    respelled = orjson.dumps(reordered).replace(b'"mean_radius":0.1', b'"mean_radius":1e-1')
    texts = [spaced, respelled, orjson.dumps(rows[2]["features"])]
    body = orjson.dumps([{**row, "features": orjson.Fragment(text)}
                         for row, text in zip(rows, texts, strict=True)])
    escaped = body.replace(b'"r2"', b'"r\\u0032"')  # a row the detailed path reads
    for sent in (body, escaped):
        fast = decode_predictions(sent, {"cancer": Validator(model_config())}, source="t")
        assert [r[1] for r in fast.rows] == ["r0", "r1", "r2"]
        assert bytes(fast.rows[0][3]) == spaced
        assert bytes(fast.rows[1][3]) == respelled
        assert orjson.loads(bytes(fast.rows[1][3])) == reordered
        assert _assert_decode_same(sent)


def test_decode_stores_a_null_feature_as_a_missing_value_in_c() -> None:
    """A null feature value is data: the C decode stores the row (its null as sent),
    as the detailed path does; a row whose feature key is absent is still refused."""
    rows = cancer_rows(4)
    rows[1]["features"]["mean_area"] = None
    rows[2]["features"]["clinic"] = None
    del rows[3]["features"]["mean_radius"]
    body = orjson.dumps(rows)
    fast = decode_predictions(body, {"cancer": Validator(model_config())}, source="t")
    assert [r[1] for r in fast.rows] == ["r0", "r1", "r2"]
    assert orjson.loads(bytes(fast.rows[1][3]))["mean_area"] is None
    assert orjson.loads(bytes(fast.rows[2][3]))["clinic"] is None
    assert [r.reason for r in fast.rejected] == ["missing_feature"]
    assert _assert_decode_same(body)
    assert _assert_decode_same(orjson.dumps(rows[:3]))  # the whole-batch decode


def test_decode_with_several_models_and_a_default_model() -> None:
    other = ModelConfig(name="price", path="m.keras", task="regression",
                        features={"numeric": ["x"], "categorical": ["c"]})
    rows: list = cancer_rows(6)
    rows += [{"model": "price", "request_id": f"p{i}", "features": {"x": i, "c": "a"},
              "prediction": [i / 2]} for i in range(4)]
    rows[7]["features"]["c"] = 1.5
    rows[8]["prediction"] = "high"
    body = orjson.dumps(rows)
    assert _assert_decode_same(body, [model_config(), other])
    unnamed = [{k: v for k, v in r.items() if k != "model"} for r in cancer_rows(4)]
    unnamed[2]["model"] = "price"
    assert _assert_decode_same(orjson.dumps(unnamed), [model_config(), other])
    assert _assert_decode_same(orjson.dumps(unnamed), [model_config(), other],
                               default_model="cancer")


def test_decode_checks_declared_attributes_as_the_detailed_path_does() -> None:
    """Models with [models.segments] attributes take the C decode too: the same rows
    stored with the same attribute bytes, the same reasons for the others."""
    model = model_config(segments={"attributes": ["sex", "age"]})
    rows = cancer_rows(16)
    for i, row in enumerate(rows):
        row["attributes"] = {"sex": "FM"[i % 2], "age": 30 + i, "zip": "dropped"}
    rows[1]["attributes"].pop("sex")  # missing_attribute
    rows[2]["attributes"]["age"] = None  # missing_attribute
    rows[3]["attributes"]["sex"] = ["F"]  # bad_attribute (not a scalar)
    rows[4]["attributes"] = "F"  # bad_attribute (not an object)
    rows[5]["attributes"]["age"] = 2**70  # beyond int64: judged in Python, a finite number
    rows[6]["attributes"]["zip"] = {"nested": True}  # undeclared: dropped, the row is fine
    rows[7]["attributes"]["age"] = 41.5
    del rows[8]["attributes"]  # missing_attribute
    body = json.dumps(rows).encode()
    assert _assert_decode_same(body, [model])
    fast = decode_predictions(body, {"cancer": Validator(model)}, source="t")
    assert len(fast.rows) == 11 and all(row[5] is not None for row in fast.rows)
    assert orjson.loads(fast.rows[0][5]) == {"sex": "F", "age": 30}
    clean = cancer_rows(5)
    for row in clean:
        row["attributes"] = {"sex": "F", "age": 50}
    assert _assert_decode_same(orjson.dumps(clean), [model])


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(KEYS), json_values, st.booleans()), max_size=3))
def test_fuzz_decode_and_detailed_path_agree(mutations) -> None:
    rows = _mutated(mutations)
    body = json.dumps(rows, allow_nan=True).encode()
    _assert_decode_same(body)
    _assert_decode_same(body, default_model="cancer")


def test_ingest_body_stores_what_the_detailed_path_accepts(engine: Engine) -> None:
    rows = mixed_rows()
    # judged as the body arrives (through JSON an inf is a null: a missing value)
    slow, _ = _both(parse_body(orjson.dumps(rows)))
    result = ingest_body(engine, [model_config()], orjson.dumps(rows), source="t")
    assert result.accepted == len(slow.records) and result.quarantined == len(slow.rejected)
    stored = _stored(engine)
    assert set(stored) == {r.request_id for r in slow.records}
    for record in slow.records:
        ts, features, prediction = stored[record.request_id]
        assert features == record.features  # (as sent: the keys in the sender's order)
        assert prediction == pytest.approx(record.prediction)


def test_unserializable_values_are_quarantined_not_a_crash() -> None:
    rows = cancer_rows(3)
    rows[1]["features"]["mean_area"] = 2**70  # a Python client can send this; JSON cannot
    fast = prepare_predictions(
        [(r, None) for r in rows], {"cancer": Validator(model_config())}, source="t"
    )
    assert [r[1] for r in fast.rows] == ["r0", "r2"]
    assert [r.reason for r in fast.rejected] == ["wrong_type"]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(KEYS), json_values, st.booleans()), max_size=3))
def test_fuzz_fast_and_detailed_paths_agree(mutations) -> None:
    rows = _mutated(mutations)
    _assert_same(parse_body(json.dumps(rows, allow_nan=True).encode()))


def _stored(engine: Engine) -> dict[str, tuple]:
    stmt = select(Prediction.request_id, Prediction.ts, Prediction.features, Prediction.prediction)
    with engine.connect() as conn:
        return {r.request_id: (r.ts, r.features, r.prediction) for r in conn.execute(stmt)}


def test_ingest_stores_what_the_detailed_path_accepts(engine: Engine) -> None:
    rows = mixed_rows()
    slow, _ = _both(parse_body(orjson.dumps(rows)))
    result = ingest_predictions(
        engine, [model_config()], parse_body(orjson.dumps(rows)), source="t"
    )
    assert result.accepted == len(slow.records) and result.quarantined == len(slow.rejected)
    assert result.reasons["duplicate"] == 2
    stored = _stored(engine)
    assert set(stored) == {r.request_id for r in slow.records}
    for record in slow.records:
        ts, features, prediction = stored[record.request_id]
        assert features == record.features and list(features) == list(record.features)
        assert prediction == pytest.approx(record.prediction)
        assert ts.replace(tzinfo=None) == record.ts.replace(tzinfo=None)


def test_overlapping_batches_count_duplicates_and_store_once(engine: Engine) -> None:
    config = [model_config()]
    first = cancer_rows(30)
    assert ingest_predictions(engine, config, [(r, None) for r in first], source="t").accepted == 30
    again = cancer_rows(50)  # r0..r29 are logged already: the direct COPY must fall back
    result = ingest_predictions(engine, config, [(r, None) for r in again], source="t")
    assert result.accepted == 20 and result.reasons == {"duplicate": 30}
    assert count_predictions(engine) == 50
    logged = _stored(engine)["r49"][0]
    assert logged.replace(tzinfo=None) == (T0 + timedelta(seconds=49)).replace(tzinfo=None)
    # the connection is usable after the fallback: a fresh batch goes straight in
    fresh = cancer_rows(5, prefix="n")
    assert ingest_predictions(engine, config, [(r, None) for r in fresh], source="t").accepted == 5
    assert count_predictions(engine) == 55
