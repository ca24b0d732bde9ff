"""Readers for prediction files: JSONL, CSV, Parquet and TFRecord PredictionLogs.

Every reader streams (row, raw text) pairs in record shape (``request_id``,
``timestamp``, ``features``, ``prediction``, ``label``) so that one validator serves
every format, and memory stays bounded by a chunk, not the file. TensorFlow is
imported only for TFRecord files.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from monitor.config import ModelConfig
from monitor.errors import IntakeError
from monitor.intake.validate import Unparsed, raw_text

CHUNK_ROWS = 10_000
Row = tuple[Any, str | None]

SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".tfrecord": "tfrecord",
    ".tfrecords": "tfrecord",
}


@dataclass(frozen=True)
class Columns:
    """Which columns of a flat row (CSV, Parquet, SQL) hold what."""

    timestamp: str = "timestamp"
    request_id: str = "request_id"
    prediction: str = "prediction"
    label: str | None = None

    @classmethod
    def for_model(cls, model: ModelConfig, source: Any = None) -> Columns:
        """The columns named by a files/sql source config, else the defaults."""
        cfg = source or model.files
        if cfg is None:
            return cls(label=model.label)
        return cls(
            cfg.timestamp_column,
            cfg.request_id_column,
            cfg.prediction_column,
            cfg.label_column or model.label,
        )


def detect_format(path: Path, fmt: str = "auto") -> str:
    """The file's format: `fmt` unless "auto", else guessed from the suffix."""
    if fmt != "auto":
        return fmt
    suffixes = [s.lower() for s in path.suffixes]
    for suffix in reversed(suffixes):
        if suffix in SUFFIXES:
            return SUFFIXES[suffix]
    if "prediction_log" in path.name:
        return "tfrecord"
    raise IntakeError(
        f"{path}: cannot tell the format from the name; pass --format "
        "(jsonl, csv, parquet or tfrecord)"
    )


def _none_if_missing(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _prediction(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def flat_to_record(
    row: dict[str, Any], model: ModelConfig, cols: Columns, *, require_timestamp: bool = False
) -> dict[str, Any]:
    """A record-shaped row from a flat one (one column per feature).

    Empty cells become missing features. Without a timestamp column the row is
    stamped now (unless `require_timestamp`); an empty timestamp cell is invalid.
    Nested JSONL rows (with a "features" object) pass through unchanged.
    """
    if isinstance(row.get("features"), dict):
        return row
    features = {n: _none_if_missing(row[n]) for n in model.features.names if n in row}
    ts: Any = None
    if cols.timestamp in row or require_timestamp:
        ts = _none_if_missing(row.get(cols.timestamp))
        ts = "" if ts is None or ts != ts else ts
    record = {
        "request_id": _none_if_missing(row.get(cols.request_id)),
        "timestamp": ts,
        "features": features,
        "prediction": _prediction(row.get(cols.prediction)),
    }
    if cols.label and cols.label in row:
        record["label"] = _none_if_missing(row[cols.label])
    if "model" in row:
        record["model"] = row["model"]
    return record


def read_jsonl(path: Path) -> Iterator[Row]:
    """(parsed object or Unparsed, line) per non-blank line."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            try:
                yield orjson.loads(line), text
            except orjson.JSONDecodeError as err:
                yield Unparsed(f"line {number}: {err}"), text


def read_csv(path: Path) -> Iterator[Row]:
    """(row dict, JSON of the row) per CSV row, read in chunks."""
    import pandas as pd

    for chunk in pd.read_csv(path, chunksize=CHUNK_ROWS):
        for row in chunk.to_dict("records"):
            yield row, None


def read_parquet(path: Path) -> Iterator[Row]:
    """(row dict, None) per Parquet row, read batch by batch."""
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS):
        for row in batch.to_pylist():
            yield row, None


def iter_file(
    path: Path,
    model: ModelConfig,
    fmt: str = "auto",
    cols: Columns | None = None,
    *,
    require_timestamp: bool = False,
) -> Iterator[Row]:
    """Record-shaped (row, raw) pairs of one file, whatever its format."""
    fmt = detect_format(path, fmt)
    cols = cols or Columns.for_model(model)
    if fmt == "tfrecord":
        from monitor.intake.tfrecord import read_prediction_logs

        yield from read_prediction_logs(path, model)
        return
    reader = {"jsonl": read_jsonl, "csv": read_csv, "parquet": read_parquet}.get(fmt)
    if reader is None:
        raise IntakeError(f"{path}: unknown format {fmt!r} (jsonl, csv, parquet or tfrecord)")
    try:
        for row, raw in reader(path):
            if isinstance(row, dict):
                record = flat_to_record(row, model, cols, require_timestamp=require_timestamp)
                yield record, raw or raw_text(row)
            else:
                yield row, raw
    except OSError as err:
        raise IntakeError(f"{path}: cannot be read: {err}") from err


def iter_tfrecords(handle: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(byte offset, payload) of each record of a TFRecord stream (CRCs not checked)."""
    offset = 0
    while True:
        header = handle.read(12)
        if not header:
            return
        if len(header) < 12:
            raise IntakeError(f"truncated TFRecord header at byte {offset}")
        (length,) = struct.unpack("<Q", header[:8])
        payload = handle.read(length)
        if len(payload) < length or len(handle.read(4)) < 4:
            raise IntakeError(f"truncated TFRecord at byte {offset}")
        yield offset, payload
        offset += 16 + length


def open_tfrecord(path: Path) -> BinaryIO:
    """The file, decompressed when it is gzip (TFX BulkInferrer writes .gz)."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")  # noqa: SIM115


def stable_id(path: Path, offset: int) -> str:
    """A request id derived from the file name and the record's offset."""
    return hashlib.sha1(f"{path.name}:{offset}".encode(), usedforsecurity=False).hexdigest()[:24]
