"""The prediction times intake admits: not beyond the server's clock plus a skew, not older
than what retention keeps.

`TimePolicy` comes from the settings (`server.max_future_skew`, `scheduler.retention_days`);
its `bounds()` are fixed once per batch from `monitor.clock`, so checking a row is two
comparisons. A row outside them is quarantined (`future_timestamp`, `too_old`) by
`validate.check_time`. Library callers that replay fixed history (tests, benchmarks) pass
no policy and get `ANY_TIME`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from monitor import clock
from monitor.config import Settings


@dataclass(frozen=True)
class TimeBounds:
    """The times one batch admits, [earliest, latest], and what they were computed from
    (for the quarantine's detail)."""

    earliest: datetime
    latest: datetime
    #: the server's clock when the batch started
    now: datetime | None = None
    max_future_skew: timedelta | None = None
    retention_days: int | None = None


#: no bound at all: what a caller replaying fixed history gets
ANY_TIME = TimeBounds(datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))


@dataclass(frozen=True)
class TimePolicy:
    """How far ahead of the server's clock a prediction may be stamped, and how many days
    back retention keeps the log."""

    max_future_skew: timedelta = timedelta(minutes=5)
    retention_days: int = 90

    @classmethod
    def from_settings(cls, settings: Settings) -> TimePolicy:
        """The policy a `Settings` configures."""
        return cls(settings.server.max_future_skew, settings.scheduler.retention_days)

    def bounds(self) -> TimeBounds:
        """The bounds of a batch starting now.

        The earliest time is the retention cutoff's UTC midnight: PostgreSQL drops the log
        by whole days and keeps the day holding the cutoff, so nothing retention keeps is
        refused (on SQLite a row of that day's first hours is kept until the next purge).
        """
        now = clock.utcnow()
        cutoff = now - timedelta(days=self.retention_days)
        earliest = datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC)
        return TimeBounds(earliest, now + self.max_future_skew, now, self.max_future_skew,
                          self.retention_days)


def span(delta: timedelta) -> str:
    """A duration as an operator reads it: ``5m``, ``2h 30m``, ``364d 23h``."""
    seconds = int(delta.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"),
                                          (seconds, "s")) if n]
    return " ".join(parts[:2]) or "0s"


__all__ = ["ANY_TIME", "TimeBounds", "TimePolicy", "span"]
