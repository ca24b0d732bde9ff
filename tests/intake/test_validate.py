"""Validation: every bad row gets a reason; a fuzz of the record parser never crashes."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.intake.ingest import parse_body
from monitor.intake.records import REASONS
from monitor.intake.validate import Invalid, Validator, check_labels, check_predictions
from tests.intake.helpers import cancer_rows, iris_config, iris_rows, model_config


def _reason(row: dict) -> str:
    checked = check_predictions([(row, None)], {"cancer": Validator(model_config())}, source="t")
    assert not checked.records
    return checked.rejected[0].reason


def _good() -> dict:
    return cancer_rows(1)[0]


BAD_ROWS = {
    "missing_feature": lambda r: r["features"].pop("mean_area"),
    "extra_feature": lambda r: r["features"].update(surprise=1.0),
    "wrong_type": lambda r: r["features"].update(mean_area="big"),
    "non_finite": lambda r: r["features"].update(mean_area=math.inf),
    "bad_timestamp": lambda r: r.update(timestamp="yesterday-ish"),
    "bad_prediction": lambda r: r.update(prediction=1.7),
    "unknown_model": lambda r: r.update(model="nope"),
    "missing_request_id": lambda r: r.update(request_id=""),
}


@pytest.mark.parametrize("reason", sorted(BAD_ROWS), ids=str)
def test_each_bad_row_is_rejected_with_its_reason(reason: str) -> None:
    row = _good()
    BAD_ROWS[reason](row)
    assert _reason(row) == reason


@pytest.mark.parametrize(
    ("value", "ok"),
    [("north", True), (3, True), (True, True), (2.5, False), (None, True), ([1], False)],
    ids=["str", "int", "bool", "float", "null (a missing value)", "list"],
)
def test_categorical_values_must_be_str_int_or_bool(value: object, ok: bool) -> None:
    row = _good()
    row["features"]["clinic"] = value
    validator = Validator(model_config())
    if ok:
        assert validator.check(row).features["clinic"] == value
    else:
        with pytest.raises(Invalid):
            validator.check(row)


def test_naive_timestamp_is_utc_and_missing_is_now() -> None:
    validator = Validator(model_config())
    row = _good()
    row["timestamp"] = "2026-03-01T10:00:00"
    assert validator.check(row).ts == datetime(2026, 3, 1, 10, tzinfo=UTC)
    row["timestamp"] = "2026-03-01T12:00:00+02:00"
    assert validator.check(row).ts == datetime(2026, 3, 1, 10, tzinfo=UTC)
    del row["timestamp"]
    assert validator.check(row).ts.tzinfo is not None


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [(0.25, 0.25), ([0.7, 0.3], 0.3), ({"benign": 0.4, "malignant": 0.6}, 0.6), (1, 1.0)],
    ids=["number", "list2", "dict2", "int"],
)
def test_binary_predictions_normalize_to_positive_score(prediction, expected) -> None:
    row = {**_good(), "prediction": prediction}
    assert Validator(model_config()).check(row).prediction == pytest.approx(expected)


@pytest.mark.parametrize(
    "prediction",
    [[0.1, 0.2, 0.7], -0.1, True, "0.5", [0.2] * 3, {}],
    ids=["list3", "negative", "bool", "str", "three", "empty-dict"],
)
def test_binary_rejects_bad_shapes(prediction) -> None:
    assert _reason({**_good(), "prediction": prediction}) == "bad_prediction"


def test_multiclass_scores_dicts_and_indices() -> None:
    validator = Validator(iris_config())
    row = iris_rows(2)[1]
    assert validator.check(row).prediction == tuple(row["prediction"])
    dict_row = {**row, "prediction": {"virginica": 0.5, "setosa": 0.2, "versicolor": 0.3}}
    assert validator.check(dict_row).prediction == (0.2, 0.3, 0.5)
    assert validator.check({**row, "prediction": 2}).prediction == 2
    for bad in (3, [0.5, 0.5], 0.4):
        with pytest.raises(Invalid, match="multiclass"):
            validator.check({**row, "prediction": bad})


def test_regression_requires_a_finite_number() -> None:
    config = model_config(task="regression")
    validator = Validator(config)
    assert validator.check({**_good(), "prediction": 151.0}).prediction == 151.0
    with pytest.raises(Invalid):
        validator.check({**_good(), "prediction": [1.0, 2.0]})


def test_duplicates_keep_the_first_and_are_counted() -> None:
    rows = cancer_rows(3)
    rows.append({**rows[0], "prediction": 0.0})
    checked = check_predictions(
        [(r, None) for r in rows], {"cancer": Validator(model_config())}, source="t"
    )
    assert len(checked.records) == 3 and checked.duplicates == 1
    assert checked.records[0].prediction == rows[0]["prediction"]


def test_labels_are_checked() -> None:
    rows = [
        {"model": "cancer", "request_id": "a", "label": 1},
        {"model": "cancer", "request_id": "b"},
        {"model": "x", "request_id": "c", "label": 0},
        {"model": "cancer", "request_id": "a", "label": 0},
    ]
    checked = check_labels([(r, None) for r in rows], ["cancer"], source="t")
    assert [r.request_id for r in checked.records] == ["a"]
    assert sorted(r.reason for r in checked.rejected) == ["missing_label", "unknown_model"]
    assert checked.duplicates == 1


def test_parse_body_accepts_array_object_and_ndjson() -> None:
    rows = cancer_rows(3)
    assert len(parse_body(orjson.dumps(rows))) == 3
    assert len(parse_body(orjson.dumps(rows[0]))) == 1
    ndjson = b"\n".join(orjson.dumps(r) for r in rows) + b"\n{not json\n"
    parsed = parse_body(ndjson)
    assert len(parsed) == 4
    checked = check_predictions(parsed, {"cancer": Validator(model_config())}, source="t")
    assert len(checked.records) == 3
    assert checked.rejected[0].reason == "invalid_json"
    assert checked.rejected[0].raw == "{not json"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


KEYS = [
    "model",
    "request_id",
    "timestamp",
    "features",
    "prediction",
    "label",
    "mean_radius",
    "clinic",
    "unexpected",
]
FEATURE_KEYS = {"mean_radius", "clinic", "unexpected"}


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    st.lists(st.tuples(st.sampled_from(KEYS), json_values, st.booleans()), max_size=3),
    st.binary(max_size=40),
)
def test_fuzz_every_row_is_accepted_or_quarantined_with_a_reason(mutations, junk) -> None:
    row = _good()
    for key, value, drop in mutations:
        features = row.get("features")
        target = features if key in FEATURE_KEYS and isinstance(features, dict) else row
        if drop:
            target.pop(key, None)
        else:
            target[key] = value
    body = json.dumps([row], allow_nan=True).encode()  # NaN/huge ints: not valid for orjson
    validators = {"cancer": Validator(model_config())}
    for payload in (body, junk, body + b"\n" + junk):
        parsed = parse_body(payload)
        checked = check_predictions(parsed, validators, source="t")
        assert len(checked.records) + len(checked.rejected) + checked.duplicates == len(parsed)
        for rejection in checked.rejected:
            assert rejection.reason in REASONS and rejection.detail and rejection.raw is not None


@pytest.mark.parametrize(
    ("feature", "value"),
    [("mean_area", None), ("mean_area", math.nan), ("clinic", None), ("clinic", math.nan)],
    ids=["numeric null", "numeric NaN", "categorical null", "categorical NaN"],
)
def test_a_missing_value_is_data_and_an_absent_key_is_quarantined(feature: str, value: object) -> None:
    row = _good()
    row["features"][feature] = value
    checked = check_predictions([(row, None)], {"cancer": Validator(model_config())}, source="t")
    assert not checked.rejected
    assert checked.records[0].features[feature] is None
    del row["features"][feature]
    assert _reason(row) == "missing_feature"
