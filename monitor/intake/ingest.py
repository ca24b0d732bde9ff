"""Ingest: parse, validate, store valid rows and quarantine the rest, in one transaction.

The one path every entry point shares (HTTP, `monitor ingest`, the Python client in
database mode), so a row is judged the same way whichever way it came in.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence

import orjson
from sqlalchemy import Engine

from monitor.config import ModelConfig
from monitor.intake.prepare import prepare_predictions
from monitor.intake.records import DUPLICATE, IngestResult, Rejection
from monitor.intake.validate import Unparsed, Validator, check_labels
from monitor.store import predictions as store
from monitor.store import transaction

log = logging.getLogger(__name__)

Row = tuple[object, str | None]


def parse_body(body: bytes) -> list[Row]:
    """Rows of a JSON array, a single JSON object, or NDJSON (one object per line).

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
            return [(item, None) for item in parsed]
        if parsed is not _NOT_JSON:
            return [(parsed, None)]
        if stripped[:1] == b"[":
            return [(Unparsed("the body is not a valid JSON array"), _text(stripped))]
    rows: list[Row] = []
    for number, line in enumerate(stripped.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((orjson.loads(line), None))
        except orjson.JSONDecodeError as err:
            rows.append((Unparsed(f"line {number}: {err}"), _text(line)))
    return rows


_NOT_JSON = object()


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
) -> IngestResult:
    """Validate rows, append the valid ones to the log and quarantine the others.

    A label given with a prediction goes to the label table. Returns the counts;
    request ids already logged count as `duplicate`.
    """
    checked = prepare_predictions(
        rows, validators_for(models), source=source, default_model=default_model
    )
    with transaction(engine) as session:
        inserted = store.insert_log_rows(session, checked.rows)
        store.insert_labels(session, checked.labels)
        store.quarantine_rows(session, checked.rejected, source=source)
    return _result(len(checked.rows), checked.rejected, checked.duplicates, inserted)


def ingest_labels(
    engine: Engine, models: Sequence[ModelConfig], rows: Iterable[Row], *, source: str
) -> IngestResult:
    """Validate and store label rows; bad ones are quarantined with their reason."""
    checked = check_labels(rows, [m.name for m in models], source=source)
    with transaction(engine) as session:
        inserted = store.insert_labels(session, checked.records)
        store.quarantine_rows(session, checked.rejected, source=source)
    return _result(len(checked.records), checked.rejected, checked.duplicates, inserted)
