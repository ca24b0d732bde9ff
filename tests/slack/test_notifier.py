"""Alerts through the outbox to the loopback Slack: posted once, threaded, updated, retried."""

from __future__ import annotations

from sqlalchemy import Engine, select

from monitor.notify import build_notifiers, deliver_outbox, outbox_channels
from monitor.slack.messages import METADATA_EVENT, VERDICT_ACTIONS
from monitor.slack.notifier import SlackNotifier, make_client
from monitor.store.engine import transaction
from monitor.store.tables import Alert, Outbox
from tests.factories import make_alert, queue
from tests.slack.conftest import BOT_TOKEN, make_settings
from tests.slack.emulator import Failure, SlackEmulator


def notifier_for(emulator: SlackEmulator, **kwargs) -> SlackNotifier:
    return SlackNotifier(make_client(BOT_TOKEN, emulator.api_url, **kwargs), "C_ALERTS")


def _alert(engine: Engine, alert_id: int) -> Alert:
    with transaction(engine) as session:
        return session.get(Alert, alert_id)


def test_alert_is_posted_once_with_buttons_chart_and_ts_stored(engine, emulator, frozen):
    alert_id = make_alert(engine)
    stats = deliver_outbox(engine, {"slack": notifier_for(emulator)})
    assert (stats.delivered, stats.failed) == (1, 0)
    posted = emulator.state.top_level("C_ALERTS")
    assert len(posted) == 1
    message = posted[0]
    assert message["metadata"]["event_type"] == METADATA_EVENT
    actions = [b for b in message["blocks"] if b["type"] == "actions"][0]["elements"]
    assert [e["text"]["text"] for e in actions] == [
        "Acknowledge",
        "Expected change",
        "False alarm",
        "Retrain needed",
        "Add comment",
    ]
    assert all(e["value"] == str(alert_id) for e in actions)
    text = str(message["blocks"])
    assert "mean radius" in text and "0.31" in text and "threshold 0.1" in text
    assert "gained influence" in text and "Quarantined 3 rows" in text and "monitor report" in text
    # the chart went into the alert's thread, as a real PNG
    completed = emulator.state.completed
    assert len(completed) == 1 and completed[0]["thread_ts"] == message["ts"]
    assert completed[0]["channel_id"] == "C_ALERTS"
    assert next(iter(emulator.state.uploads.values())).startswith(b"\x89PNG")
    stored = _alert(engine, alert_id)
    assert (stored.slack_channel, stored.slack_ts) == ("C_ALERTS", message["ts"])
    # delivering again posts nothing more
    assert deliver_outbox(engine, {"slack": notifier_for(emulator)}).delivered == 0
    assert len(emulator.state.calls_to("chat.postMessage")) == 1


def test_refire_and_resolve_are_thread_replies(engine, emulator, frozen):
    alert_id = make_alert(engine)
    queue(engine, alert_id, "alert_refired")
    queue(engine, alert_id, "alert_resolved")
    assert deliver_outbox(engine, {"slack": notifier_for(emulator)}).delivered == 3
    top = emulator.state.top_level("C_ALERTS")
    assert len(top) == 1
    replies = emulator.state.replies("C_ALERTS", top[0]["ts"])
    assert "Fired again (2 times)" in replies[0]["text"]
    assert "Resolved" in replies[1]["text"]


def test_slack_down_then_delivered_exactly_once(engine, emulator, frozen):
    alert_id = make_alert(engine)
    queue(engine, alert_id, "alert_refired")
    emulator.state.down = True
    notifier = notifier_for(emulator)
    stats = deliver_outbox(engine, {"slack": notifier})
    assert (stats.delivered, stats.failed) == (0, 1)  # the reply waits behind its alert
    frozen.advance(seconds=10)
    assert deliver_outbox(engine, {"slack": notifier}).delivered == 0  # not due yet: backoff
    emulator.state.down = False
    frozen.advance(minutes=2)
    assert deliver_outbox(engine, {"slack": notifier}).delivered == 2
    assert len(emulator.state.top_level("C_ALERTS")) == 1
    assert len(emulator.state.messages["C_ALERTS"]) == 2
    with transaction(engine) as session:
        rows = session.scalars(select(Outbox).order_by(Outbox.id)).all()
        assert [r.attempts for r in rows] == [2, 1]
        assert all(r.delivered_at is not None for r in rows)


def test_post_whose_answer_was_lost_is_not_posted_again(engine, emulator, frozen):
    """Slack stored the post but answered 500: it is found by metadata at once."""
    alert_id = make_alert(engine)
    emulator.fail("chat.postMessage", Failure(500, after_work=True), Failure(500, after_work=True))
    notifier = notifier_for(emulator)
    assert deliver_outbox(engine, {"slack": notifier}).delivered == 1
    posted = emulator.state.top_level("C_ALERTS")
    assert len(posted) == 1  # stored once by the failing call, found, never re-posted
    assert len(emulator.state.calls_to("chat.postMessage")) == 1
    assert len(emulator.state.calls_to("conversations.history")) == 1
    assert _alert(engine, alert_id).slack_ts == posted[0]["ts"]


