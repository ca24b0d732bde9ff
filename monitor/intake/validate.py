"""Validation of prediction and label rows against a model's configured schema.

Written for throughput (no per-field pydantic): one pass over each row's features
with exact type checks. A row either becomes a PredictionRecord or a Rejection that
names a short reason code and keeps the raw row; nothing is silently dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from numbers import Integral, Real
from typing import Any, TypeVar

import orjson

from monitor import clock
from monitor.config import ModelConfig
from monitor.intake.records import (
    DUPLICATE,
    LabelRecord,
    PredictionRecord,
    Rejection,
)

V = TypeVar("V")

MAX_REQUEST_ID = 256
_DUMP_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


class Unparsed:
    """Stands for a row that is not JSON at all (its text travels alongside)."""

    __slots__ = ("detail",)

    def __init__(self, detail: str):
        self.detail = detail


class Invalid(Exception):
    """A row failed one check: carries the reason code and a human detail."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def raw_text(obj: Any) -> str:
    """The row as JSON text for quarantine (repr when it cannot be serialized)."""
    if isinstance(obj, bytes | bytearray):
        return bytes(obj).decode("utf-8", "replace")
    if isinstance(obj, str):
        return obj
    try:
        return orjson.dumps(obj, default=repr, option=_DUMP_OPTS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return repr(obj)


def row_model(obj: Any, default_model: str | None) -> Any:
    """The model a row names (its "model" key), else `default_model`."""
    return obj.get("model", default_model) if isinstance(obj, dict) else default_model


def validator_for(obj: Any, model: Any, default_model: str | None, validators: Mapping[str, V]) -> V:
    """The validator of a row's model; Invalid for a non-object, a row naming another
    model than `default_model` (model_mismatch) or a model without one (unknown_model)."""
    if not isinstance(obj, dict):
        raise _not_an_object(obj)
    if default_model is not None and model != default_model:
        raise Invalid("model_mismatch", f"row is for model {model!r}, not {default_model!r}")
    validator = validators.get(model) if isinstance(model, str) else None
    if validator is None:
        raise Invalid("unknown_model", f"no configured model named {model!r}")
    return validator


def rejection(obj: Any, raw: str | None, bad: Invalid, source: str, model: Any) -> Rejection:
    """A Rejection for a bad row, with its model and, when readable, its own timestamp."""
    ts = None
    if isinstance(obj, Mapping) and obj.get("timestamp") is not None:
        try:
            ts = parse_timestamp(obj["timestamp"])
        except Invalid:
            ts = None
    name = model if isinstance(model, str) else None
    return Rejection(raw or raw_text(obj), bad.reason, bad.detail, source, name, ts)


def parse_timestamp(value: Any) -> datetime:
    """An ISO-8601 string, epoch seconds or a datetime -> aware UTC; None -> now.

    Naive values are taken as UTC. Raises Invalid("bad_timestamp") otherwise.
    """
    if value is None:
        return clock.utcnow()
    try:
        if isinstance(value, str):
            ts = datetime.fromisoformat(value.strip())
        elif isinstance(value, datetime):
            ts = value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
        elif isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value):
            return datetime.fromtimestamp(float(value), UTC)
        else:
            raise ValueError(f"unsupported type {type(value).__name__}")
    except (ValueError, TypeError, OverflowError, OSError) as err:
        raise Invalid("bad_timestamp", f"cannot parse timestamp {value!r}: {err}") from err
    if ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def _number(value: Any, what: str) -> float:
    """A finite float from a JSON number; Invalid otherwise."""
    kind = type(value)
    if kind is float or kind is int or isinstance(value, Real) and not isinstance(value, bool):
        number = float(value)
    else:
        raise Invalid("bad_prediction", f"{what}: expected a number, got {type(value).__name__}")
    if not math.isfinite(number):
        raise Invalid("bad_prediction", f"{what}: not finite ({value!r})")
    return number


