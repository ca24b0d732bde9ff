"""The full loop (issue 7): a real model's drifted window -> run -> alert -> the loopback
Slack (Block Kit, buttons, chart in the thread) -> a click through Socket Mode ->
feedback, policy, the message rewritten -> the next run obeys the policy.

The model, its training data and the traffic generator are the cycle tests' (imported
from `tests.models`); Slack is the emulator of `tests.slack`. Time is the frozen
`monitor.clock.utcnow`, moved window by window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from monitor.baseline import build_baseline
from monitor.config import AlertsConfig, Settings, load_settings
from monitor.cycle import RunOutcome, Runtime, run_once
from monitor.notify import DeliveryStats, build_notifiers, deliver_outbox, outbox_channels
from monitor.slack.app import FeedbackHandle, start_feedback
from monitor.slack.messages import (
    FEATURE_VERDICT_ACTION,
    METADATA_EVENT,
    REBASELINE_ACTION,
    VERDICT_ACTIONS,
)
from monitor.slack.security import request_key
from monitor.store import feedback as feedback_repo
from monitor.store.engine import transaction
from monitor.store.tables import Alert, Baseline, DriftResult, Feedback, Outbox, Policy
from tests.factories import MovableClock
from tests.models import CONFIG, FEATURES, SHIFTED, WINDOW
from tests.models import T0 as CT0
from tests.slack import payloads
from tests.slack.conftest import APP_TOKEN, BOT_TOKEN
from tests.slack.emulator import Failure, SlackEmulator
from tests.slack.waiting import wait_for

CHANNEL = "C_ALERTS"
SLACK = """
[slack]
enabled = true
mode = "socket"
channel = "{channel}"
api_url = "{api_url}"
allowed_users = ["U1", "U2"]