def test_post_stored_then_connection_dropped_is_posted_exactly_once(engine, emulator, frozen):
    """Slack stores each post and the connection drops before the answer (issue 11):
    slack_sdk must not re-post at once; every alert ends posted exactly once."""
    features = ("mean radius", "mean texture", "mean area")
    alerts = [make_alert(engine, feature=f, window=i) for i, f in enumerate(features)]
    emulator.fail("chat.postMessage", *[Failure(0, drop=True) for _ in range(3)])
    notifier = notifier_for(emulator)
    for _ in range(3):
        deliver_outbox(engine, {"slack": notifier})
        frozen.advance(minutes=5)
    posted = emulator.state.top_level("C_ALERTS")
    assert len(posted) == 3
    assert len(emulator.state.calls_to("chat.postMessage")) == 3  # never re-sent
    ids = sorted(m["metadata"]["event_payload"]["outbox_id"] for m in posted)
    assert len(set(ids)) == 3
    assert sorted(_alert(engine, a).slack_ts for a in alerts) == sorted(m["ts"] for m in posted)


def test_lost_post_not_found_goes_back_to_the_outbox_and_is_posted_later(engine, emulator, frozen):
    """The connection dropped before Slack stored anything: the lookup finds nothing,
    the outbox retries later and the alert is posted once."""
    make_alert(engine)
    emulator.fail("chat.postMessage", Failure(503))
    notifier = notifier_for(emulator)
    assert deliver_outbox(engine, {"slack": notifier}).failed == 1
    frozen.advance(minutes=5)
    assert deliver_outbox(engine, {"slack": notifier}).delivered == 1
    assert len(emulator.state.top_level("C_ALERTS")) == 1


def test_rate_limit_short_wait_is_retried_in_place(engine, emulator, frozen):
    make_alert(engine)
    emulator.fail("chat.postMessage", Failure(429, retry_after=0))
    assert deliver_outbox(engine, {"slack": notifier_for(emulator)}).delivered == 1
    assert len(emulator.state.calls_to("chat.postMessage")) == 2


def test_rate_limit_long_wait_goes_back_to_the_outbox_with_retry_after(engine, emulator, frozen):
    make_alert(engine)
    emulator.fail("chat.postMessage", Failure(429, retry_after=120))
    assert deliver_outbox(engine, {"slack": notifier_for(emulator, max_wait=5)}).failed == 1
    with transaction(engine) as session:
        row = session.scalars(select(Outbox)).one()
        assert (row.next_attempt_at - frozen.now).total_seconds() == 120
        assert "429" in row.last_error


def test_feedback_update_replaces_buttons(engine, emulator, frozen):
    from monitor.policies import apply_feedback

    alert_id = make_alert(engine)
    settings = make_settings(emulator)
    deliver_outbox(engine, {"slack": notifier_for(emulator)})
    with transaction(engine) as session:
        apply_feedback(
            session,
            session.get(Alert, alert_id),
            "false_alarm",
            user_id="U1",
            user_name="ana",
            comment=None,
            source="cli",
            external_id=None,
            config=settings.feedback,
            now=frozen.now,
        )
    assert deliver_outbox(engine, {"slack": notifier_for(emulator)}).delivered == 1
    message = emulator.state.top_level("C_ALERTS")[0]
    assert message.get("edited")
    labels = [
        e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert not set(labels) & set(VERDICT_ACTIONS)
    assert "ana" in str(message["blocks"]) and "false alarm" in str(message["blocks"])


def test_webhook_notifier_and_channel_selection(engine, emulator, frozen):
    settings = make_settings(emulator, webhook=True)
    assert outbox_channels(settings) == ["slack", "webhook"]
    off = settings.model_copy(
        update={"slack": settings.slack.model_copy(update={"enabled": False})}
    )
    assert outbox_channels(off) == ["webhook"]
    assert list(build_notifiers(off)) == ["webhook"]
    make_alert(engine, channels=("webhook",))
    emulator.fail("webhook", Failure(429, retry_after=30))
    notifiers = build_notifiers(off)
    assert deliver_outbox(engine, notifiers).failed == 1
    frozen.advance(seconds=31)
    assert deliver_outbox(engine, notifiers).delivered == 1
    assert len(emulator.state.webhooks) == 1
    body = emulator.state.webhooks[0]
    assert "mean radius" in body["text"]
    assert not [b for b in body["blocks"] if b["type"] == "actions"]  # webhooks take no answers


def test_console_when_slack_is_off(emulator):
    settings = make_settings(emulator)
    off = settings.model_copy(
        update={
            "slack": settings.slack.model_copy(update={"enabled": False}),
            "secrets": settings.secrets.model_copy(update={"slack_webhook_url": None}),
        }
    )
    assert outbox_channels(off) == ["console"]
    assert list(build_notifiers(off)) == ["console"]
