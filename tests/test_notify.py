"""Outbox delivery: once, in order per alert, retried with backoff while a channel fails."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlalchemy import select

from monitor.notify import ConsoleNotifier, Delivered, NotifyError, backoff, deliver_outbox
from monitor.store import transaction
from monitor.store.tables import Alert, Outbox
from tests.factories import T0


class FlakyNotifier:
    name = "slack"

    def __init__(self):
        self.down = False
        self.sent: list[tuple[int, str]] = []

    def deliver(self, message):
        if self.down:
            raise NotifyError("slack unreachable", retry_after=None)
        self.sent.append((message.id, message.event))
        return Delivered(external_id=f"ts-{message.id}", channel="C1")


def add_alert(engine, events):
    with transaction(engine) as session:
        alert = Alert(
            model="m",
            kind="feature_drift",
            feature="a",
            dedup_key="m|feature_drift|a",
            severity="warning",
            title="a drifted",
        )
        session.add(alert)
        session.flush()
        for event in events:
            session.add(
                Outbox(
                    alert_id=alert.id,
                    event=event,
                    channel="slack",
                    payload={"alert": {"model": "m", "title": "a drifted"}},
                )
            )
        return alert.id


def test_down_channel_delays_then_delivers_exactly_once(engine, frozen):
    alert_id = add_alert(engine, ["alert_opened", "alert_refired"])
    notifier = FlakyNotifier()
    notifier.down = True
    stats = deliver_outbox(engine, {"slack": notifier})
    # the refire waits behind the undelivered opening: one attempt only
    assert (stats.delivered, stats.failed) == (0, 1)
    with transaction(engine) as session:
        row = session.scalars(select(Outbox).order_by(Outbox.id)).first()
        assert row.attempts == 1 and row.next_attempt_at == T0 + timedelta(seconds=30)
        assert "slack unreachable" in row.last_error
    notifier.down = False
    assert deliver_outbox(engine, {"slack": notifier}).delivered == 0  # not due yet
    frozen.advance(seconds=31)
    assert deliver_outbox(engine, {"slack": notifier}).delivered == 2
    assert deliver_outbox(engine, {"slack": notifier}).delivered == 0
    assert [event for _, event in notifier.sent] == ["alert_opened", "alert_refired"]
    with transaction(engine) as session:
        alert = session.get(Alert, alert_id)
        assert (alert.slack_channel, alert.slack_ts) == ("C1", f"ts-{notifier.sent[0][0]}")


def test_rows_for_other_channels_are_left_alone(engine, frozen):
    add_alert(engine, ["alert_opened"])
    out = io.StringIO()
    assert deliver_outbox(engine, {"console": ConsoleNotifier(out)}).delivered == 0
    assert out.getvalue() == ""


def test_console_notifier_prints_readable_text(engine, frozen):
    with transaction(engine) as session:
        session.add(
            Outbox(
                event="alert_opened",
                channel="console",
                payload={
                    "alert": {"model": "m", "title": "input feature 'a' drifted", "severity": "warning"},
                    "run": {"id": 3, "window_start": "s", "window_end": "e", "rows": 10, "quarantined": 1},
                    "lines": ["a: ks score 0.001 (threshold 0.05)"],
                    "report_hint": "monitor report 3 --out r.html",
                },
            )
        )
    out = io.StringIO()
    assert deliver_outbox(engine, {"console": ConsoleNotifier(out)}).delivered == 1
    text = out.getvalue()
    assert "[ALERT] WARNING m: input feature 'a' drifted" in text
    assert "a: ks score 0.001" in text and "monitor report 3" in text


@pytest.mark.parametrize(
    ("attempts", "retry_after", "seconds"), [(1, None, 30), (2, None, 60), (20, None, 3600), (1, 7.0, 7)]
)
def test_backoff(attempts, retry_after, seconds):
    assert backoff(attempts, retry_after).total_seconds() == seconds
