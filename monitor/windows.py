"""Window arithmetic: windows aligned to their length since the epoch, the schedule's
trigger, and the windows a model missed (no stored run) while monitor was down or
before it first ran (from the model's first logged prediction)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.orm import Session

from monitor import clock
from monitor.config import ModelConfig, parse_schedule
from monitor.store.predictions import first_logged
from monitor.store.runs import first_window_start, previous_window_end, window_starts

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Window = tuple[datetime, datetime]


def last_complete_window(window: timedelta, now: datetime | None = None) -> Window:
    """The most recent window that has ended, aligned to multiples of its length since epoch."""
    now = now or clock.utcnow()
    end = EPOCH + ((now - EPOCH) // window) * window
    return end - window, end


def window_start_of(moment: datetime, window: timedelta) -> datetime:
    """The start of the aligned window that holds `moment`."""
    return EPOCH + ((moment - EPOCH) // window) * window


def align_up(moment: datetime, window: timedelta) -> datetime:
    """The first window boundary (a multiple of `window` since epoch) at or after `moment`."""
    steps = -((EPOCH - moment) // window)  # ceiling division
    return EPOCH + steps * window


def aligned_windows(since: datetime, until: datetime, window: timedelta) -> list[Window]:
    """The aligned windows that start at or after `since` and end by `until`."""
    out, cursor = [], align_up(since, window)
    while cursor + window <= until:
        out.append((cursor, cursor + window))
        cursor += window
    return out


def trigger_for(model: ModelConfig) -> Any:
    """The APScheduler trigger of the model's `schedule`."""
    kind, value = parse_schedule(model.schedule)
    if kind == "interval":
        return IntervalTrigger(seconds=value.total_seconds(), timezone="UTC")
    return CronTrigger.from_crontab(model.schedule, timezone="UTC")


def windows_tile(model: ModelConfig) -> bool:
    """True when the schedule fires at least once a window, so every window is computed.
    (With a sparser schedule the windows in between are not expected to have runs.)"""
    trigger = trigger_for(model)
    probe = datetime(2026, 1, 5, tzinfo=UTC)  # any fixed moment: only the spacing matters
    first = trigger.get_next_fire_time(None, probe)
    second = trigger.get_next_fire_time(first, first + timedelta(microseconds=1)) if first else None
    if first is None or second is None:
        return False
    return second - first <= model.window


def missed_windows(
    session: Session, model: ModelConfig, before: datetime, horizon: timedelta
) -> list[Window]:
    """Windows that end by `before` and have no stored run: those after the model's
    latest stored run or, when it has none yet, those since its first logged
    prediction. Never older than `horizon` before `before` (a years-old log does not
    start a years-long catch-up); empty when the schedule does not tile time."""
    if not windows_tile(model):
        return []
    bound = before - horizon
    since = previous_window_end(session, model.name, before)
    if since is None:
        since = _first_traffic_window(session, model, bound)
    if since is None:
        return []
    return _without_run(session, model, max(since, bound), before)


def gap_windows(session: Session, model: ModelConfig, until: datetime, horizon: timedelta) -> list[Window]:
    """Every window that ends by `until` (within `horizon` before it) without a stored
    run, since the model's first run or its first logged prediction, whichever came
    first: what `monitor status` and /healthz report as gaps."""
    if not windows_tile(model):
        return []
    bound = until - horizon
    firsts = [
        first
        for first in (first_window_start(session, model.name), _first_traffic_window(session, model, bound))
        if first is not None
    ]
    if not firsts:
        return []
    return _without_run(session, model, max(min(firsts), bound), until)


def _first_traffic_window(session: Session, model: ModelConfig, since: datetime) -> datetime | None:
    """The start of the window of the model's first prediction logged since `since`."""
    first = first_logged(session, model.name, since)
    return None if first is None else window_start_of(first, model.window)


def _without_run(session: Session, model: ModelConfig, since: datetime, until: datetime) -> list[Window]:
    """The aligned windows in [since, until) that have no stored run."""
    candidates = aligned_windows(since, until, model.window)
    if not candidates:
        return []
    stored = window_starts(session, model.name, candidates[0][0], until)
    return [w for w in candidates if w[0] not in stored]


def ranges(windows: list[Window]) -> list[Window]:
    """Adjacent windows merged into (start, end) ranges."""
    merged: list[Window] = []
    for start, end in windows:
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def gap_report(session: Session, model: ModelConfig, horizon: timedelta) -> dict[str, Any] | None:
    """The gaps of `model` up to its last complete window as plain data (None: none)."""
    start, _ = last_complete_window(model.window)
    missing = gap_windows(session, model, start, horizon)
    if not missing:
        return None
    spans = ranges(missing)
    return {
        "missed_windows": len(missing),
        "ranges": [[s.isoformat(), e.isoformat()] for s, e in spans[:10]],
        "backfill": f"monitor backfill {model.name} --start {spans[0][0].isoformat()} "
        f"--end {spans[-1][1].isoformat()}",
    }
