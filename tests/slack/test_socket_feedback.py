"""Socket Mode: a click, a modal comment, a thread reply and `why` travel from the loopback
Socket Mode server through the Bolt app into the database and back to Slack."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, select

from monitor.notify import deliver_outbox
from monitor.policies import active_policies
from monitor.slack.app import start_feedback
from monitor.slack.notifier import SlackNotifier, make_client
from monitor.store.engine import transaction
from monitor.store.tables import Alert, Feedback, Policy, SampleAttribution
from tests.factories import make_alert
from tests.slack import payloads
from tests.slack.conftest import BOT_TOKEN, make_settings
from tests.slack.emulator import SlackEmulator
from tests.slack.waiting import wait_for


@dataclass
class Live:
    engine: Engine
    emulator: SlackEmulator
    alert_id: int
    ts: str


@pytest.fixture
def live(engine, emulator, frozen) -> Iterator[Live]:
    alert_id = make_alert(engine)
    deliver_outbox(
        engine, {"slack": SlackNotifier(make_client(BOT_TOKEN, emulator.api_url), "C_ALERTS")}
    )
    ts = emulator.state.top_level("C_ALERTS")[0]["ts"]
    handle = start_feedback(make_settings(emulator, mode="socket", allowed_users=("U1",)), engine)
    assert handle is not None and handle.mode == "socket"
    assert emulator.socket.connected.wait(10)
    yield Live(engine, emulator, alert_id, ts)
    emulator.socket.close_client(handle.stop)


def feedback(engine: Engine) -> list[Feedback]:
    with transaction(engine) as session:
        return list(session.scalars(select(Feedback).order_by(Feedback.id)))


def test_expected_change_click_mutes_updates_and_offers_rebaseline(live, frozen):
    ack = live.emulator.socket.send(
        "interactive", payloads.click(live.alert_id, live.ts, "monitor_expected_change")
    )
    assert "envelope_id" in ack
    wait_for(lambda: live.emulator.state.calls_to("chat.update"))
    [row] = feedback(live.engine)
    assert (row.verdict, row.user_name, row.source) == ("expected_change", "user-u1", "button")
    with transaction(live.engine) as session:
        assert session.get(Alert, live.alert_id).status == "muted"
        policy = session.scalars(select(Policy)).one()
        assert (policy.kind, policy.alert_kind, policy.feature, policy.created_by) == (
            "mute",
            "feature_drift",
            "mean radius",
            "user-u1",
        )
        assert (policy.until - frozen.now).days == 7
        policies = active_policies(session, "cancer", frozen.now)
        assert policies.is_muted("feature_drift", "mean radius")
        assert not policies.is_muted("feature_drift", "mean texture")
    message = live.emulator.state.top_level("C_ALERTS")[0]
    assert "marked as expected change" in str(message["blocks"])
    offer = wait_for(lambda: live.emulator.state.ephemeral)[0]
    button = offer["blocks"][1]["elements"][0]
    assert button["action_id"] == "monitor_rebaseline" and button["value"].startswith(
        f"{live.alert_id}:"
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_comment_modal_opens_and_its_submission_is_stored(live):
    live.emulator.socket.send(
        "interactive", payloads.click(live.alert_id, live.ts, "monitor_comment")
    )
    view = wait_for(lambda: live.emulator.state.views)[0]
    assert view["trigger_id"] == "1337.42.abcd"
    assert f'"alert_id": {live.alert_id}' in view["view"]["private_metadata"]
    empty = live.emulator.socket.send(
        "interactive", payloads.submission(live.alert_id, live.ts, "   ")
    )
    assert empty["payload"]["response_action"] == "errors"
    live.emulator.socket.send(
        "interactive",
        payloads.submission(live.alert_id, live.ts, "new campaign started", view_id="V2"),
    )
    wait_for(lambda: feedback(live.engine))
    [row] = feedback(live.engine)
    assert (row.verdict, row.comment, row.source) == ("comment", "new campaign started", "modal")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_disallowed_user_click_via_socket_changes_nothing(live):
    live.emulator.socket.send(
        "interactive", payloads.click(live.alert_id, live.ts, "monitor_acknowledge", user="U2")
    )
    refusal = wait_for(lambda: live.emulator.state.ephemeral)[0]
    assert refusal["user"] == "U2"
    assert feedback(live.engine) == []
    with transaction(live.engine) as session:
        assert session.get(Alert, live.alert_id).status == "open"


def test_why_mention_in_the_thread_answers_with_text_and_chart(live):
    with transaction(live.engine) as session:
        run_id = session.get(Alert, live.alert_id).last_run_id
        session.add(
            SampleAttribution(
                run_id=run_id,
                model="cancer",
                request_id="req-42",
                method="integrated_gradients",
                output=0.91,
                baseline_output=0.5,
                values={"mean radius": 0.3, "mean texture": -0.05, "mean area": 0.16},
                features={"mean radius": 17.9, "mean texture": 10.4, "mean area": 1001.0},
            )
        )
    live.emulator.socket.send(
        "events_api",
        payloads.event(payloads.mention("<@UBOT> why req-42", thread_ts=live.ts), event_id="EvWHY"),
    )
    replies = wait_for(lambda: live.emulator.state.replies("C_ALERTS", live.ts))
    text = replies[0]["text"]
    assert "req-42" in text and "0.91" in text
    assert text.index("mean radius") < text.index("mean area") < text.index("mean texture")
    wait_for(lambda: len(live.emulator.state.completed) == 2)  # alert chart + contributions chart
    assert live.emulator.state.completed[-1]["thread_ts"] == live.ts
    assert feedback(live.engine) == []  # a question is not a comment


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_why_for_an_unknown_request_says_so(live):
    live.emulator.socket.send(
        "events_api", payloads.event(payloads.mention("<@UBOT> why nope"), event_id="EvN")
    )
    replies = wait_for(
        lambda: [m for m in live.emulator.state.messages["C_ALERTS"] if "nope" in (m["text"] or "")]
    )
    assert "No attribution" in replies[0]["text"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bot_messages_and_other_threads_are_not_comments(live):
    reply = payloads.thread_reply("posted by a bot", live.ts)
    live.emulator.socket.send(
        "events_api", payloads.event({**reply, "bot_id": "B1"}, event_id="Ev1")
    )
    live.emulator.socket.send(
        "events_api", payloads.event(payloads.thread_reply("other", "999.1"), event_id="Ev2")
    )
    live.emulator.socket.send(
        "events_api", payloads.event(payloads.thread_reply("real comment", live.ts), event_id="Ev3")
    )
    wait_for(lambda: feedback(live.engine))
    assert [f.comment for f in feedback(live.engine)] == ["real comment"]
