"""Validation of prediction and label rows against a model's configured schema.

Written for throughput (no per-field pydantic): one pass over each row's features
with exact type checks. A row either becomes a PredictionRecord or a Rejection that
names a short reason code and keeps the raw row; nothing is silently dropped.

A feature whose value is missing (JSON null, an empty CSV cell, NaN) is data, stored
as None: the baseline has missing values too, and data quality compares the window's
share with the baseline's. A feature whose key is absent is a malformed row
(missing_feature).
"""

from __future__ import annotations

import logging
import math
import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from numbers import Integral, Real
from typing import Any, TypeVar

from monitor import clock
from monitor.config import ModelConfig
from monitor.intake.rawtext import as_text, render_json, truncated
from monitor.intake.records import (
    DUPLICATE,
    LabelRecord,
    PredictionRecord,
    Rejection,
)
from monitor.intake.timebounds import ANY_TIME, TimeBounds, span

V = TypeVar("V")
#: a row's text as it arrived: text, or bytes (a line, an array element) decoded when needed
RawText = str | bytes | bytearray | memoryview
log = logging.getLogger(__name__)

MAX_REQUEST_ID = 256
MAX_MODEL_NAME = 64


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


_REPR = reprlib.Repr()  # Python 3.11: attributes, not constructor arguments
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist = 32, 1000, 1000
_REPR.maxstring, _REPR.maxother = 100_000, 1000


def raw_text(obj: Any) -> str:
    """The row as quarantine keeps it: text or bytes as given, an object as faithful JSON
    (`render_json`: any depth, never a Python repr), cut with a marker when huge."""
    if isinstance(obj, str | bytes | bytearray | memoryview):
        return truncated(as_text(obj))
    if isinstance(obj, Unparsed):
        return obj.detail
    return render_json(obj)


def _bounded_repr(obj: Any) -> str:
    try:
        return _REPR.repr(obj)
    except Exception:  # noqa: BLE001 - a hostile object's __repr__ may do anything
        return f"<unprintable {type(obj).__name__}>"


def row_model(obj: Any, default_model: str | None) -> Any:
    """The model a row names (its "model" key), else `default_model`."""
    return obj.get("model", default_model) if isinstance(obj, dict) else default_model


def validator_for(obj: Any, model: Any, default_model: str | None, validators: Mapping[str, V]) -> V:
    """The validator of a row's model; Invalid for a non-object, a row naming another
    model than `default_model` (model_mismatch) or a model without one (unknown_model)."""
    if not isinstance(obj, dict):
        raise _not_an_object(obj)
    if default_model is not None and model != default_model:
        raise Invalid("model_mismatch", f"row is for model {_bounded_repr(model)[:100]}, "
                      f"not {default_model!r}")
    validator = validators.get(model) if isinstance(model, str) else None
    if validator is None:
        raise Invalid("unknown_model", f"no configured model named {_bounded_repr(model)[:100]}")
    return validator


def rejection(obj: Any, raw: RawText | None, bad: Invalid, source: str, model: Any) -> Rejection:
    """A Rejection for a bad row, with its model and, when readable, its own timestamp.

    `raw` is the row's text as it arrived when intake has it (kept as is), else the row
    is rendered as JSON."""
    ts = None
    if isinstance(obj, Mapping) and obj.get("timestamp") is not None:
        try:
            ts = parse_timestamp(obj["timestamp"])
        except Exception:  # noqa: BLE001 - the row is rejected anyway; its time is optional
            ts = None
    # the model column holds 64 characters of text: a longer or unstorable name stays in raw
    name = model if isinstance(model, str) and len(model) <= MAX_MODEL_NAME else None
    if name is not None and ("\x00" in name or not _storable(name)):
        name = None
    return Rejection(raw_text(raw) if raw else raw_text(obj), bad.reason, bad.detail, source,
                     name, ts)


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
        # inside the try: a time near year 1 or 9999 may overflow when moved to UTC
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    except (ValueError, TypeError, OverflowError, OSError) as err:
        shown = _bounded_repr(value)[:200]
        raise Invalid("bad_timestamp", f"cannot parse timestamp {shown}: {err}") from err


