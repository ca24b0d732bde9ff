"""Who may talk to monitor through Slack, and proof that Slack is the one talking.

- HTTP requests are verified (HMAC signature, 5-minute window) before they are parsed;
- replays are recognised by the Slack event id or the action key (`request_key`);
- payloads from another workspace or app are refused when `team_id`/`app_id` are set;
- users and channels are checked against the allow-lists from config;
- feedback counts only on the message monitor posted for that alert.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from slack_sdk.signature import Clock

from monitor import clock
from monitor.config import SlackConfig
from monitor.errors import SlackError
from monitor.store.tables import Alert

log = logging.getLogger(__name__)


class SlackRequestRefused(SlackError):
    """An inbound Slack request failed verification or came from elsewhere."""


class _MonitorClock(Clock):
    """The signature window measured on monitor's clock (so tests can move time)."""

    def now(self) -> float:
        return clock.utcnow().timestamp()


def check_signature_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """(timestamp, signature) when both headers are there and the timestamp is fresh;
    raises SlackRequestRefused otherwise. Needs no body: run it before reading one."""
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = lower.get("x-slack-request-timestamp")
    signature = lower.get("x-slack-signature")
    if not timestamp or not signature:
        raise SlackRequestRefused("missing X-Slack-Signature or X-Slack-Request-Timestamp")
    try:
        fresh = abs(_MonitorClock().now() - int(timestamp)) <= 300
    except ValueError as err:
        raise SlackRequestRefused(f"bad X-Slack-Request-Timestamp {timestamp[:20]!r}") from err
    if not fresh:
        raise SlackRequestRefused("stale request: timestamp more than 5 minutes away")
    return timestamp, signature


