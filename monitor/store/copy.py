"""PostgreSQL bulk load of prediction rows: one binary COPY buffer per batch.

The rows (already serialized) become one binary-format COPY payload with the columns
of `COLUMNS`: nothing to escape, and the sampling key computed here
(`predictions.sample_key`). `predictions.insert_log_rows` decides where it goes (straight
into `prediction`, or through a temporary table when a request id was logged before).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.intake.prepare import LogRow

#: the payload's columns, fixed-size fields first, so one struct call covers them
COLUMNS = "ts, received_at, sample_key, model, request_id, features, prediction, attributes"
_NULL = struct.pack("!i", -1)
_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_TRAILER = struct.pack("!h", -1)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_FIXED = struct.Struct("!hiqiqiqi")  # field count; ts; received_at; sample_key; length of model
_OLD_FIXED = struct.Struct("!hiqiqi")  # the same without sample_key (revision 0004 and older)
_LENGTH = struct.Struct("!i").pack


def copy_payload(
    rows: Sequence[LogRow], now: datetime, *, attributes: bool = True, keys: bool = True
) -> bytes:
    """The binary COPY data of `rows` (columns as in `COLUMNS`).

    For a log at an older revision: `keys=False` leaves `sample_key` out (0004 and
    older), `attributes=False` also the last column (0002 and older)."""
    from monitor.store.predictions import sample_key

    received = (now - _PG_EPOCH) // _MICROSECOND
    fixed, old_fixed, length = _FIXED.pack, _OLD_FIXED.pack, _LENGTH
    fields = 6 + attributes + keys
    names: dict[str, bytes] = {}
    parts = [_HEADER]
    append = parts.append
    for model, request_id, ts, features, prediction, attrs in rows:
        name = names.get(model)
        if name is None:
            name = names[model] = model.encode()
        rid = request_id.encode()
        stamp = (ts - _PG_EPOCH) // _MICROSECOND
        if keys:
            append(fixed(fields, 8, stamp, 8, received, 8, sample_key(model, request_id), len(name)))
        else:
            append(old_fixed(fields, 8, stamp, 8, received, len(name)))
        append(name)
        append(length(len(rid)))
        append(rid)
        append(length(len(features)))
        append(features)
        append(length(len(prediction)))
        append(prediction)
        if attributes:
            if attrs is None:
                append(_NULL)
            else:
                append(length(len(attrs)))
                append(attrs)
    append(_TRAILER)
    return b"".join(parts)