def check_time(ts: datetime, bounds: TimeBounds) -> datetime:
    """`ts` when `bounds` admit it; Invalid("future_timestamp") beyond the server's clock
    plus `server.max_future_skew`, Invalid("too_old") before what retention keeps."""
    if bounds.earliest <= ts <= bounds.latest:
        return ts
    raise time_refused(ts, bounds)


def time_refused(ts: datetime, bounds: TimeBounds) -> Invalid:
    """The Invalid of a timestamp outside `bounds` (the hot paths compare inline)."""
    if ts > bounds.latest:
        ahead = span(ts - bounds.now) if bounds.now is not None else "?"
        return Invalid("future_timestamp", f"timestamp {ts.isoformat()} is {ahead} ahead of the "
                       f"server's clock ({_iso(bounds.now)}); server.max_future_skew allows "
                       f"{span(bounds.max_future_skew or timedelta(0))}: check the sender's clock")
    return Invalid("too_old", f"timestamp {ts.isoformat()} is older than the log keeps "
                   f"(scheduler.retention_days = {bounds.retention_days}: rows before "
                   f"{_iso(bounds.earliest)} are deleted); raise scheduler.retention_days to "
                   "load older traffic")


def _iso(ts: datetime | None) -> str:
    return "?" if ts is None else ts.isoformat(timespec="seconds")


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
        #: `[models.segments] attributes`: carried beside the inputs, never fed to the model
        self.attributes = tuple(model.segments.attributes)

    def check(self, obj: Any, bounds: TimeBounds = ANY_TIME) -> PredictionRecord:
        """A validated record from a JSON-like mapping, stamped within `bounds`; raises
        Invalid."""
        if not isinstance(obj, dict):
            raise _not_an_object(obj)
        request_id = check_request_id(obj.get("request_id"))
        ts = check_time(parse_timestamp(obj.get("timestamp")), bounds)
        features = self.check_features(obj.get("features"))
        if "prediction" not in obj:
            raise Invalid("bad_prediction", "prediction: missing")
        prediction = self.check_prediction(obj["prediction"])
        label = obj.get("label")
        if label is not None:
            label = self.check_label(label)
        attributes = self.check_attributes(obj.get("attributes")) if self.attributes else None
        return PredictionRecord(self.model, request_id, ts, features, prediction, label, attributes)

    def check_attributes(self, attributes: Any) -> dict[str, Any] | None:
        """The declared attributes in config order (undeclared ones dropped: they are
        never stored nor fed to the model); None when the model declares none.
        Raises Invalid (missing_attribute, bad_attribute)."""
        if not self.attributes:
            return None
        if attributes is None:
            attributes = {}
        if not isinstance(attributes, dict):
            raise Invalid(
                "bad_attribute", f"attributes: expected an object, got {type(attributes).__name__}"
            )
        return {name: check_attribute(name, attributes.get(name)) for name in self.attributes}

    def check_label(self, value: Any) -> Any:
        """A label fit for this model's task (as /v1/labels checks it); raises Invalid."""
        return check_label(value, self.task, self.class_names)

    def check_features(self, features: Any) -> dict[str, Any]:
        """The features in config order, each checked (a missing value, null or NaN, is
        None); raises Invalid."""
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
                if value != value:
                    value = None  # NaN: how files and dataframes spell a missing value
                elif value in (math.inf, -math.inf):
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


#: attribute values given as text longer than this are refused (a group name, not a document)
MAX_ATTRIBUTE_TEXT = 256


def check_attribute(name: str, value: Any) -> str | int | float | bool:
    """One declared attribute's value: text, a finite number or a bool; raises Invalid."""
    kind = type(value)
    if kind is str:
        if len(value) > MAX_ATTRIBUTE_TEXT or "\x00" in value or not _storable(value):
            raise Invalid("bad_attribute", f"attribute {name}: text too long or not storable")
        return value
    if kind is int or kind is bool:
        return value
    if value is None:
        raise Invalid("missing_attribute", f"attribute {name}: missing or null")
    if isinstance(value, Real):
        number = float(value)
        if not math.isfinite(number):
            raise Invalid("bad_attribute", f"attribute {name}: {value!r} is not finite")
        return int(value) if isinstance(value, Integral) else number
    raise Invalid(
        "bad_attribute",
        f"attribute {name}: expected text, a number or a bool, got {type(value).__name__}",
    )