class Validator:
    """Checks rows for one model: features, timestamp, prediction shape vs task.

    Multiclass score vectors must all have the same length k: the number of
    `class_names` when configured, else the length of the first vector seen.
    """

    def __init__(self, model: ModelConfig):
        self.model = model.name
        self.task = model.task
        self.numeric = model.features.numeric
        self.categorical = model.features.categorical
        self.names = frozenset(model.features.names)
        self.class_names = model.class_names
        self.k: int | None = len(model.class_names) or None

    def check(self, obj: Any) -> PredictionRecord:
        """A validated record from a JSON-like mapping; raises Invalid."""
        if not isinstance(obj, dict):
            raise _not_an_object(obj)
        request_id = check_request_id(obj.get("request_id"))
        ts = parse_timestamp(obj.get("timestamp"))
        features = self.check_features(obj.get("features"))
        if "prediction" not in obj:
            raise Invalid("bad_prediction", "prediction: missing")
        prediction = self.check_prediction(obj["prediction"])
        return PredictionRecord(self.model, request_id, ts, features, prediction, obj.get("label"))

    def check_features(self, features: Any) -> dict[str, Any]:
        """The features in config order, each checked; raises Invalid."""
        if not isinstance(features, dict):
            raise Invalid(
                "wrong_type", f"features: expected an object, got {type(features).__name__}"
            )
        if len(features) != len(self.names) or not self.names.issuperset(features):
            missing = sorted(self.names.difference(features))
            if missing:
                raise Invalid("missing_feature", f"missing features: {missing[:10]}")
            extra = sorted(str(k) for k in features if k not in self.names)
            raise Invalid("extra_feature", f"features not in the model's schema: {extra[:10]}")
        out: dict[str, Any] = {}
        for name in self.numeric:
            value = features[name]
            kind = type(value)
            if kind is float:
                if value != value or value in (math.inf, -math.inf):
                    raise Invalid("non_finite", f"{name}: {value!r} is not finite")
            elif kind is not int:
                value = _numeric_slow(name, value)
            out[name] = value
        for name in self.categorical:
            value = features[name]
            if type(value) not in (str, int, bool):
                value = _categorical_slow(name, value)
            out[name] = value
        return out

    def check_prediction(self, value: Any) -> Any:
        """The prediction normalized for the task (see PredictionRecord); raises Invalid."""
        if self.task == "regression":
            if isinstance(value, list | tuple) and len(value) == 1:
                value = value[0]
            return _number(value, "prediction")
        if self.task == "binary_classification":
            return self._binary(value)
        return self._multiclass(value)

    def _binary(self, value: Any) -> float:
        if isinstance(value, dict):
            if len(value) != 2:
                raise Invalid(
                    "bad_prediction", f"binary: expected 2 class scores, got {len(value)}"
                )
            positive = self.class_names[1] if len(self.class_names) == 2 else None
            value = [value[positive]] if positive in value else list(value.values())
        if isinstance(value, list | tuple):
            if len(value) not in (1, 2):
                raise Invalid("bad_prediction", f"binary: expected 1 or 2 scores, got {len(value)}")
            value = value[-1]
        score = _number(value, "prediction")
        if not 0.0 <= score <= 1.0:
            raise Invalid("bad_prediction", f"binary: score {score} is outside [0, 1]")
        return score

    def _multiclass(self, value: Any) -> tuple[float, ...] | int:
        if isinstance(value, Integral) and not isinstance(value, bool):
            index = int(value)
            if index < 0 or (self.k is not None and index >= self.k):
                raise Invalid("bad_prediction", f"multiclass: class index {index} out of range")
            return index
        if isinstance(value, dict):
            if self.class_names:
                missing = [c for c in self.class_names if c not in value]
                if missing or len(value) != len(self.class_names):
                    raise Invalid(
                        "bad_prediction",
                        f"multiclass: expected scores for {list(self.class_names)}",
                    )
                value = [value[c] for c in self.class_names]
            else:
                value = list(value.values())
        if not isinstance(value, list | tuple) or len(value) < 2:
            raise Invalid(
                "bad_prediction",
                "multiclass: expected a list/dict of class scores or a class index",
            )
        if self.k is not None and len(value) != self.k:
            raise Invalid(
                "bad_prediction", f"multiclass: expected {self.k} scores, got {len(value)}"
            )
        scores = tuple(_number(v, "prediction") for v in value)
        self.k = len(scores)
        return scores


