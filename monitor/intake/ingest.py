"""Ingest: parse, validate, store valid rows and quarantine the rest, in one transaction.

The one path every entry point shares (HTTP, `monitor ingest`, the Python client in
database mode), so a row is judged the same way whichever way it came in.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence

import msgspec
import orjson
import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from monitor.config import ModelConfig
from monitor.intake.decode import decode_predictions
from monitor.intake.group import GroupCommit
from monitor.intake.prepare import LogRow, Prepared, prepare_predictions
from monitor.intake.records import DUPLICATE, IngestResult, LabelRecord, Rejection
from monitor.intake.timebounds import ANY_TIME, TimeBounds, TimePolicy
from monitor.intake.validate import RawText, Unparsed, Validator, check_labels, raw_text
from monitor.store import predictions as store
from monitor.store import transaction

log = logging.getLogger(__name__)

#: (the parsed row, its text as sent when intake has it)
Row = tuple[object, RawText | None]


def parse_body(body: bytes) -> list[Row]:
    """Rows of a JSON array, a single JSON object, or NDJSON (one object per line), each
    with its text as sent (what quarantine keeps of it).

    A body that is not JSON as a whole is read line by line; a line that is not JSON
    becomes an Unparsed row (quarantined as invalid_json), never an exception.
    """
    stripped = body.strip()
    if not stripped:
        return []
    if stripped[:1] in (b"[", b"{"):
        try:
            parsed = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            parsed = _NOT_JSON
        if isinstance(parsed, list):
            return list(zip(parsed, _element_texts(stripped, len(parsed)), strict=True))
        if parsed is not _NOT_JSON:
            return [(parsed, stripped)]
        if stripped[:1] == b"[":
            return _array_items(stripped)
    rows: list[Row] = []
    for number, line in enumerate(stripped.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((orjson.loads(line), line))
        except orjson.JSONDecodeError as err:
            rows.append((Unparsed(f"line {number}: {err}"), _text(line)))
    return rows


def _element_texts(array: bytes, count: int) -> list[RawText | None]:
    """The text of each element of a JSON array orjson parsed (views, no copies); cut by
    the token scan when msgspec cannot (an element nested ~1,000 deep), else None each
    (the rows are then rendered as JSON if quarantined)."""
    try:
        return [memoryview(raw) for raw in msgspec.json.decode(array, type=list[msgspec.Raw])]
    except (msgspec.DecodeError, RecursionError):
        pass
    cuts = _cut_array(array)
    if cuts is None or len(cuts) != count:
        return [None] * count
    return [array[begin:end].strip() for begin, end in cuts]


_NOT_JSON = object()
#: the tokens that matter when cutting a JSON array into its elements
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]')


def _array_items(body: bytes) -> list[Row]:
    """The elements of a JSON array that orjson refused as a whole (one element too
    deep, a bad token, ...): each element is parsed alone, so only the bad ones
    become Unparsed rows. A body that is not an array at all is one Unparsed row."""
    cuts = _cut_array(body)
    if cuts is None:
        return [(Unparsed("the body is not a valid JSON array"), _text(body))]
    rows: list[Row] = []
    for number, (begin, end) in enumerate(cuts, 1):
        item = body[begin:end].strip()
        if not item and len(cuts) == 1:
            continue  # "[ ]"
        try:
            rows.append((orjson.loads(item), item))
        except orjson.JSONDecodeError as err:
            rows.append((Unparsed(f"array element {number}: {err}"), _text(item)))
    return rows


def _cut_array(body: bytes) -> list[tuple[int, int]] | None:
    """(start, end) of each element of the JSON array `body`, by its tokens alone (any
    depth); None when `body` is not one array."""
    depth, start, cuts = 0, 1, []
    for match in _TOKENS.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
        elif token in (b"]", b"}"):
            depth -= 1
            if depth == 0:
                cuts.append((start, match.start()))
                tail = body[match.end():].strip()
                break
        elif token == b"," and depth == 1:
            cuts.append((start, match.start()))
            start = match.end()
    else:
        tail = b"unterminated"
    if depth != 0 or tail:
        return None
    return cuts


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def validators_for(models: Iterable[ModelConfig]) -> dict[str, Validator]:
    """A fresh validator per configured model, by name."""
    return {m.name: Validator(m) for m in models}


def _result(
    valid: int, rejected: Sequence[Rejection], duplicates: int, inserted: int
) -> IngestResult:
    reasons = Counter(r.reason for r in rejected)
    duplicates += valid - inserted
    if duplicates:
        reasons[DUPLICATE] += duplicates
    return IngestResult(inserted, len(rejected), dict(reasons))


def ingest_predictions(
    engine: Engine,
    models: Sequence[ModelConfig],
    rows: Iterable[Row],
    *,
    source: str,
    default_model: str | None = None,
    quarantine_once: bool = False,
    times: TimePolicy | None = None,
) -> IngestResult:
    """Validate rows, append the valid ones to the log and quarantine the others.

    A label given with a prediction goes to the label table. Returns the counts;
    request ids already logged count as `duplicate`. With `quarantine_once` (file
    loads, which may be rerun), a bad row already quarantined from the same source
    counts as `duplicate` instead of being quarantined again. With `times` (every
    entry point passes the settings' policy), a row stamped outside its bounds for
    this batch is quarantined (future_timestamp, too_old).
    """
    checked = prepare_predictions(
        rows, validators_for(models), source=source, default_model=default_model,
        bounds=_bounds(times),
    )
    return _store_predictions(engine, checked, source, quarantine_once)


def ingest_body(
    engine: Engine,
    models: Sequence[ModelConfig],
    body: bytes,
    *,
    source: str,
    default_model: str | None = None,
    group: GroupCommit | None = None,
    times: TimePolicy | None = None,
) -> IngestResult:
    """`ingest_predictions(engine, models, parse_body(body), ...)`, decoding a JSON-array
    body against the models' schemas in C (`decode_predictions`): the same verdicts.

    With `group` (the HTTP server's), the batch may share its transaction with batches
    other requests sent at the same time (`group_commit`); its answer is its own."""
    validators = validators_for(models)
    bounds = _bounds(times)
    checked = decode_predictions(body, validators, source=source, default_model=default_model,
                                 bounds=bounds)
    if checked is None:
        checked = prepare_predictions(parse_body(body), validators, source=source,
                                      default_model=default_model, bounds=bounds)
    if group is not None:
        return group.store(checked)
    return _store_predictions(engine, checked, source, False)


def _bounds(times: TimePolicy | None) -> TimeBounds:
    """The time bounds of a batch starting now (none without a policy)."""
    return ANY_TIME if times is None else times.bounds()


def group_commit(engine: Engine, source: str) -> GroupCommit:
    """A `GroupCommit` storing prediction batches from `source` as `ingest_body` does."""
    return GroupCommit(
        engine,
        source,
        alone=lambda eng, checked, src: _store_predictions(eng, checked, src, False),
        result=_result,
        row_errors=_ROW_ERRORS,
        unavailable=_unavailable,
    )


def _store_predictions(
    engine: Engine, checked: Prepared, source: str, quarantine_once: bool
) -> IngestResult:
    """Store a checked batch; a pooled connection the server dropped (nothing stored)
    is retried once on a fresh one, a database that is down raises (503)."""
    try:
        return _store_once(engine, checked, source, quarantine_once)
    except _ROW_ERRORS as err:
        if not _unavailable(err):
            raise
        log.info("the database connection was lost (%s); retrying the batch once",
                 _first_line(err))
    return _store_once(engine, checked, source, quarantine_once)


def _store_once(
    engine: Engine, checked: Prepared, source: str, quarantine_once: bool
) -> IngestResult:
    try:
        with transaction(engine) as session:
            if quarantine_once and checked.rejected:
                checked = _without_known(session, checked, source)
            inserted = store.insert_log_rows(session, checked.rows)
            store.insert_labels(session, checked.labels)
            store.quarantine_rows(session, checked.rejected, source=source)
    except _ROW_ERRORS as err:
        if _unavailable(err):
            raise
        log.warning("a %d-row batch from %s failed to store (%s); storing row by row",
                    len(checked.rows), source, _first_line(err))
        return _predictions_one_by_one(engine, checked, source)
    return _result(len(checked.rows), checked.rejected, checked.duplicates, inserted)


def ingest_labels(
    engine: Engine, models: Sequence[ModelConfig], rows: Iterable[Row], *, source: str
) -> IngestResult:
    """Validate and store label rows; bad ones are quarantined with their reason."""
    checked = check_labels(rows, models, source=source)
    try:
        with transaction(engine) as session:
            inserted = store.insert_labels(session, checked.records)
            store.quarantine_rows(session, checked.rejected, source=source)
    except _ROW_ERRORS as err:
        if _unavailable(err):
            raise
        log.warning("a %d-label batch from %s failed to store (%s); storing row by row",
                    len(checked.records), source, _first_line(err))
        as_prepared = Prepared((), tuple(checked.records), checked.rejected, checked.duplicates)
        return _predictions_one_by_one(engine, as_prepared, source)
    return _result(len(checked.records), checked.rejected, checked.duplicates, inserted)


def _without_known(session: Session, checked: Prepared, source: str) -> Prepared:
    known = store.known_rejections(session, source, [r.raw for r in checked.rejected])
    if not known:
        return checked
    fresh = tuple(r for r in checked.rejected if r.raw not in known)
    skipped = len(checked.rejected) - len(fresh)
    return Prepared(checked.rows, checked.labels, fresh, checked.duplicates + skipped)


#: errors a row's content can cause while storing (a database that is down is re-raised);
#: the bulk inserts use the driver's connection, so its own errors come unwrapped
_ROW_ERRORS = (DBAPIError, sqlite3.Error, psycopg.Error, ValueError, TypeError, OverflowError,
               UnicodeError)


def _unavailable(err: BaseException) -> bool:
    """True for a database that cannot be reached (the caller answers 503, stores nothing)."""
    return isinstance(err, OperationalError | sqlite3.OperationalError | psycopg.OperationalError) \
        or (isinstance(err, DBAPIError) and err.connection_invalidated)


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def _predictions_one_by_one(engine: Engine, checked: Prepared, source: str) -> IngestResult:
    """Store each row (and label) in its own savepoint: a row the database refuses is
    quarantined as internal_error, never taking its neighbours with it.

    For a label batch (`checked.rows` empty) the labels are the rows counted.
    """
    rejected = list(checked.rejected)
    inserted = refused = labels_new = labels_refused = 0
    with transaction(engine) as session:
        for row in checked.rows:
            try:
                with session.begin_nested():
                    inserted += store.insert_log_rows(session, [row])
            except _ROW_ERRORS as err:
                if _unavailable(err):
                    raise
                refused += 1
                rejected.append(_refused(_log_row_text(row), row[0], err, source))
        for label in checked.labels:
            try:
                with session.begin_nested():
                    labels_new += store.insert_labels(session, [label])
            except _ROW_ERRORS as err:
                if _unavailable(err):
                    raise
                labels_refused += 1
                rejected.append(_refused(_label_text(label), label.model, err, source))
        store.quarantine_rows(session, rejected, source=source)
    if not checked.rows:
        return _result(len(checked.labels) - labels_refused, rejected, checked.duplicates,
                       labels_new)
    return _result(len(checked.rows) - refused, rejected, checked.duplicates, inserted)


def _refused(raw: str, model: str, err: BaseException, source: str) -> Rejection:
    log.error("the database refused one row from %s: %s", source, _first_line(err))
    return Rejection(raw, "internal_error", f"refused by the database: {_first_line(err)[:300]}",
                     source, model)


def _log_row_text(row: LogRow) -> str:
    model, request_id, ts, features, prediction, attributes = row
    doc = {"model": model, "request_id": request_id, "timestamp": ts.isoformat(),
           "features": orjson.Fragment(bytes(features)),
           "prediction": orjson.Fragment(bytes(prediction))}
    if attributes is not None:
        doc["attributes"] = orjson.Fragment(bytes(attributes))
    return raw_text(doc)


def _label_text(label: LabelRecord) -> str:
    return raw_text({"label": label.label, "model": label.model, "request_id": label.request_id})
