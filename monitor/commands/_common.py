"""Small helpers shared by commands: time parsing, JSON output, progress."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import click


class IsoTime(click.ParamType):
    """An ISO-8601 time; a time without an offset is taken as UTC."""

    name = "ISO-8601"

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{value!r} is not an ISO-8601 time (e.g. 2026-11-23T10:00:00Z)", param, ctx)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def echo_json(document: Any) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=str, allow_nan=False) + "\n")
    sys.stdout.flush()


def deliver(settings: Any, engine: Any, *, json_on_stdout: bool) -> None:
    """Deliver the outbox now; the console notifier writes to stderr when stdout
    carries JSON documents."""
    from monitor.notify import ConsoleNotifier, build_notifiers, deliver_outbox

    notifiers = build_notifiers(settings)
    if "console" in notifiers:
        notifiers["console"] = ConsoleNotifier(sys.stderr if json_on_stdout else sys.stdout)
    deliver_outbox(engine, notifiers)