[feedback]
mute_days = 7
false_alarm_count = 2
false_alarm_window_days = 14
threshold_factor = 1.5
"""


@dataclass
class Loop:
    """One model monitored against the loopback Slack, with helpers for each step."""

    settings: Settings
    engine: Engine
    emulator: SlackEmulator
    clock: MovableClock
    traffic: Any
    runtime: Runtime = field(default_factory=Runtime)
    handle: FeedbackHandle | None = None
    clicks: int = 0

    def run(self, start, *, seed: int, shift: bool = True) -> RunOutcome:
        """Traffic for [start, start + WINDOW), the clock moved past it, one run."""
        self.traffic(self.engine, self.settings, start, seed=seed, shift=shift)
        self.clock.now = max(self.clock.now, start + WINDOW + timedelta(minutes=5))
        return run_once(
            self.settings,
            self.engine,
            "cancer",
            start,
            start + WINDOW,
            runtime=self.runtime,
            channels=outbox_channels(self.settings),
        )

    def deliver(self) -> DeliveryStats:
        return deliver_outbox(self.engine, build_notifiers(self.settings))

    def listen(self) -> None:
        """Start the feedback app over Socket Mode (stopped by the fixture)."""
        self.handle = start_feedback(self.settings, self.engine)
        assert self.handle is not None and self.handle.mode == "socket"
        assert self.emulator.socket.connected.wait(10)

    def alert(self, kind: str, feature: str | None, *, live: bool = True) -> Alert:
        with transaction(self.engine) as session:
            query = select(Alert).where(Alert.kind == kind, Alert.feature == feature)
            if live:
                query = query.where(Alert.status != "resolved")
            return session.scalars(query.order_by(Alert.id.desc())).first()

    def message_of(self, alert_id: int) -> dict[str, Any]:
        """The message whose buttons carry `alert_id` (with the window's other findings): a
        top-level post, or a reply when the window continued a live incident."""
        with self.emulator.state.lock:
            posted = list(self.emulator.state.messages.get(CHANNEL, []))
        found = [m for m in posted if str(alert_id) in _button_values(m)]
        assert len(found) == 1, f"{len(found)} messages for alert {alert_id}"
        return found[0]

    def choose(
        self, alert_id: int, ts: str, verdict: str, feature: str, *, user: str = "U1",
        thread_ts: str | None = None,
    ) -> None:
        """Pick "<verdict>: <feature>" in an input-drift alert's one-feature menu (of a
        message in `thread_ts`'s thread when given)."""
        self.clicks += 1
        body = payloads.click(
            alert_id, ts, FEATURE_VERDICT_ACTION, user=user, action_ts=f"1790000000.{self.clicks:06d}"
        )
        body["actions"][0] = {
            "action_id": FEATURE_VERDICT_ACTION,
            "type": "static_select",
            "block_id": f"monitor_feedback_{alert_id}",
            "selected_option": {"value": f"{alert_id}|{verdict}|{feature}"},
            "action_ts": f"1790000000.{self.clicks:06d}",
        }
        if thread_ts:
            body.setdefault("message", {})["thread_ts"] = thread_ts
        assert "envelope_id" in self.emulator.socket.send("interactive", body)

    def click(
        self, alert_id: int, ts: str, action_id: str, *, user: str = "U1", value: str | None = None
    ) -> dict[str, Any]:
        """A button click sent through Socket Mode; returns the payload that was sent."""
        self.clicks += 1
        body = payloads.click(alert_id, ts, action_id, user=user, action_ts=f"1790000000.{self.clicks:06d}")
        if value is not None:
            body["actions"][0]["value"] = value
            body["container"]["is_ephemeral"] = True
        ack = self.emulator.socket.send("interactive", body)
        assert "envelope_id" in ack
        return body

    def updates_of(self, ts: str) -> list[dict[str, Any]]:
        return [c for c in self.emulator.state.calls_to("chat.update") if c.get("ts") == ts]


def _button_values(message: dict[str, Any]) -> set[str]:
    return {
        e.get("value")
        for b in message.get("blocks") or []
        if b.get("type") == "actions"
        for e in b["elements"]
        if e.get("action_id") in VERDICT_ACTIONS
    }


def _raised(outcome: RunOutcome) -> set[tuple[str, tuple[str, ...]]]:
    return {(a["kind"], tuple(a["features"])) for a in outcome.summary["alerts"]}


def _rows(engine: Engine, table: Any, *where: Any) -> list[Any]:
    with transaction(engine) as session:
        return list(session.scalars(select(table).where(*where).order_by(table.id)))


@pytest.fixture
def loop(db_url, engine, write_config, emulator, frozen, request) -> Iterator[Loop]:
    # by name: parameters named like the imported fixtures would shadow the imports
    trained, traffic = map(request.getfixturevalue, ("model_dir", "send_traffic"))
    body = SLACK.format(channel=CHANNEL, api_url=emulator.api_url) + CONFIG.format(
        url=db_url, model_dir=trained, features=str(FEATURES).replace("'", '"')
    )
    settings = load_settings(
        write_config(body), env={"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN}
    )
    frozen.now = CT0
    summary = build_baseline(settings, engine, "cancer", created_by="test")
    assert summary.version == 1
    state = Loop(settings, engine, emulator, frozen, traffic)
    yield state
    if state.handle is not None:
        emulator.socket.close_client(state.handle.stop)


def _deliver_first_window(loop: Loop, seed: int) -> tuple[RunOutcome, Alert, dict[str, Any]]:
    """A drifted window run and delivered; returns the run, its input-drift alert (which
    lists mean_radius and mean_texture) and the window's one message."""
    outcome = loop.run(CT0, seed=seed)
    [drift] = [a for a in outcome.summary["alerts"] if a["kind"] == "feature_drift"]
    assert set(SHIFTED) <= set(drift["features"])
    stats = loop.deliver()
    slack_rows = _rows(loop.engine, Outbox, Outbox.channel == "slack")
    assert len(slack_rows) == 1 and (stats.delivered, stats.failed) == (1, 0)
    alert = loop.alert("feature_drift", None)
    return outcome, alert, loop.message_of(alert.id)


def test_full_loop_expected_change_mutes_the_feature(loop):
    loop.listen()
    first, drift, message = _deliver_first_window(loop, seed=11)
    state = loop.emulator.state

    # ONE post for the window: every finding, each with its buttons carrying its alert id
    assert message["metadata"]["event_type"] == METADATA_EVENT
    assert "mean_radius" in str(message["blocks"])
    assert _button_values(message) == {str(a["id"]) for a in first.summary["alerts"]}
    [actions] = [
        b for b in message["blocks"] if b["type"] == "actions" and b["block_id"].endswith(f"_{drift.id}")
    ]
    assert [e.get("text", {}).get("text") for e in actions["elements"][:5]] == [
        "Acknowledge",
        "Expected change",
        "False alarm",
        "Retrain needed",
        "Add comment",
    ]
    menu = actions["elements"][5]
    assert menu["action_id"] == FEATURE_VERDICT_ACTION
    assert f"{drift.id}|expected_change|mean_radius" in {o["value"] for o in menu["options"]}
    # a PNG chart in its thread, and every finding knows where its message is
    [chart] = [c for c in state.completed if c["thread_ts"] == message["ts"]]
    assert state.uploads[chart["files"][0]["id"]].startswith(b"\x89PNG")
    assert {(a.slack_channel, a.slack_ts) for a in _rows(loop.engine, Alert)} == {(CHANNEL, message["ts"])}

    # "Expected change" for ONE feature, from the menu, through Socket Mode
    loop.choose(drift.id, message["ts"], "expected_change", "mean_radius", user="U1")
    wait_for(lambda: state.replies(CHANNEL, message["ts"]))
    [answer] = _rows(loop.engine, Feedback)
    assert (answer.alert_id, answer.verdict, answer.feature, answer.user_name) == (
        drift.id, "expected_change", "mean_radius", "user-u1"
    )
    [mute] = _rows(loop.engine, Policy)
    assert (mute.kind, mute.alert_kind, mute.feature, mute.created_by) == (
        "mute", "feature_drift", "mean_radius", "user-u1"
    )
    assert mute.until - loop.clock.now == timedelta(days=7)
    # the message lists other findings: the answer is said in its thread, not rewritten
    said = state.replies(CHANNEL, message["ts"])[-1]["text"]
    assert "marked as expected change" in said and "mean_radius" in said
    assert loop.alert("feature_drift", None).status == "open"  # one feature answered, not all

    # the next drifted window: mean_radius still drifts but is not raised again; the rest of
    # the incident goes into the same thread, and nothing new is posted at the top
    top_before = len(state.top_level(CHANNEL))
    second = loop.run(CT0 + WINDOW, seed=12)
    assert second.summary["drift"]["features"]["mean_radius"]["drifted"] is True
    [again] = [a for a in second.summary["alerts"] if a["kind"] == "feature_drift"]
    assert "mean_radius" not in again["features"] and "mean_texture" in again["features"]
    stats = loop.deliver()
    assert stats.delivered >= 1 and stats.failed == 0
    assert len(state.top_level(CHANNEL)) == top_before
    reply = state.replies(CHANNEL, message["ts"])[-1]["text"]
    assert "Fired again (2 times)" in reply and "mean_texture" in reply


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_two_false_alarms_raise_the_threshold(loop):
    model = loop.settings.models[0]
    # fixed thresholds: a threshold factor there is exactly x1.5 (calibrated: alpha / 1.5)
    update = {
        "alerts": AlertsConfig(resolve_after=1),
        "drift": model.drift.model_copy(update={"threshold_mode": "fixed"}),
    }
    loop.settings = loop.settings.model_copy(update={"models": (model.model_copy(update=update),)})
    loop.listen()
    first, alert_a, message_a = _deliver_first_window(loop, seed=21)
    loop.choose(alert_a.id, message_a["ts"], "false_alarm", "mean_radius", user="U1")
    wait_for(lambda: loop.emulator.state.replies(CHANNEL, message_a["ts"]))
    assert [(f.verdict, f.feature) for f in _rows(loop.engine, Feedback)] == [("false_alarm", "mean_radius")]
    assert _rows(loop.engine, Policy) == []  # one false alarm is not enough
    assert loop.alert("feature_drift", None).status == "open"

    clean = loop.run(CT0 + WINDOW, seed=22, shift=False)
    assert clean.summary["drift"]["features"]["mean_radius"]["drifted"] is False
    assert alert_a.id in clean.summary["resolved_alerts"]
    loop.deliver()
    assert "Resolved" in loop.emulator.state.replies(CHANNEL, message_a["ts"])[-1]["text"]

    drifted = loop.run(CT0 + 2 * WINDOW, seed=23)
    loop.deliver()
    alert_b = loop.alert("feature_drift", None)
    assert alert_b.id != alert_a.id and alert_b.status == "open"
    message_b = loop.message_of(alert_b.id)
    thread_b = message_b.get("thread_ts")
    loop.choose(alert_b.id, message_b["ts"], "false_alarm", "mean_radius", user="U2", thread_ts=thread_b)
    wait_for(lambda: _rows(loop.engine, Policy))
    [policy] = _rows(loop.engine, Policy)
    assert (policy.kind, policy.alert_kind, policy.feature, policy.value, policy.created_by) == (
        "threshold",
        "feature_drift",
        "mean_radius",
        1.5,
        "user-u2",
    )
    assert policy.until is None and policy.revoked_at is None

    after = loop.run(CT0 + 3 * WINDOW, seed=24)
    before_f = drifted.summary["drift"]["features"]
    after_f = after.summary["drift"]["features"]
    assert before_f["mean_radius"]["method"] == after_f["mean_radius"]["method"]
    base, effective = before_f["mean_radius"]["threshold"], after_f["mean_radius"]["threshold"]
    # 1.5 times less sensitive: a p-value threshold is divided, a distance multiplied
    assert effective in (pytest.approx(base / 1.5), pytest.approx(base * 1.5))
    assert effective != pytest.approx(base)
    assert after_f["mean_texture"]["threshold"] == pytest.approx(before_f["mean_texture"]["threshold"])
    stored = _rows(
        loop.engine,
        DriftResult,
        DriftResult.run_id == after.run_id,
        DriftResult.feature == "mean_radius",
    )
    assert [r.threshold for r in stored] == [pytest.approx(effective)]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_adopt_as_new_baseline_after_expected_change(loop):
    loop.listen()
    first, radius, message = _deliver_first_window(loop, seed=31)
    loop.click(radius.id, message["ts"], "monitor_expected_change", user="U1")
    mutes = wait_for(lambda: _rows(loop.engine, Policy, Policy.kind == "mute"))
    listed = set(loop.alert("feature_drift", None, live=False).details["drifted_features"])
    assert {m.feature for m in mutes} == listed  # each feature it listed, not input drift at large
    offer = wait_for(lambda: loop.emulator.state.ephemeral)[0]
    [button] = offer["blocks"][1]["elements"]
    assert button["action_id"] == REBASELINE_ACTION
    assert button["value"] == f"{radius.id}:{first.run_id}"
    assert offer["user"] == "U1"

    adopt = loop.click(radius.id, message["ts"], REBASELINE_ACTION, user="U1", value=button["value"])
    done = wait_for(
        lambda: [e for e in loop.emulator.state.ephemeral if "is now the window" in e["text"]],
        timeout=30,
    )
    assert f"run {first.run_id}" in done[0]["text"] and "user-u1" in done[0]["text"]
    # the same click again (a replay) adopts nothing more
    loop.emulator.socket.send("interactive", adopt)
    with transaction(loop.engine) as session:
        assert feedback_repo.is_processed(session, request_key(adopt))

    baselines = _rows(loop.engine, Baseline)
    assert [(b.version, b.active) for b in baselines] == [(1, False), (2, True)]
    assert (baselines[1].source, baselines[1].created_by) == (f"run:{first.run_id}", "user-u1")
    assert baselines[1].rows == first.summary["sampled"]
    [rebaseline] = _rows(loop.engine, Policy, Policy.kind == "rebaseline")
    assert rebaseline.created_by == "user-u1" and rebaseline.value == baselines[1].id
    assert f"run {first.run_id}" in rebaseline.reason

    # a window like the adopted one is normal now
    after = loop.run(CT0 + WINDOW, seed=32)
    assert after.summary["baseline"]["version"] == 2
    features = after.summary["drift"]["features"]
    assert {name: features[name]["drifted"] for name in SHIFTED} == {n: False for n in SHIFTED}
    assert not any("mean_radius" in a["features"] for a in after.summary["alerts"])
    assert len(_rows(loop.engine, Baseline)) == 2  # the replayed click did not adopt again


def test_slack_down_then_up_delivers_each_alert_exactly_once(loop):
    emulator = loop.emulator
    # window 1: Slack rate-limits the post; the outbox waits for Retry-After
    outcome = loop.run(CT0, seed=41)
    [row] = _rows(loop.engine, Outbox, Outbox.channel == "slack")
    assert len(row.payload["alerts"]) == len(outcome.summary["alerts"]) >= 3  # one message, all findings
    emulator.fail("chat.postMessage", Failure(429, retry_after=120))
    assert loop.deliver() == DeliveryStats(0, 1)
    [pending] = [r for r in _rows(loop.engine, Outbox) if r.delivered_at is None]
    assert "HTTP 429" in pending.last_error
    assert (pending.next_attempt_at - loop.clock.now).total_seconds() == 120.0
    loop.clock.advance(seconds=35)
    assert loop.deliver() == DeliveryStats(0, 0)  # nothing due yet
    loop.clock.advance(minutes=2)
    assert loop.deliver() == DeliveryStats(1, 0)
    [root] = emulator.state.top_level(CHANNEL)

    # window 2: Slack stores the reply but the answer is lost (500): it is looked up by its
    # metadata at once and found, never posted again
    loop.run(CT0 + WINDOW, seed=42)
    emulator.fail("chat.postMessage", Failure(500, after_work=True))
    assert loop.deliver() == DeliveryStats(1, 0)
    loop.clock.advance(hours=1)
    assert loop.deliver() == DeliveryStats(0, 0)

    assert len(emulator.state.top_level(CHANNEL)) == 1
    replies = [m for m in emulator.state.replies(CHANNEL, root["ts"]) if m.get("metadata")]
    posted = [root, *replies]
    outbox_ids = sorted(m["metadata"]["event_payload"]["outbox_id"] for m in posted)
    slack_rows = _rows(loop.engine, Outbox, Outbox.channel == "slack")
    assert outbox_ids == [r.id for r in slack_rows]  # every message once, none twice
    assert all(r.delivered_at is not None for r in _rows(loop.engine, Outbox))
    assert {a.slack_ts for a in _rows(loop.engine, Alert)} == {root["ts"]}
    charts = [c["thread_ts"] for c in emulator.state.completed]
    assert charts == [root["ts"]]
