"""PostgreSQL bulk load of prediction rows: one binary COPY buffer per batch.

The rows (already serialized) become one binary-format COPY payload with the columns
of `COLUMNS`: nothing to escape, and the sampling key computed here
(`predictions.sample_key`). `predictions.insert_log_rows` decides where it goes (straight
into `prediction`, or through a temporary table when a request id was logged before).
"""

from __future__ import annotations

import hashlib
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
_FIRST8 = struct.Struct("!q").unpack_from  # a digest's first 8 bytes, signed big-endian


def copy_payload(
    rows: Sequence[LogRow], now: datetime, *, attributes: bool = True, keys: bool = True
) -> bytes:
    """The binary COPY data of `rows` (columns as in `COLUMNS`).

    For a log at an older revision: `keys=False` leaves `sample_key` out (0004 and
    older), `attributes=False` also the last column (0002 and older)."""
    received = (now - _PG_EPOCH) // _MICROSECOND
    fixed, old_fixed, length, first8 = _FIXED.pack, _OLD_FIXED.pack, _LENGTH, _FIRST8
    md5 = hashlib.md5
    fields = 6 + attributes + keys
    #: model -> (its name's bytes, the prefix `predictions.sample_key` hashes before the id)
    names: dict[str, tuple[bytes, bytes]] = {}
    parts = [_HEADER]
    append, extend = parts.append, parts.extend
    for model, request_id, ts, features, prediction, attrs in rows:
        known = names.get(model)
        if known is None:
            known = names[model] = (model.encode(), model.encode("utf-8", "surrogatepass") + b"\x1f")
        name = known[0]
        rid = request_id.encode()
        stamp = (ts - _PG_EPOCH) // _MICROSECOND
        if keys:  # `predictions.sample_key`, from the bytes already encoded
            key = first8(md5(known[1] + rid, usedforsecurity=False).digest())[0]
            head = fixed(fields, 8, stamp, 8, received, 8, key, len(name))
        else:
            head = old_fixed(fields, 8, stamp, 8, received, len(name))
        extend((head, name, length(len(rid)), rid, length(len(features)), features,
                length(len(prediction)), prediction))
        if attributes:
            if attrs is None:
                append(_NULL)
            else:
                extend((length(len(attrs)), attrs))
    append(_TRAILER)
    return b"".join(parts)
