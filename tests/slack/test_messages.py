"""The pure parts: Block Kit from payloads, charts as PNG, masked Slack logs."""

from __future__ import annotations

import io
import logging
from datetime import timedelta

import pytest
from slack_sdk import WebClient

from monitor import charts, logs
from monitor.slack import messages
from monitor.slack.security import Gate, request_key
from monitor.store.tables import Alert, Run
from tests.factories import T0, payload
from tests.slack.conftest import BOT_TOKEN, make_settings


def sample_payload(kind: str = "feature_drift") -> dict:
    run = Run(
        id=12,
        model="cancer",
        window_start=T0,
        window_end=T0 + timedelta(hours=1),
        status="succeeded",
    )
    alert = Alert(
        id=7,
        model="cancer",
        kind=kind,
        feature="mean radius",
        severity="critical",
        status="open",
        title="mean radius drifted",
        fire_count=1,
        opened_at=T0,
    )
    return payload(alert, run)


def test_alert_message_says_what_drifted_and_carries_the_alert_id():
    text, blocks = messages.alert_message(
        "alert_opened", sample_payload(), report_base_url="https://mon.example/r"
    )
    assert text == "cancer: mean radius drifted"
    body = str(blocks)
    assert "Window 2026-03-02T12:00:00+00:00" in body and "run 12" in body
    assert "`mean radius` wasserstein score 0.31 (threshold 0.1)" in body
    assert (
        "`mean radius` gained influence: 0.1 → 0.3" in body
        and "`mean texture` lost influence" in body
    )
    assert "Quarantined 3 rows (missing_feature 2, not_a_number 1)" in body
    assert "<https://mon.example/r/12|Open the report>" in body
    (actions,) = [b for b in blocks if b["type"] == "actions"]
    assert actions["type"] == "actions" and {e["value"] for e in actions["elements"]} == {"7"}
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in blocks)


def test_report_hint_without_a_base_url_and_run_failed_error():
    p = sample_payload("run_failed")
    p["details"] = {"error": "model file missing"}
    _, blocks = messages.alert_message("alert_opened", p)
    body = str(blocks)
    assert "monitor report 12 --out report-12.html" in body and "model file missing" in body


def test_feedback_message_lists_answers_and_keeps_only_comment_button():
    p = {
        "alert": sample_payload()["alert"],
        "status": "muted",
        "feedback": [
            {
                "user_id": "U1",
                "user_name": "ana",
                "verdict": "expected_change",
                "comment": "promo",
                "at": "x",
            }
        ],
    }
    _, blocks = messages.feedback_message(p)
    body = str(blocks)
    assert "<@U1> (ana) marked as expected change: “promo”" in body and "Status: *muted*" in body
    assert [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]] == [
        "monitor_comment"
    ]


def test_why_message_orders_contributions():
    text = messages.why_message(
        {
            "model": "m",
            "request_id": "r1",
            "method": "ig",
            "output": 0.9,
            "baseline_output": 0.4,
            "contributions": [["a", 0.4, 1.0], ["b", -0.1, "x"]],
        }
    )
    assert text.index("`a`") < text.index("`b`") and "+0.4" in text and "-0.1" in text


@pytest.mark.parametrize("kind", ["feature_drift", "attribution_drift"])
def test_alert_chart_is_a_png(kind):
    png = charts.alert_chart(sample_payload(kind))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000


def test_contribution_and_importance_charts_are_pngs():
    assert (
        charts.contributions_chart([["a", 0.4, 1.0], ["b", -0.1, "x"]], 0.9, None)[:4] == b"\x89PNG"
    )
    assert charts.importance_chart(sample_payload()["attribution"]["features"])[:4] == b"\x89PNG"
    assert charts.alert_chart({"alert": {"kind": "data_quality"}}) is None


def test_request_keys_and_origin_checks(emulator):
    gate = Gate(make_settings(emulator, allowed_users=("U1",)).slack)
    assert request_key({"type": "event_callback", "event_id": "Ev9"}) == "event:Ev9"
    assert (
        request_key(
            {
                "type": "block_actions",
                "user": {"id": "U1"},
                "actions": [{"action_id": "a", "action_ts": "1.2"}],
            }
        )
        == "action:U1:a:1.2"
    )
    assert gate.origin_problem({"team": {"id": "T123"}, "api_app_id": "A123"}) is None
    assert "T999" in gate.origin_problem({"team_id": "T999"})
    assert "A999" in gate.origin_problem({"team_id": "T123", "api_app_id": "A999"})
    assert gate.user_allowed("U1") and not gate.user_allowed("U2") and not gate.user_allowed(None)
    assert gate.channel_allowed("C_ALERTS") and not gate.channel_allowed("C_OTHER")


def test_slack_sdk_debug_log_is_masked(emulator):
    """A real slack-sdk DEBUG log of a call with a bot token and a webhook URL prints neither."""
    stream = io.StringIO()
    logs.configure("DEBUG", "text", stream=stream)
    logging.getLogger("slack_sdk").setLevel(logging.DEBUG)  # as if someone turned it on
    try:
        client = WebClient(token=BOT_TOKEN, base_url=emulator.api_url)
        client.chat_postMessage(
            channel="C_ALERTS", text="see https://hooks.slack.com/services/T0/B0/XYZsecret"
        )
        logging.getLogger("monitor.test").info("token %s leaked?", BOT_TOKEN)
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_monitor", False)]:
            root.removeHandler(handler)
        logging.getLogger("slack_sdk").setLevel(logging.NOTSET)
    output = stream.getvalue()
    assert "chat.postMessage" in output  # the debug lines really were written
    assert BOT_TOKEN not in output and "XYZsecret" not in output
    assert "xox?-***" in output and "https://hooks.slack.com/***" in output