def verify_signature(signing_secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    """Raise SlackRequestRefused unless `body` carries a valid, fresh Slack signature."""
    timestamp, signature = check_signature_headers(headers)
    # on the raw bytes: slack_sdk's verifier decodes the body first, which fails (500)
    # on a body that is not UTF-8 before anything says whether it is signed at all
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise SlackRequestRefused("invalid signature")


def parse_body(body: bytes | str, content_type: str | None = None) -> dict[str, Any]:
    """The JSON payload of an event (JSON) or of an interaction (form `payload=`)."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    if text.startswith("payload=") or (content_type or "").startswith(
        "application/x-www-form-urlencoded"
    ):
        form = parse_qs(text)
        parsed = json.loads(form["payload"][0]) if "payload" in form else {}
    else:
        parsed = json.loads(text) if text.strip() else {}
    if not isinstance(parsed, dict):
        raise ValueError(f"a Slack payload is a JSON object, not {type(parsed).__name__}")
    return parsed


#: top-level fields Bolt and monitor read as objects when a payload has them
_OBJECT_FIELDS = ("event", "user", "view", "team", "channel", "container", "message",
                  "enterprise", "authorizations")
_TEXT_FIELDS = ("type", "team_id", "api_app_id", "event_id", "enterprise_id", "token")


def payload_problem(body: Mapping[str, Any]) -> str | None:
    """Why a (signed) payload has a shape Slack never sends, or None when it is fine:
    refused with 400 before Bolt, whose extractors assume these types."""
    for name in _TEXT_FIELDS:
        if name in body and body[name] is not None and not isinstance(body[name], str):
            return f"{name} is a {type(body[name]).__name__}, not text"
    for name in _OBJECT_FIELDS:
        value = body.get(name)
        if value is not None and not isinstance(value, dict | list if name == "authorizations"
                                                else dict):
            return f"{name} is a {type(value).__name__}, not an object"
    actions = body.get("actions")
    if actions is not None and (
        not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions)
    ):
        return "actions is not a list of objects"
    for name, value in (body.get("event") or {}).items():
        if name in ("type", "channel", "user", "text", "ts", "thread_ts", "team") and not (
            value is None or isinstance(value, str | dict)
        ):
            return f"event.{name} is a {type(value).__name__}"
    return _missing_part(body)


#: payload types a person's action sends: they always say who acted
_ACTED = frozenset({"block_actions", "view_submission", "view_closed", "shortcut", "message_action"})


def _missing_part(body: Mapping[str, Any]) -> str | None:
    """What a payload of a known type lacks that Slack always sends with it, or None."""
    kind = body.get("type")
    if kind in _ACTED and not isinstance((body.get("user") or {}).get("id"), str):
        return f"a {kind} payload without user.id"
    if kind == "block_actions":
        actions = body.get("actions") or []
        if not actions:
            return "a block_actions payload without actions"
        for action in actions:
            if not isinstance(action.get("action_id"), str):
                return "an action without an action_id"
            if not all(action.get(k) is None or isinstance(action[k], str)
                       for k in ("value", "action_ts", "block_id")):
                return "an action's value, action_ts or block_id is not text"
            if not isinstance(action.get("selected_option") or {}, dict):
                return "an action's selected_option is not an object"
    if kind in ("view_submission", "view_closed"):
        view = body.get("view") or {}
        if kind == "view_submission" and not isinstance((view.get("state") or {}).get("values"), dict):
            return "a view_submission without view.state.values"
        if not isinstance(view.get("private_metadata") or "", str):
            return "view.private_metadata is not text"
    if kind == "event_callback" and not isinstance((body.get("event") or {}).get("type"), str):
        return "an event_callback without event.type"
    if kind == "url_verification" and not isinstance(body.get("challenge"), str):
        return "a url_verification without a challenge"
    return None


def request_key(body: Mapping[str, Any]) -> str | None:
    """A key that identifies one inbound request across Slack's retries and replays."""
    kind = body.get("type")
    if kind == "event_callback" and body.get("event_id"):
        return f"event:{body['event_id']}"
    if kind == "block_actions" and body.get("actions"):
        action = body["actions"][0]
        user = (body.get("user") or {}).get("id")
        return f"action:{user}:{action.get('action_id')}:{action.get('action_ts')}"
    if kind == "view_submission" and body.get("view"):
        view = body["view"]
        return f"view:{view.get('id')}:{view.get('hash')}"
    return None


@dataclass(frozen=True)
class Gate:
    """The allow-lists and origin checks from `[slack]` config."""

    config: SlackConfig

    def origin_problem(self, body: Mapping[str, Any]) -> str | None:
        """Why a payload from this workspace/app is refused, or None when it is fine."""
        team = body.get("team_id") or (body.get("team") or {}).get("id")
        app = body.get("api_app_id")
        if self.config.team_id and team and team != self.config.team_id:
            return f"team {team} is not {self.config.team_id}"
        if self.config.team_id and not team:
            return "payload without a team id"
        if self.config.app_id and app and app != self.config.app_id:
            return f"app {app} is not {self.config.app_id}"
        return None

    def user_allowed(self, user_id: str | None) -> bool:
        """Empty `allowed_users` lets anyone in an allowed channel answer."""
        if not user_id:
            return False
        return not self.config.allowed_users or user_id in self.config.allowed_users

    def channel_allowed(self, channel_id: str | None, alert: Alert | None = None) -> bool:
        """`allowed_channels` when set; otherwise the configured channel or the alert's."""
        if not channel_id:
            return False
        if self.config.allowed_channels:
            return channel_id in self.config.allowed_channels
        known = {
            self.config.channel,
            self.config.channel.lstrip("#") if self.config.channel else None,
        }
        if alert is not None:
            known.add(alert.slack_channel)
        return channel_id in known


def posted_by_monitor(
    alert: Alert, channel_id: str | None, message_ts: str | None, thread_ts: str | None = None
) -> bool:
    """True when (channel, ts) is the message monitor posted for `alert`, or a reply
    monitor posted in that message's thread (a later window of the same incident)."""
    return (
        bool(alert.slack_ts)
        and alert.slack_channel == channel_id
        and alert.slack_ts in (message_ts, thread_ts)
    )
