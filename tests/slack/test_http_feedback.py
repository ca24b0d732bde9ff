"""The signed HTTP endpoint: verification before parsing, replays, allow-lists, feedback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from monitor.notify import deliver_outbox
from monitor.slack.app import start_feedback
from monitor.slack.notifier import SlackNotifier, make_client
from monitor.store.engine import transaction
from monitor.store.tables import Alert, Feedback, Policy
from tests.factories import make_alert
from tests.slack import payloads
from tests.slack.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings
from tests.slack.emulator import SlackEmulator
from tests.slack.waiting import wait_for

# transport-level checks do not depend on the database: SQLite is enough for them
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@dataclass
class Posted:
    client: TestClient
    engine: Engine
    emulator: SlackEmulator
    alert_id: int
    ts: str
    now: int

    def post(
        self,
        payload: dict,
        *,
        timestamp: int | None = None,
        tamper=lambda s: s,
        event: bool = False,
    ):
        body = json.dumps(payload).encode() if event else payloads.form(payload)
        ctype = "application/json" if event else "application/x-www-form-urlencoded"
        headers = payloads.signed(
            SIGNING_SECRET,
            body,
            self.now if timestamp is None else timestamp,
            content_type=ctype,
            tamper=tamper,
        )
        return self.client.post("/slack/events", content=body, headers=headers)


def feedback_count(engine: Engine) -> int:
    with transaction(engine) as session:
        return session.scalar(select(func.count()).select_from(Feedback))


@pytest.fixture
def posted(engine, emulator, frozen) -> Iterator[Posted]:
    """An alert delivered to the emulator, and the HTTP endpoint of the feedback app."""
    alert_id = make_alert(engine)
    deliver_outbox(
        engine, {"slack": SlackNotifier(make_client(BOT_TOKEN, emulator.api_url), "C_ALERTS")}
    )
    ts = emulator.state.top_level("C_ALERTS")[0]["ts"]
    settings = make_settings(emulator, mode="http", allowed_users=("U1", "U2"))
    app = FastAPI()
    handle = start_feedback(settings, engine, app)
    assert handle is not None and handle.mode == "http"
    with TestClient(app) as client:
        yield Posted(client, engine, emulator, alert_id, ts, int(frozen.now.timestamp()))
    handle.stop()


def test_signed_click_is_recorded_and_updates_the_message(posted):
    response = posted.post(payloads.click(posted.alert_id, posted.ts, "monitor_acknowledge"))
    assert response.status_code == 200
    wait_for(lambda: posted.emulator.state.calls_to("chat.update"))
    with transaction(posted.engine) as session:
        row = session.scalars(select(Feedback)).one()
        assert (row.verdict, row.user_id, row.source) == ("acknowledge", "U1", "button")
        assert session.get(Alert, posted.alert_id).status == "acknowledged"
    assert "acknowledged" in str(posted.emulator.state.top_level("C_ALERTS")[0]["blocks"])


@sqlite_only
@pytest.mark.parametrize(
    ("timestamp_shift", "tamper"),
    [(0, lambda s: s[:-4] + "0000"), (-400, lambda s: s), (400, lambda s: s)],
    ids=["bad-signature", "stale", "from-the-future"],
)
def test_badly_signed_or_stale_requests_are_refused(posted, timestamp_shift, tamper):
    response = posted.post(
        payloads.click(posted.alert_id, posted.ts),
        timestamp=posted.now + timestamp_shift,
        tamper=tamper,
    )
    assert response.status_code == 401
    assert feedback_count(posted.engine) == 0


@sqlite_only
def test_unsigned_request_is_refused(posted):
    response = posted.client.post(
        "/slack/events",
        content=payloads.form(payloads.click(posted.alert_id, posted.ts)),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 401


def test_replayed_click_changes_nothing(posted):
    click = payloads.click(posted.alert_id, posted.ts, "monitor_false_alarm")
    assert posted.post(click).status_code == 200
    wait_for(lambda: feedback_count(posted.engine) == 1)
    wait_for(lambda: posted.emulator.state.calls_to("chat.update"))
    assert posted.post(click).status_code == 200  # a valid signature, inside the window
    assert posted.post(click).status_code == 200
    updates = len(posted.emulator.state.calls_to("chat.update"))
    assert feedback_count(posted.engine) == 1
    # a second, genuinely new click counts (and with two false alarms raises the threshold)
    assert (
        posted.post(
            payloads.click(
                posted.alert_id, posted.ts, "monitor_false_alarm", action_ts="1700000009.000100"
            )
        ).status_code
        == 200
    )
    wait_for(lambda: feedback_count(posted.engine) == 2)
    wait_for(lambda: len(posted.emulator.state.calls_to("chat.update")) > updates)
    with transaction(posted.engine) as session:
        policy = session.scalars(select(Policy)).one()
        assert (policy.kind, policy.value, policy.feature) == ("threshold", 1.5, "mean radius")


def test_disallowed_user_gets_an_ephemeral_refusal(posted):
    assert (
        posted.post(
            payloads.click(posted.alert_id, posted.ts, "monitor_retrain_needed", user="U9")
        ).status_code
        == 200
    )
    refusal = wait_for(lambda: posted.emulator.state.ephemeral)
    assert refusal[0]["user"] == "U9" and "not allowed" in refusal[0]["text"]
    assert feedback_count(posted.engine) == 0
    with transaction(posted.engine) as session:
        assert session.scalar(select(func.count()).select_from(Policy)) == 0


@sqlite_only
def test_click_on_a_message_monitor_did_not_post_is_refused(posted):
    assert posted.post(payloads.click(posted.alert_id, "1111.2222")).status_code == 200
    refusal = wait_for(lambda: posted.emulator.state.ephemeral)
    assert "not posted by monitor" in refusal[0]["text"]
    assert feedback_count(posted.engine) == 0


@sqlite_only
def test_other_workspace_is_ignored(posted):
    assert posted.post(payloads.click(posted.alert_id, posted.ts, team="T_EVIL")).status_code == 200
    with transaction(posted.engine) as session:
        assert session.get(Alert, posted.alert_id).status == "open"
    assert feedback_count(posted.engine) == 0
    assert not posted.emulator.state.ephemeral


@sqlite_only
def test_url_verification_echoes_the_challenge(posted):
    response = posted.post(
        {"type": "url_verification", "challenge": "abc123", "token": "x"}, event=True
    )
    assert response.status_code == 200 and "abc123" in response.text


def test_retried_event_is_handled_once(posted):
    body = payloads.event(
        payloads.thread_reply("this is seasonal, fine", posted.ts), event_id="EvRETRY"
    )
    assert posted.post(body, event=True).status_code == 200
    wait_for(lambda: feedback_count(posted.engine) == 1)
    assert posted.post(body, event=True).status_code == 200
    wait_for(lambda: len(posted.emulator.state.calls_to("chat.update")) >= 1)
    assert feedback_count(posted.engine) == 1
    with transaction(posted.engine) as session:
        row = session.scalars(select(Feedback)).one()
        assert (row.verdict, row.source, row.comment) == (
            "comment",
            "thread",
            "this is seasonal, fine",
        )
