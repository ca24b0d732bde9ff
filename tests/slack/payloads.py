"""Slack request bodies as Slack sends them, and a signer for the HTTP endpoint."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from tests.slack.emulator import APP, TEAM


def click(
    alert_id: int,
    ts: str,
    action_id: str = "monitor_acknowledge",
    *,
    user: str = "U1",
    channel: str = "C_ALERTS",
    action_ts: str = "1700000000.000100",
    team: str = TEAM,
) -> dict[str, Any]:
    """A block_actions payload for a button on the message (channel, ts)."""
    return {
        "type": "block_actions",
        "team": {"id": team},
        "api_app_id": APP,
        "token": "legacy",
        "user": {"id": user, "username": f"user-{user.lower()}", "team_id": team},
        "channel": {"id": channel},
        "trigger_id": "1337.42.abcd",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel},
        "message": {"ts": ts, "type": "message"},
        "actions": [
            {
                "action_id": action_id,
                "block_id": f"monitor_feedback_{alert_id}",
                "value": str(alert_id),
                "type": "button",
                "action_ts": action_ts,
            }
        ],
    }


def submission(
    alert_id: int, ts: str, comment: str, *, user: str = "U1", view_id: str = "V1"
) -> dict[str, Any]:
    """A view_submission of the comment modal."""
    return {
        "type": "view_submission",
        "team": {"id": TEAM},
        "api_app_id": APP,
        "user": {"id": user, "username": f"user-{user.lower()}", "team_id": TEAM},
        "view": {
            "id": view_id,
            "hash": "h1",
            "type": "modal",
            "callback_id": "monitor_comment_modal",
            "private_metadata": json.dumps({"alert_id": alert_id, "channel": "C_ALERTS", "ts": ts}),
            "state": {
                "values": {
                    "comment_block": {
                        "comment_input": {"type": "plain_text_input", "value": comment}
                    }
                }
            },
        },
    }


def event(inner: dict[str, Any], event_id: str = "Ev1") -> dict[str, Any]:
    """An events_api envelope body (event_callback)."""
    return {
        "type": "event_callback",
        "team_id": TEAM,
        "api_app_id": APP,
        "event_id": event_id,
        "event_time": 1700000000,
        "event": inner,
    }


def thread_reply(
    text: str, thread_ts: str, *, user: str = "U1", ts: str = "1700000001.000200"
) -> dict[str, Any]:
    return {
        "type": "message",
        "channel": "C_ALERTS",
        "user": user,
        "text": text,
        "ts": ts,
        "thread_ts": thread_ts,
        "channel_type": "channel",
    }


def mention(text: str, *, thread_ts: str | None = None, user: str = "U1") -> dict[str, Any]:
    inner = {
        "type": "app_mention",
        "channel": "C_ALERTS",
        "user": user,
        "text": text,
        "ts": "1700000002.000300",
    }
    if thread_ts:
        inner["thread_ts"] = thread_ts
    return inner


def form(payload: dict[str, Any]) -> bytes:
    """An interactivity body: `payload=<json>`, form-encoded."""
    return urlencode({"payload": json.dumps(payload)}).encode()


def signed(
    secret: str,
    body: bytes,
    timestamp: int | None = None,
    *,
    content_type: str = "application/x-www-form-urlencoded",
    tamper: Callable[[str], str] = lambda s: s,
) -> dict[str, str]:
    """Headers Slack would send with `body` (timestamp defaults to now)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": tamper(f"v0={digest}"),
        "Content-Type": content_type,
    }
