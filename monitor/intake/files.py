"""Readers for prediction files: JSONL, CSV, Parquet and TFRecord PredictionLogs.

Every reader streams (row, raw text) pairs in record shape (``request_id``,
``timestamp``, ``features``, ``prediction``, ``label``) so that one validator serves
every format, and memory stays bounded by a chunk, not the file. TensorFlow is
imported only for TFRecord files.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
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

    Empty cells become missing features; the columns named in `[models.segments]
    attributes` become the record's attributes. Without a timestamp column the row is
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
    if model.segments.attributes:
        # columns named in [models.segments] attributes: carried beside the inputs
        record["attributes"] = {
            n: _none_if_missing(row[n]) for n in model.segments.attributes if n in row
        }
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


#: cells read as missing, as pandas reads them
MISSING_CELLS = frozenset({"", "NA", "N/A", "NaN", "nan", "NULL", "null", "None", "#N/A", "<NA>"})


def cell_value(text: str) -> Any:
    """One CSV cell typed on its own: int, float, None (missing) or the text.

    Typing per cell (not per column as pandas does) keeps one non-numeric cell from
    turning its whole column into text, and so every row of the file into wrong_type.
    """
    text = text.strip()
    if text in MISSING_CELLS:
        return None
    if text[:1] in "+-0123456789.iInN":
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            pass
    return text


def read_csv(path: Path) -> Iterator[Row]:
    """(row dict, None) per CSV row, each cell typed on its own (`cell_value`).

    A line with another number of fields than the header, or that is not UTF-8,
    becomes an Unparsed row (quarantined with its line number); an empty file or one
    without a header is an IntakeError.
    """
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
        except csv.Error as err:
            raise IntakeError(f"{path}: not a readable CSV header: {err}") from err
        if not header or not any(h.strip() for h in header):
            raise IntakeError(f"{path}: empty CSV file (no header line): nothing to ingest")
        if _has_surrogates("".join(header)):
            raise IntakeError(f"{path}: the CSV header is not UTF-8")
        names = [h.strip() for h in header]
        while True:
            line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                yield Unparsed(f"line {line}: {err}"), ""
                continue
            if not cells:
                continue
            raw = _csv_line(cells)
            if _has_surrogates(raw):
                yield Unparsed(f"line {line}: not valid UTF-8"), _clean(raw)
            elif len(cells) != len(names):
                yield Unparsed(
                    f"line {line}: {len(cells)} fields where the header has {len(names)}"
                ), raw
            else:
                yield dict(zip(names, map(cell_value, cells), strict=True)), raw


def _csv_line(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    return out.getvalue()


def _has_surrogates(text: str) -> bool:
    return not text.isascii() and any("\udc80" <= c <= "\udcff" for c in text)


def _clean(text: str) -> str:
    """Text read with surrogateescape, the undecodable bytes shown as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def read_parquet(path: Path) -> Iterator[Row]:
    """(row dict, None) per Parquet row, read batch by batch. A file Parquet cannot open
    is an IntakeError; a batch that cannot be read ends the file with an Unparsed row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise IntakeError(f"{path}: not a readable Parquet file ({err})") from err
    done = 0
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError, ValueError) as err:
            yield Unparsed(f"{path.name}: rows after {done} cannot be read ({err})"), ""
            return
        rows = batch.to_pylist()
        done += len(rows)
        for row in rows:
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


def iter_window_file(
    path: Path,
    model: ModelConfig,
    start: datetime,
    end: datetime,
    fmt: str = "auto",
    cols: Columns | None = None,
) -> Iterator[Row]:
    """The rows of `path` that belong to the window [start, end), for `source = "files"`.

    A row whose timestamp is readable and outside the window is skipped before it is
    validated, so the bad rows of a file are quarantined by one window, not by every
    window: a row whose time cannot be read (and a line that is not a record) belongs
    to the window holding the file's modification time.
    """
    from monitor.intake.validate import parse_timestamp

    try:
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError as err:
        raise IntakeError(f"{path}: cannot be read: {err}") from err
    owns_unreadable = start <= mtime < end
    for obj, raw in iter_file(path, model, fmt, cols, require_timestamp=True):
        try:
            ts = parse_timestamp(obj["timestamp"]) if isinstance(obj, dict) else None
        except Exception:  # noqa: BLE001 - unreadable: the validator will say why
            ts = None
        if ts is None or not obj.get("timestamp"):
            if owns_unreadable:
                yield obj, raw
        elif start <= ts < end:
            yield obj, raw


#: a record longer than this is taken for garbage, not allocated
MAX_TFRECORD = 256 * 1024 * 1024
_READ_STEP = 1024 * 1024


def iter_tfrecords(handle: BinaryIO, size: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(byte offset, payload) of each record of a TFRecord stream.

    The length of each record is checked (its masked CRC-32C, and against `size`, the
    bytes left in the file when known, and `MAX_TFRECORD`) before anything is
    allocated; the payload's own CRC is not checked. Garbage or a truncated record
    raises IntakeError naming the byte offset; records before it were yielded.
    """
    offset = 0
    while True:
        header = handle.read(12)
        if not header:
            return
        if len(header) < 12:
            raise IntakeError(f"truncated TFRecord header at byte {offset}")
        (length,) = struct.unpack("<Q", header[:8])
        (length_crc,) = struct.unpack("<I", header[8:])
        if length_crc != masked_crc32c(header[:8]):
            raise IntakeError(f"not a TFRecord (bad length checksum) at byte {offset}")
        left = None if size is None else size - offset - 16
        if length > MAX_TFRECORD or (left is not None and length > left):
            raise IntakeError(f"TFRecord at byte {offset} claims {length} bytes: truncated or "
                              "garbage")
        payload = _read_exactly(handle, length)
        if len(payload) < length or len(handle.read(4)) < 4:
            raise IntakeError(f"truncated TFRecord at byte {offset}")
        yield offset, payload
        offset += 16 + length


def _read_exactly(handle: BinaryIO, length: int) -> bytes:
    """Up to `length` bytes, read in steps (a gzip stream's size is not known ahead)."""
    if length <= _READ_STEP:
        return handle.read(length)
    parts, got = [], 0
    while got < length:
        part = handle.read(min(_READ_STEP, length - got))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of `data` (used on the 8-byte length: pure Python)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def open_tfrecord(path: Path) -> BinaryIO:
    """The file, decompressed when it is gzip (TFX BulkInferrer writes .gz)."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")  # noqa: SIM115


def stable_id(path: Path, offset: int) -> str:
    """A request id derived from the file name and the record's offset."""
    return hashlib.sha1(f"{path.name}:{offset}".encode(), usedforsecurity=False).hexdigest()[:24]