def _numeric_slow(name: str, value: Any) -> float | int:
    if value is None:
        raise Invalid("missing_feature", f"{name}: null")
    if isinstance(value, bool) or not isinstance(value, Real):
        raise Invalid("wrong_type", f"{name}: expected a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise Invalid("non_finite", f"{name}: {value!r} is not finite")
    return int(value) if isinstance(value, Integral) else number


def _categorical_slow(name: str, value: Any) -> str | int | bool:
    if value is None:
        raise Invalid("missing_feature", f"{name}: null")
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid("non_finite", f"{name}: {value!r} is not finite")
    raise Invalid(
        "wrong_type",
        f"{name}: categorical values must be str, int or bool, got {type(value).__name__}",
    )


def _not_an_object(obj: Any) -> Invalid:
    if isinstance(obj, Unparsed):
        return Invalid("invalid_json", obj.detail)
    return Invalid("invalid_json", f"a record must be a JSON object, got {type(obj).__name__}")


def check_request_id(value: Any) -> str:
    """A non-empty request id (ints are accepted as text); raises Invalid."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise Invalid("missing_request_id", "request_id: a non-empty string is required")
    if len(value) > MAX_REQUEST_ID:
        raise Invalid("missing_request_id", f"request_id: longer than {MAX_REQUEST_ID} characters")
    return value


@dataclass(frozen=True)
class Checked:
    """The outcome of checking a batch: valid records, rejections, duplicates skipped."""

    records: tuple[Any, ...]
    rejected: tuple[Rejection, ...]
    duplicates: int


def check_predictions(
    items: Iterable[tuple[Any, str | None]],
    validators: Mapping[str, Validator],
    *,
    source: str,
    default_model: str | None = None,
) -> Checked:
    """Validate (object, raw text or None) pairs; the first row of a request id wins.

    A row's model is its "model" key, else `default_model`; a model without a
    validator is quarantined as unknown_model, a row naming another model than
    `default_model` as model_mismatch.
    """
    records: list[PredictionRecord] = []
    rejected: list[Rejection] = []
    seen: set[tuple[str, str]] = set()
    duplicates = 0
    for obj, raw in items:
        model = row_model(obj, default_model)
        try:
            record = validator_for(obj, model, default_model, validators).check(obj)
        except Invalid as bad:
            rejected.append(rejection(obj, raw, bad, source, model))
            continue
        key = (record.model, record.request_id)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        records.append(record)
    return Checked(tuple(records), tuple(rejected), duplicates)


def check_labels(
    items: Iterable[tuple[Any, str | None]], models: Iterable[str], *, source: str
) -> Checked:
    """Validate label rows ``{"model", "request_id", "label"}``; first per request id wins."""
    known = set(models)
    records: list[LabelRecord] = []
    rejected: list[Rejection] = []
    seen: set[tuple[str, str]] = set()
    duplicates = 0
    for obj, raw in items:
        model = obj.get("model") if isinstance(obj, dict) else None
        try:
            if not isinstance(obj, dict):
                raise _not_an_object(obj)
            if model not in known:
                raise Invalid("unknown_model", f"no configured model named {model!r}")
            request_id = check_request_id(obj.get("request_id"))
            label = obj.get("label")
            if label is None:
                raise Invalid("missing_label", "label: missing or null")
            if not isinstance(label, str | int | float | bool) or (
                isinstance(label, float) and not math.isfinite(label)
            ):
                raise Invalid("wrong_type", "label: expected a finite number, string or bool")
        except Invalid as bad:
            rejected.append(rejection(obj, raw, bad, source, model))
            continue
        if (model, request_id) in seen:
            duplicates += 1
            continue
        seen.add((model, request_id))
        records.append(LabelRecord(model, request_id, label))
    return Checked(tuple(records), tuple(rejected), duplicates)


__all__ = [
    "DUPLICATE",
    "Checked",
    "Invalid",
    "Unparsed",
    "Validator",
    "check_labels",
    "check_predictions",
    "check_request_id",
    "parse_timestamp",
    "raw_text",
]