def _numeric_slow(name: str, value: Any) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise Invalid("wrong_type", f"{name}: expected a number, got {type(value).__name__}")
    number = float(value)
    if number != number:
        return None
    if not math.isfinite(number):
        raise Invalid("non_finite", f"{name}: {value!r} is not finite")
    return int(value) if isinstance(value, Integral) else number


def _categorical_slow(name: str, value: Any) -> str | int | bool | None:
    if value is None:
        return None
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid("non_finite", f"{name}: {value!r} is not finite")
    raise Invalid(
        "wrong_type",
        f"{name}: categorical values must be str, int or bool, got {type(value).__name__}",
    )


def internal_error(err: BaseException) -> Invalid:
    """The Invalid that quarantines a row an unexpected error stopped (never its batch)."""
    return Invalid("internal_error", f"unexpected {type(err).__name__} while checking the row: "
                   f"{_bounded_repr(str(err))[:300]}")


def _not_an_object(obj: Any) -> Invalid:
    if isinstance(obj, Unparsed):
        return Invalid("invalid_json", obj.detail)
    return Invalid("invalid_json", f"a record must be a JSON object, got {type(obj).__name__}")


def check_request_id(value: Any) -> str:
    """A non-empty request id (ints are accepted as text); raises Invalid.

    NUL characters and lone surrogates are refused: PostgreSQL text cannot hold them.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise Invalid("missing_request_id", "request_id: a non-empty string is required")
    if len(value) > MAX_REQUEST_ID:
        raise Invalid("missing_request_id", f"request_id: longer than {MAX_REQUEST_ID} characters")
    if not value.isascii() and not _storable(value) or "\x00" in value:
        raise Invalid("missing_request_id", "request_id: contains a NUL or a lone surrogate")
    return value


def _storable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


#: class labels given as text longer than this are refused (no class name is that long)
MAX_LABEL_TEXT = 256


def check_label(value: Any, task: str | None, class_names: tuple[str, ...] = ()) -> Any:
    """A label checked for `task` (None: any finite scalar); raises Invalid.

    Regression: a finite number. Binary: 0/1 (int, float or bool) or a class name.
    Multiclass: a class index (within `class_names` when configured) or a class name.
    Nested values, NaN/inf, and text that names no class are refused.
    """
    kind = type(value)  # the common cases first: this runs for every labelled row
    if kind is int and task is not None and value >= 0:
        if task == "regression" or value < (2 if task == "binary_classification"
                                            else len(class_names) or value + 1):
            return value
    elif kind is float and task == "regression" and value - value == 0.0:
        return value
    if value is None:
        raise Invalid("missing_label", "label: missing or null")
    if not isinstance(value, str | int | float | bool) or (
        isinstance(value, float) and not math.isfinite(value)
    ):
        raise Invalid("wrong_type", f"label: expected a finite number, string or bool, "
                      f"got {type(value).__name__}")
    if task is None:
        if isinstance(value, str) and (len(value) > MAX_LABEL_TEXT or not _storable(value)):
            raise Invalid("bad_label", "label: text too long or not storable")
        return value
    if task == "regression":
        if isinstance(value, bool | str):
            raise Invalid("bad_label", f"label: a regression label must be a number, "
                          f"got {_bounded_repr(value)[:80]}")
        return value
    if isinstance(value, str):
        if value in class_names:
            return value
        raise Invalid("bad_label", f"label: {_bounded_repr(value)[:80]} is not a class of the "
                      f"model (class_names: {list(class_names)})")
    if isinstance(value, bool):
        if task != "binary_classification":
            raise Invalid("bad_label", "label: a multiclass label must be a class index or name")
        return value
    if value != int(value) or value < 0:
        raise Invalid("bad_label", f"label: {value!r} is not a class index")
    limit = 2 if task == "binary_classification" else len(class_names) or None
    if limit is not None and value >= limit:
        raise Invalid("bad_label", f"label: class index {value!r} out of range (< {limit})")
    return value


@dataclass(frozen=True)
class Checked:
    """The outcome of checking a batch: valid records, rejections, duplicates skipped."""

    records: tuple[Any, ...]
    rejected: tuple[Rejection, ...]
    duplicates: int


def check_predictions(
    items: Iterable[tuple[Any, RawText | None]],
    validators: Mapping[str, Validator],
    *,
    source: str,
    default_model: str | None = None,
    bounds: TimeBounds = ANY_TIME,
) -> Checked:
    """Validate (object, raw text or None) pairs; the first row of a request id wins.

    A row's model is its "model" key, else `default_model`; a model without a
    validator is quarantined as unknown_model, a row naming another model than
    `default_model` as model_mismatch, a row stamped outside `bounds` as
    future_timestamp or too_old.
    """
    records: list[PredictionRecord] = []
    rejected: list[Rejection] = []
    seen: set[tuple[str, str]] = set()
    duplicates = 0
    for obj, raw in items:
        model = row_model(obj, default_model)
        try:
            record = validator_for(obj, model, default_model, validators).check(obj, bounds)
        except Invalid as bad:
            rejected.append(rejection(obj, raw, bad, source, model))
            continue
        except Exception as err:  # noqa: BLE001 - one row's bug must not fail its batch
            log.exception("a row failed unexpectedly; quarantined as internal_error")
            rejected.append(rejection(obj, raw, internal_error(err), source, model))
            continue
        key = (record.model, record.request_id)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        records.append(record)
    return Checked(tuple(records), tuple(rejected), duplicates)


def check_labels(
    items: Iterable[tuple[Any, RawText | None]],
    models: Iterable[str | ModelConfig],
    *,
    source: str,
) -> Checked:
    """Validate label rows ``{"model", "request_id", "label"}``; first per request id wins.

    Given ModelConfigs, labels are checked against each model's task (`check_label`);
    given bare names, any finite scalar passes. An unexpected error on a row
    quarantines that row as internal_error.
    """
    known: dict[str, tuple[str | None, tuple[str, ...]]] = {}
    for m in models:
        if isinstance(m, str):
            known[m] = (None, ())
        else:
            known[m.name] = (m.task, tuple(m.class_names))
    records: list[LabelRecord] = []
    rejected: list[Rejection] = []
    seen: set[tuple[str, str]] = set()
    duplicates = 0
    for obj, raw in items:
        model = obj.get("model") if isinstance(obj, dict) else None
        try:
            if not isinstance(obj, dict):
                raise _not_an_object(obj)
            if not isinstance(model, str) or model not in known:
                raise Invalid("unknown_model", f"no configured model named {_bounded_repr(model)[:100]}")
            request_id = check_request_id(obj.get("request_id"))
            label = check_label(obj.get("label"), *known[model])
        except Invalid as bad:
            rejected.append(rejection(obj, raw, bad, source, model))
            continue
        except Exception as err:  # noqa: BLE001 - one row's bug must not fail its batch
            log.exception("label row failed unexpectedly; quarantined as internal_error")
            rejected.append(rejection(obj, raw, internal_error(err), source, model))
            continue
        if (model, request_id) in seen:
            duplicates += 1
            continue
        seen.add((model, request_id))
        records.append(LabelRecord(model, request_id, label))
    return Checked(tuple(records), tuple(rejected), duplicates)


__all__ = [
    "DUPLICATE",
    "RawText",
    "Checked",
    "Invalid",
    "Unparsed",
    "Validator",
    "check_labels",
    "check_predictions",
    "check_attribute",
    "check_label",
    "check_request_id",
    "check_time",
    "internal_error",
    "time_refused",
    "parse_timestamp",
    "raw_text",
]
