"""Delivery of notifications through the outbox.

The cycle writes outbox rows in the same transaction as the alerts they announce; this
module delivers them: each row once, in order per alert, retried with backoff while its
channel fails. A stopped Slack delays delivery, it never drops a notification.

A notifier is anything with a `name` (the outbox `channel` it serves) and a
`deliver(message) -> Delivered` method that raises `NotifyError` when it could not
deliver. Each notifier lives in its own module: `console` here, the Slack app and the
incoming webhook in `monitor.slack`. `outbox_channels` and `build_notifiers` pick them
from the settings; the outbox SQL lives in `monitor.store.outbox`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine

from monitor import clock, logs, metrics
from monitor.errors import MonitorError
from monitor.store import outbox as store
from monitor.store.alerts import attach_to_message, get_alert
from monitor.store.engine import session_factory
from monitor.vocab import EventName

if TYPE_CHECKING:
    from monitor.config import Settings
    from monitor.store.tables import Alert, Outbox

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=1)
# One delivery at a time per process: the daemon's outbox job and the Slack handlers'
# immediate deliveries must not post the same row twice (SQLite has no SKIP LOCKED;
# across processes PostgreSQL's row locks do the same).
_DELIVERY_LOCK = threading.Lock()
FIRST_BACKOFF = timedelta(seconds=30)


class NotifyError(MonitorError):
    """A notifier could not deliver; the row is retried later."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class OutboxMessage:
    """One outbox row as a notifier sees it."""

    id: int
    event: str
    channel: str
    alert_id: int | None
    payload: Mapping[str, Any]
    attempts: int
    #: where the alert's first message was posted (for thread replies and updates)
    alert_slack_channel: str | None = None
    alert_slack_ts: str | None = None


@dataclass(frozen=True)
class Delivered:
    """What the channel answered: e.g. the Slack channel id and message ts (and, for a
    reply, the ts of the thread it went into)."""

    external_id: str | None = None
    channel: str | None = None
    thread_ts: str | None = None


class Notifier(Protocol):
    name: str

    def deliver(self, message: OutboxMessage) -> Delivered: ...


@dataclass(frozen=True)
class DeliveryStats:
    delivered: int
    failed: int


def backoff(attempts: int, retry_after: float | None = None) -> timedelta:
    """Delay before the next try: 30 s doubling to 1 h, or what the channel asked for."""
    if retry_after is not None:
        return min(timedelta(seconds=max(retry_after, 1.0)), MAX_BACKOFF)
    return min(FIRST_BACKOFF * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def deliver_outbox(engine: Engine, notifiers: Mapping[str, Notifier], *, limit: int = 100) -> DeliveryStats:
    """Deliver due outbox rows for the given channels; returns what happened.

    Each row is claimed in its own transaction (``FOR UPDATE SKIP LOCKED`` on
    PostgreSQL, so several daemons never deliver the same row), delivered, and marked
    delivered or rescheduled. A row waits while an earlier row of the same alert and
    channel is undelivered, so a thread reply never precedes its alert.
    """
    with _DELIVERY_LOCK:
        return _deliver_due(engine, notifiers, limit)


def _deliver_due(engine: Engine, notifiers: Mapping[str, Notifier], limit: int) -> DeliveryStats:
    delivered = failed = 0
    factory = session_factory(engine)
    skipped: set[int] = set()
    for _ in range(limit):
        with factory.begin() as session:
            row = store.claim_next(session, list(notifiers), skipped, engine, clock.utcnow())
            if row is None:
                break
            alert = get_alert(session, row.alert_id) if row.alert_id else None
            message = OutboxMessage(
                id=row.id,
                event=row.event,
                channel=row.channel,
                alert_id=row.alert_id,
                payload=row.payload,
                attempts=row.attempts,
                alert_slack_channel=alert.slack_channel if alert else None,
                alert_slack_ts=alert.slack_ts if alert else None,
            )
            ok = _deliver_one(notifiers[row.channel], message, row, alert, session)
            metrics.DELIVERIES.labels(row.channel, "delivered" if ok else "failed").inc()
            delivered += ok
            failed += not ok
            if not ok:
                skipped.add(row.id)
    return DeliveryStats(delivered, failed)


def _deliver_one(
    notifier: Notifier, message: OutboxMessage, row: Outbox, alert: Alert | None, session: Any
) -> bool:
    now = clock.utcnow()
    try:
        result = notifier.deliver(message)
    except Exception as err:  # noqa: BLE001 - any failure reschedules; unexpected ones get a traceback
        row.attempts += 1
        delay = backoff(row.attempts, getattr(err, "retry_after", None))
        row.next_attempt_at = now + delay
        row.last_error = logs.mask(f"{type(err).__name__}: {err}")[:2000]
        if isinstance(err, NotifyError):
            log.warning(
                "outbox %s (%s via %s) not delivered, attempt %d, next try in %ds: %s",
                row.id,
                row.event,
                row.channel,
                row.attempts,
                delay.total_seconds(),
                err,
            )
        else:
            log.exception(
                "outbox %s (%s via %s) failed unexpectedly, attempt %d, next try in %ds",
                row.id,
                row.event,
                row.channel,
                row.attempts,
                delay.total_seconds(),
            )
        return False
    row.attempts += 1
    row.delivered_at = now
    row.external_id = result.external_id
    row.last_error = None
    if alert is not None and row.channel == "slack" and result.external_id:
        if row.event == EventName.ALERT_OPENED:
            alert.slack_channel, alert.slack_ts = result.channel, result.external_id
        # every finding the message announced belongs to the incident's message: its
        # thread is where later windows and answers go
        root = result.thread_ts or result.external_id
        ids = [int(f["id"]) for f in row.payload.get("alerts") or [] if f.get("id") is not None]
        attach_to_message(session, ids, result.channel or alert.slack_channel, root)
    log.info("outbox %s delivered: %s for alert %s via %s", row.id, row.event, row.alert_id, row.channel)
    return True


def pending_count(engine: Engine) -> int:
    """Undelivered outbox rows (the backlog /metrics reports)."""
    return store.pending_count(engine)


def outbox_channels(settings: Settings) -> list[str]:
    """The outbox channels a run writes rows for: "slack" (Slack app with a bot
    token), "webhook" (SLACK_WEBHOOK_URL), or "console" when neither is set up."""
    channels = []
    secrets = settings.secrets
    if settings.slack.enabled and secrets.slack_bot_token is not None:
        channels.append("slack")
    if secrets.slack_webhook_url is not None:
        channels.append("webhook")
    return channels or ["console"]


def build_notifiers(settings: Settings) -> dict[str, Notifier]:
    """One notifier per outbox channel (see `outbox_channels`), keyed by channel name."""
    from monitor.slack import slack_notifiers

    notifiers: dict[str, Notifier] = dict(slack_notifiers(settings, outbox_channels(settings)))
    if "console" in outbox_channels(settings):
        from monitor.notify.console import ConsoleNotifier

        notifiers["console"] = ConsoleNotifier()
    return notifiers


# the console notifier is re-exported: it is the default channel
from monitor.notify.console import ConsoleNotifier, render_text  # noqa: E402

__all__ = [
    "ConsoleNotifier",
    "Delivered",
    "DeliveryStats",
    "Notifier",
    "NotifyError",
    "OutboxMessage",
    "backoff",
    "build_notifiers",
    "deliver_outbox",
    "outbox_channels",
    "pending_count",
    "render_text",
]
