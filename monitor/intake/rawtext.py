"""The text a quarantined row keeps: what was sent, or a faithful JSON rendering of it.

A row is kept as the exact text it arrived as whenever intake still has it (a JSONL or
NDJSON line, a JSON array's element). A row known only as an object (the Python client,
a Parquet row) is rendered as JSON: by orjson when it can, else by a renderer without a
depth limit (orjson stops at 255 levels), never as a Python repr. Either text is cut at
`MAX_RAW_CHARS` with a marker saying how much was left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

#: a quarantined row's text is cut here (a real row is a few kilobytes; 32 MB bodies exist)
MAX_RAW_CHARS = 1_000_000
_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_END = object()


def truncated(text: str, limit: int = MAX_RAW_CHARS) -> str:
    """`text`, or its first `limit` characters and a marker naming how many were cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[truncated by monitor: {len(text) - limit} more characters]"


def as_text(raw: str | bytes | bytearray | memoryview) -> str:
    """Raw input (text or undecoded bytes) as text, undecodable bytes shown as U+FFFD."""
    if isinstance(raw, str):
        return raw
    return bytes(raw).decode("utf-8", "replace")


def render_json(obj: Any, *, default: Callable[[Any], Any] = str, limit: int = MAX_RAW_CHARS,
                option: int = _OPTS) -> str:
    """`obj` as JSON text at any depth, cut at `limit` characters with a marker.

    orjson renders it when it can; deeper values are walked without recursion. A value
    JSON has no type for goes through `default` (text by default), as orjson's does.
    """
    try:
        return truncated(orjson.dumps(obj, default=default, option=option).decode(), limit)
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:
        return _walk(obj, default, limit, option)
    except Exception as err:  # noqa: BLE001 - a hostile object (a raising __str__, ...)
        return orjson.dumps(f"<a {type(obj).__name__} that cannot be shown as JSON: "
                            f"{type(err).__name__}>").decode()


def _walk(obj: Any, default: Callable[[Any], Any], limit: int, option: int) -> str:
    """JSON of `obj` built with an explicit stack (any depth), stopped past `limit`."""
    out: list[str] = []
    size = 0
    #: per open container: its items, whether it is an object, whether nothing was written
    stack: list[list[Any]] = []
    value = obj
    while True:
        if isinstance(value, dict):
            text = "{"
            stack.append([iter(value.items()), True, True])
        elif isinstance(value, list | tuple):
            text = "["
            stack.append([iter(value), False, True])
        else:
            text = _leaf(value, default, option)
        out.append(text)
        size += len(text)
        while stack:
            if size > limit:
                return truncated("".join(out), limit)
            frame = stack[-1]
            item = next(frame[0], _END)
            if item is _END:
                out.append("}" if frame[1] else "]")
                size += 1
                stack.pop()
                continue
            text = "" if frame[2] else ","
            frame[2] = False
            if frame[1]:
                key, value = item
                text += _key(key) + ":"
            else:
                value = item
            out.append(text)
            size += len(text)
            break
        else:
            return truncated("".join(out), limit)


def _leaf(value: Any, default: Callable[[Any], Any], option: int) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and not -2**63 <= value < 2**64:
        return str(int(value))  # JSON has no size limit; orjson stops at 64 bits
    try:
        return orjson.dumps(value, default=default, option=option).decode()
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps(str(value)).decode()


def _key(key: Any) -> str:
    return orjson.dumps(key if isinstance(key, str) else str(key)).decode()


__all__ = ["MAX_RAW_CHARS", "as_text", "render_json", "truncated"]
