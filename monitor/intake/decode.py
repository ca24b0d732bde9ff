"""Ingest's fast decode: a JSON array of prediction rows checked against the models' schemas in C.

`decode_predictions` gives every row the verdict `prepare_predictions` gives it (stored
iff accepted there, else quarantined with the same reason and detail), but decodes the
batch with msgspec against a schema built from each model's features: keys, exact value
types, 64-bit integers and finite floats are checked while parsing, in C. A row's
features JSON is stored as it was sent (its spelling and key order: the bytes pass
through, no float is printed again); it is checked by one more decode of the batch's
features objects, which builds nothing that is kept. Only a row the
schema refuses (or whose request id, timestamp, prediction or label fails the cheap checks
that follow) is parsed again with orjson and judged by the detailed Python path, which
names its reason. A body that is not a JSON array, is not valid UTF-8, or whose refused
rows orjson cannot parse alone is left to the general path (None).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Union

import msgspec
import orjson

from monitor.intake.prepare import FastValidator, Prepared, encode_prediction
from monitor.intake.records import LabelRecord, Rejection
from monitor.intake.timebounds import ANY_TIME, TimeBounds
from monitor.intake.validate import (
    MAX_REQUEST_ID,
    Invalid,
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

_MAX = 1.7976931348623157e308
#: orjson reads integers in [-2**63, 2**64) as int and larger ones as float; msgspec bounds
#: stop at int64: any integer outside goes to the detailed path, which sees what orjson gives
_INT = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
#: bounds that refuse NaN and +-inf
_FLOAT = Annotated[float, msgspec.Meta(ge=-_MAX, le=_MAX)]
_NUMBER = Union[_INT, _FLOAT]  # noqa: UP007 - msgspec reads typing unions
#: a feature's value may be null: a missing value is data (stored as sent, judged in data
#: quality against the baseline's missing share); an absent key is not
_FEATURE_NUMBER = Union[None, _INT, _FLOAT]  # noqa: UP007
_CATEGORY = Union[None, str, bool, _INT]  # noqa: UP007
_PREDICTION = Union[_INT, _FLOAT, list[_NUMBER], dict[str, _NUMBER]]  # noqa: UP007
_LABEL = Union[None, bool, _INT, _FLOAT, str]  # noqa: UP007
#: declared attributes are scalars: anything else (nested, huge integers) is judged in Python
_ATTRIBUTES = Union[None, dict[str, Union[None, str, bool, _INT, _FLOAT]]]  # noqa: UP007
#: ISO text is parsed by the same `parse_timestamp` as the detailed path (exact parity);
#: epoch seconds arrive as a float
_TIMESTAMP = Union[None, str, float]  # noqa: UP007
#: a tag no row can name by accident: keeps a one-model schema a union (which requires
#: the "model" key, as the detailed path does); a row decoded to it is judged in Python
_NEVER = "\x00monitor-no-model\x00"


class _Restart(Exception):
    """A row of the whole-batch decode needs the detailed path: decode row by row."""


Schema = tuple[str, tuple[str, ...], tuple[str, ...], bool]


def _schema(validator: Validator) -> Schema:
    return (validator.model, tuple(validator.numeric), tuple(validator.categorical),
            bool(validator.attributes))


def _row_struct(schema: Schema, tagged: bool) -> tuple[type[msgspec.Struct], type[msgspec.Struct]]:
    """(the row's struct, with its features as raw JSON; the struct the features must fit)"""
    name, numeric, categorical, attributes = schema
    names = numeric + categorical
    # positional attribute names, renamed to the feature names: any text is a valid name
    # gc=False: decoded JSON holds no reference cycles, and a batch makes thousands of
    # these (tracked, they cost collections as large as the decode itself)
    fields = [(f"f{i}", _FEATURE_NUMBER) for i in range(len(numeric))]
    fields += [(f"f{i}", _CATEGORY) for i in range(len(numeric), len(names))]
    features = msgspec.defstruct(
        "Features", fields, forbid_unknown_fields=True, gc=False,
        rename={f"f{i}": feature for i, feature in enumerate(names)},
    )
    row: list[Any] = [
        ("request_id", Union[str, _INT]),  # noqa: UP007
        # stored as sent (no float printed again); checked against `features` per batch
        ("features", msgspec.Raw),
        ("prediction", _PREDICTION),
        ("timestamp", _TIMESTAMP, None),
        ("label", _LABEL, None),
    ]
    if attributes:
        row.append(("attributes", _ATTRIBUTES, None))
    if tagged:
        return msgspec.defstruct("Row", row, tag_field="model", tag=name, gc=False), features
    return msgspec.defstruct("Row", [*row, ("model", Union[str, msgspec.UnsetType],  # noqa: UP007
                                            msgspec.UNSET)], gc=False), features


@dataclass(frozen=True)
class _Decoders:
    batch: Any  #: the body: a list of rows
    row: Any  #: one row
    #: row struct -> model name (None: a row the detailed path judges)
    names: dict[type, str | None]
    #: row struct -> (decoder of a JSON list of its features objects, of one of them)
    features: dict[type, tuple[Any, Any]]


@lru_cache(maxsize=64)
def _decoders(schemas: tuple[Schema, ...], default_model: str | None) -> _Decoders | None:
    """The decoders of these schemas (None: no schema for the default model)."""
    if default_model is not None:
        only = next((s for s in schemas if s[0] == default_model), None)
        pairs = [_row_struct(only, tagged=False)] if only is not None else []
    else:
        pairs = [_row_struct(s, tagged=True) for s in schemas]
    if not pairs:
        return None
    structs = [row for row, _ in pairs]
    if default_model is None:
        structs.append(msgspec.defstruct("Never", [], tag_field="model", tag=_NEVER))
    row_type = Union[tuple(structs)]  # noqa: UP007
    names = {cls: getattr(cls.__struct_config__, "tag", None) for cls in structs}
    if default_model is not None:
        names = {cls: default_model for cls in structs}
    names = {cls: (None if name == _NEVER else name) for cls, name in names.items()}
    features = {row: (msgspec.json.Decoder(list[fit]), msgspec.json.Decoder(fit)) for row, fit in pairs}
    return _Decoders(msgspec.json.Decoder(list[row_type]), msgspec.json.Decoder(row_type), names,
                     features)


class _Batch:
    """The verdicts of one batch, in row order (first request id wins)."""

    def __init__(self, validators: Mapping[str, Validator], source: str,
                 default_model: str | None, bounds: TimeBounds):
        # fresh copies: a validator learns a multiclass length from the rows it sees
        self.validators = {name: copy.copy(v) for name, v in validators.items()}
        self.fast = {name: FastValidator(v) for name, v in self.validators.items()}
        self.source, self.default_model, self.bounds = source, default_model, bounds
        self.rows: list[tuple[Any, ...]] = []
        self.labels: list[LabelRecord] = []
        self.rejected: list[Rejection] = []
        self.seen: set[tuple[str, str]] = set()
        self.duplicates = 0

    def decoded(self, row: Any, model: str) -> None:
        """Add a row the schema accepted; Invalid when a cheap check fails."""
        if self.default_model is not None and row.model is not msgspec.UNSET \
                and row.model != model:
            raise Invalid("model_mismatch", "")  # the detailed path words it
        validator = self.validators[model]
        request_id = row.request_id
        # the common id passes `check_request_id` surely: skip the call
        if not (type(request_id) is str and 0 < len(request_id) <= MAX_REQUEST_ID
                and request_id.isascii() and "\x00" not in request_id
                and not request_id.isspace()):
            if type(request_id) is int:
                request_id = str(request_id)
            request_id = check_request_id(request_id)
        ts = parse_timestamp(row.timestamp)
        if not self.bounds.earliest <= ts <= self.bounds.latest:
            raise time_refused(ts, self.bounds)
        prediction = row.prediction
        if not (validator.task == "binary_classification" and type(prediction) is float
                and 0.0 <= prediction <= 1.0):
            prediction = validator.check_prediction(prediction)
        label = row.label
        if label is not None:
            label = validator.check_label(label)
        attributes = None
        if validator.attributes:  # the same check and bytes as the detailed path's
            attributes = orjson.dumps(validator.check_attributes(row.attributes))
        key = (model, request_id)
        if key in self.seen:
            self.duplicates += 1
            return
        self.seen.add(key)
        self.rows.append((model, request_id, ts, bytes(row.features), encode_prediction(prediction),
                          attributes))
        if label is not None:
            self.labels.append(LabelRecord(model, request_id, label))

    def detailed(self, obj: Any, raw: bytes) -> None:
        """Add a row judged by the detailed path (as `prepare_predictions` judges it);
        `raw` is its text as sent, kept if it is quarantined."""
        model = row_model(obj, self.default_model)
        try:
            validator = validator_for(obj, model, self.default_model, self.fast)
            request_id, ts, features, prediction, label = validator.prepare(obj, False,
                                                                            self.bounds)
            attributes = validator.attributes(obj)
        except Invalid as bad:
            self.rejected.append(rejection(obj, raw, bad, self.source, model))
            return
        except Exception as err:  # noqa: BLE001 - one row's bug must not fail its batch
            log.exception("a row failed unexpectedly; quarantined as internal_error")
            self.rejected.append(rejection(obj, raw, internal_error(err), self.source, model))
            return
        self._add(model, request_id, ts, features, prediction, label, attributes)

    def _add(self, model: str, request_id: str, ts: Any, features: bytes, prediction: bytes,
             label: Any, attributes: bytes | None) -> None:
        key = (model, request_id)
        if key in self.seen:
            self.duplicates += 1
            return
        self.seen.add(key)
        self.rows.append((model, request_id, ts, features, prediction, attributes))
        if label is not None:
            self.labels.append(LabelRecord(model, request_id, label))

    def prepared(self) -> Prepared:
        return Prepared(tuple(self.rows), tuple(self.labels), tuple(self.rejected),
                        self.duplicates)


def decode_predictions(
    body: bytes,
    validators: Mapping[str, Validator],
    *,
    source: str,
    default_model: str | None = None,
    bounds: TimeBounds = ANY_TIME,
) -> Prepared | None:
    """The checked rows of a JSON-array body, as `prepare_predictions(parse_body(body),
    bounds=bounds)` would give them; None when the body must take that general path
    instead."""
    stripped = body.strip()
    if stripped[:1] != b"[" or not validators:
        return None
    if not stripped.isascii():
        try:
            stripped.decode()  # orjson refuses invalid UTF-8 anywhere; msgspec may skip it
        except UnicodeDecodeError:
            return None
    schemas = tuple(_schema(v) for v in validators.values())
    decoders = _decoders(schemas, default_model)
    if decoders is None:
        return None
    # (msgspec raises RecursionError, not a DecodeError, for JSON nested too deep)
    if b"\\" not in stripped:  # escapes are judged row by row, by orjson
        try:
            rows = decoders.batch.decode(stripped)
            _check_features(rows, decoders.features)
        except (msgspec.DecodeError, RecursionError):
            pass
        else:
            try:
                return _whole(rows, decoders.names, _Batch(validators, source, default_model,
                                                           bounds))
            except _Restart:
                pass
    return _row_by_row(stripped, decoders, _Batch(validators, source, default_model, bounds))


def _check_features(rows: list[Any], decoders: dict[type, tuple[Any, Any]]) -> None:
    """Check every row's raw features against its model's schema, one decode per model
    (DecodeError: some row's do not fit)."""
    by_struct: dict[type, list[Any]] = {}
    for row in rows:
        by_struct.setdefault(type(row), []).append(row.features)
    for struct, raws in by_struct.items():
        if struct in decoders:
            decoders[struct][0].decode(b"[" + b",".join(raws) + b"]")


def _whole(rows: list[Any], names: dict, batch: _Batch) -> Prepared:
    for row in rows:
        model = names[type(row)]
        if model is None:
            raise _Restart
        try:
            batch.decoded(row, model)
        except Invalid as err:
            raise _Restart from err
    return batch.prepared()


def _row_by_row(body: bytes, decoders: _Decoders, batch: _Batch) -> Prepared | None:
    try:
        raws = msgspec.json.decode(body, type=list[msgspec.Raw])
    except (msgspec.DecodeError, RecursionError):
        return None
    for element in raws:
        raw = bytes(element)
        if b"\\" not in raw:
            try:
                row = decoders.row.decode(raw)
                model = decoders.names[type(row)]
                if model is not None:
                    decoders.features[type(row)][1].decode(row.features)
                    batch.decoded(row, model)
                    continue
            except (msgspec.DecodeError, RecursionError, Invalid):
                pass
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None  # the general path names the element orjson cannot read
        batch.detailed(obj, raw)
    return batch.prepared()


__all__ = ["decode_predictions"]
