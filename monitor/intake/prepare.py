"""The hot path of prediction ingest: validate rows and serialize them once for the log.

`prepare_predictions` gives every row the same verdict as `check_predictions` (accepted
by one iff by the other, else quarantined with the same reason), without building a
record per row. A row whose features pass a cheap check (the key set in one comparison,
exact value types, a finite sum) is serialized straight to a `LogRow`; any other row
goes through `Validator.check`, which finds its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import orjson

from monitor.intake.records import LabelRecord, Rejection
from monitor.intake.timebounds import ANY_TIME, TimeBounds
from monitor.intake.validate import (
    Invalid,
    RawText,
    Validator,
    check_request_id,
    internal_error,
    parse_timestamp,
    rejection,
    row_model,
    time_refused,
    validator_for,
)

log = logging.getLogger(__name__)

#: one validated prediction for the log: model, request_id, ts, features JSON, prediction JSON,
#: attributes JSON (None when the model declares no attribute)
#: (features may be a memoryview into the batch's JSON: any bytes-like object)
LogRow = tuple[str, str, datetime, bytes | memoryview, bytes, bytes | None]

_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
#: a checked prediction's JSON (numbers, lists or dicts of them): msgspec's encoder, as
#: orjson.dumps takes ~20x longer per small value when a batch keeps all of them (it
#: allocates a kilobyte for each, then shrinks it)
encode_prediction = msgspec.json.Encoder().encode
_NUMERIC = frozenset({float, int})
_CATEGORICAL = frozenset({str, int, bool})


@dataclass(frozen=True)
class Prepared:
    """A checked batch: log rows, labels given with them, rejections, duplicates skipped."""

    rows: tuple[LogRow, ...]
    labels: tuple[LabelRecord, ...]
    rejected: tuple[Rejection, ...]
    duplicates: int


def dumps(value: Any) -> bytes:
    """JSON bytes as the log stores them; Invalid("wrong_type") when not serializable."""
    try:
        return orjson.dumps(value, option=_OPTS)
    except (TypeError, orjson.JSONEncodeError) as err:
        raise Invalid("wrong_type", f"features: cannot be stored as JSON ({err})") from err


class FastValidator:
    """A Validator with a fast path for well-formed rows (the same verdicts)."""

    __slots__ = ("binary", "keys", "n_numeric", "names", "order", "validator")

    def __init__(self, validator: Validator):
        self.validator = validator
        self.order = tuple(validator.numeric) + tuple(validator.categorical)
        self.names = frozenset(self.order)
        self.n_numeric = len(validator.numeric)
        self.binary = validator.task == "binary_classification"
        #: the key tuple of the last row in config order: orjson hands out the same
        #: key objects row after row, so comparing with it is mostly pointer checks
        self.keys = self.order

    def fast_features(self, features: Any) -> dict[str, Any] | None:
        """Features in config order when they surely pass `check_features`, else None."""
        if type(features) is not dict or len(features) != len(self.order):
            return None
        keys = tuple(features)
        if keys != self.keys:
            if keys == self.order:
                self.keys = keys
            elif features.keys() == self.names:
                features = {name: features[name] for name in self.order}
            else:
                return None
        values = list(features.values())
        numeric = values[: self.n_numeric]
        if not _NUMERIC.issuperset(map(type, numeric)):
            return None
        if not _CATEGORICAL.issuperset(map(type, values[self.n_numeric :])):
            return None
        try:
            total = sum(numeric, 0.0)
        except OverflowError:
            return None
        if total - total != 0.0:  # NaN or +-inf somewhere (or an overflowing sum)
            return None
        return features

    def attributes(self, obj: dict[str, Any]) -> bytes | None:
        """The row's declared attributes as JSON (None when none are declared); raises
        Invalid as `Validator.check` does (checked after the prediction and label)."""
        if not self.validator.attributes:
            return None
        return orjson.dumps(self.validator.check_attributes(obj.get("attributes")))

    def prepare(self, obj: dict[str, Any], batch: bool, bounds: TimeBounds = ANY_TIME
                ) -> tuple[str, datetime, Any, bytes, Any]:
        """(request_id, ts, features, prediction JSON, label) of a row stamped within
        `bounds`; raises Invalid.

        Features are JSON bytes, or (`batch`, fast path) a dict left to serialize later.
        """
        features: Any = self.fast_features(obj.get("features"))
        if features is not None and not batch:
            try:
                features = orjson.dumps(features)
            except (TypeError, orjson.JSONEncodeError):
                features = None
        if features is None:
            record = self.validator.check(obj, bounds)  # the detailed path finds the reason
            features = dumps(record.features)
            return record.request_id, record.ts, features, dumps(record.prediction), record.label
        request_id = check_request_id(obj.get("request_id"))
        ts = parse_timestamp(obj.get("timestamp"))
        if not bounds.earliest <= ts <= bounds.latest:
            raise time_refused(ts, bounds)
        if "prediction" not in obj:
            raise Invalid("bad_prediction", "prediction: missing")
        prediction = obj["prediction"]
        if not (self.binary and type(prediction) is float and 0.0 <= prediction <= 1.0):
            prediction = self.validator.check_prediction(prediction)
        label = obj.get("label")
        if label is not None:
            label = self.validator.check_label(label)
        return request_id, ts, features, encode_prediction(prediction), label


class _Unserializable(Exception):
    """A fast-path row could not be serialized in the batch: redo it row by row."""


def prepare_predictions(
    items: Iterable[tuple[Any, RawText | None]],
    validators: Mapping[str, Validator],
    *,
    source: str,
    default_model: str | None = None,
    bounds: TimeBounds = ANY_TIME,
) -> Prepared:
    """Like `check_predictions`, but returns serialized log rows; the first request id wins.

    The features of fast-path rows are serialized in one orjson call for the batch
    (per-call overhead dominates for small objects), then cut into per-row views.
    """
    items = items if isinstance(items, list) else list(items)
    try:
        return _prepare(items, validators, source, default_model, bounds, batch=True)
    except _Unserializable:
        return _prepare(items, validators, source, default_model, bounds, batch=False)


def _prepare(
    items: list[tuple[Any, RawText | None]],
    validators: Mapping[str, Validator],
    source: str,
    default_model: str | None,
    bounds: TimeBounds,
    batch: bool,
) -> Prepared:
    fast = {name: FastValidator(v) for name, v in validators.items()}
    rows: list[list[Any]] = []
    labels: list[LabelRecord] = []
    rejected: list[Rejection] = []
    seen: set[tuple[str, str]] = set()
    duplicates = 0
    for obj, raw in items:
        model = row_model(obj, default_model)
        try:
            validator = validator_for(obj, model, default_model, fast)
            request_id, ts, features, prediction, label = validator.prepare(obj, batch, bounds)
            attributes = validator.attributes(obj)
        except Invalid as bad:
            rejected.append(rejection(obj, raw, bad, source, model))
            continue
        except Exception as err:  # noqa: BLE001 - one row's bug must not fail its batch
            log.exception("a row failed unexpectedly; quarantined as internal_error")
            rejected.append(rejection(obj, raw, internal_error(err), source, model))
            continue
        key = (model, request_id)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        rows.append([model, request_id, ts, features, prediction, attributes])
        if label is not None:
            labels.append(LabelRecord(model, request_id, label))
    if batch:
        _serialize_features(rows)
    return Prepared(tuple(map(tuple, rows)), tuple(labels), tuple(rejected), duplicates)


def _serialize_features(rows: list[list[Any]]) -> None:
    """Replace the dict features of `rows` by their JSON, one orjson call for all."""
    pending = [row for row in rows if type(row[3]) is dict]
    if not pending:
        return
    try:
        text = orjson.dumps([row[3] for row in pending])
    except (TypeError, orjson.JSONEncodeError) as err:
        raise _Unserializable from err
    # b'[{..},{..}]': objects are cut at "},{", which must occur exactly between them
    # (a string value containing "},{" would add cuts: then serialize row by row)
    view = memoryview(text)
    start, cuts = 1, []
    at = text.find(b"},{", 1)
    while at != -1 and len(cuts) < len(pending):
        cuts.append(at + 1)
        at = text.find(b"},{", at + 1)
    if len(cuts) != len(pending) - 1:
        for row in pending:
            row[3] = orjson.dumps(row[3])
        return
    cuts.append(len(text) - 1)
    for row, end in zip(pending, cuts, strict=True):
        row[3] = view[start:end]
        start = end + 1


__all__ = ["FastValidator", "LogRow", "Prepared", "dumps", "encode_prediction", "prepare_predictions"]
