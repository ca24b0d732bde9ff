"""What the Slack listeners do once they acknowledged: checks, the database, replies.

`FeedbackService` turns clicks, modal submissions, thread replies and `why` mentions
into feedback rows, policies and outbox rows, and refuses (ephemerally) whatever is not
allowed. `monitor.slack.app` wires it to Bolt.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from monitor import clock
from monitor.config import Settings
from monitor.events import WhyAnswer
from monitor.notify import deliver_outbox
from monitor.policies import PolicyError, apply_feedback, record_rebaseline
from monitor.slack import messages
from monitor.slack.notifier import SlackNotifier
from monitor.slack.security import (
    Gate,
    posted_by_monitor,
    request_key,
)
from monitor.store import feedback as repo
from monitor.store import outbox
from monitor.store.alerts import alert_for_message, channel_has_alerts, get_alert
from monitor.store.engine import transaction
from monitor.store.runs import latest_explanation
from monitor.store.tables import Alert

log = logging.getLogger(__name__)

WHY = re.compile(r"^\s*(?:<@[A-Z0-9]+>\s*)?why\s+(\S+)", re.IGNORECASE)


class FeedbackService:
    """The work behind each listener: checks, the database, replies to the user."""

    def __init__(self, settings: Settings, engine: Engine, client: Any):
        self.settings, self.engine, self.client = settings, engine, client
        self.gate = Gate(settings.slack)
        self.notifier = SlackNotifier(
            client, settings.slack.channel or "", report_base_url=settings.slack.report_base_url
        )

    # -- helpers --------------------------------------------------------------------

    def refuse(self, channel: str | None, user: str | None, text: str) -> None:
        """Tell one person, and only them, why their answer was not recorded."""
        log.info("slack feedback refused for user %s in %s: %s", user, channel, text)
        if channel and user:
            try:
                self.client.chat_postEphemeral(channel=channel, user=user, text=text)
            except Exception:  # noqa: BLE001 - the refusal stands even when it cannot be shown
                log.warning("could not send an ephemeral refusal to %s", user, exc_info=True)

    def deliver_now(self) -> None:
        """Deliver the rows just queued (feedback updates, why answers) without waiting."""
        deliver_outbox(self.engine, {"slack": self.notifier}, limit=20)

    def _alert(self, session: Any, alert_id: Any) -> Alert | None:
        try:
            return get_alert(session, int(alert_id))
        except (TypeError, ValueError):
            return None

    def check(
        self,
        alert: Alert | None,
        alert_id: Any,
        channel: str | None,
        user: str | None,
        message_ts: str | None,
        thread_ts: str | None = None,
    ) -> str | None:
        """The refusal text for this answer, or None when it may be recorded."""
        if alert is None:
            return messages.UNKNOWN_ALERT.format(alert_id=alert_id)
        if not self.gate.user_allowed(user):
            return messages.REFUSED_USER
        if not self.gate.channel_allowed(channel, alert):
            return messages.REFUSED_CHANNEL
        if not posted_by_monitor(alert, channel, message_ts, thread_ts):
            return messages.REFUSED_MESSAGE
        return None

    def record(
        self,
        key: str | None,
        alert_id: Any,
        verdict: str,
        *,
        channel: str | None,
        user: str | None,
        user_name: str | None,
        message_ts: str | None,
        comment: str | None,
        source: str,
        thread_ts: str | None = None,
        feature: str | None = None,
    ) -> Any:
        """Check and store one answer, then deliver the Slack update. Returns the outcome."""
        now = clock.utcnow()
        try:
            with transaction(self.engine) as session:
                alert = self._alert(session, alert_id)
                problem = self.check(alert, alert_id, channel, user, message_ts, thread_ts)
                if problem:
                    self.refuse(channel, user, problem)
                    return None
                if key:
                    repo.mark_processed(session, key, now)
                outcome = apply_feedback(
                    session,
                    alert,
                    verdict,
                    user_id=user or "?",
                    user_name=user_name,
                    comment=comment,
                    source=source,
                    external_id=key,
                    config=self.settings.feedback,
                    now=now,
                    feature=feature,
                )
                model = alert.model
        except IntegrityError:
            log.info("slack request %s was already handled (a concurrent retry)", key)
            return None
        except PolicyError as err:
            self.refuse(channel, user, str(err))
            return None
        if outcome.rebaseline_run_id is not None and channel and user:
            text, blocks = messages.rebaseline_offer(
                model, outcome.rebaseline_run_id, int(alert_id), self.settings.feedback.mute_days
            )
            self.client.chat_postEphemeral(channel=channel, user=user, text=text, blocks=blocks)
        self.deliver_now()
        return outcome

    # -- listeners' work ------------------------------------------------------------

    def on_verdict(self, body: dict[str, Any]) -> None:
        action = body["actions"][0]
        self.record(
            request_key(body),
            action.get("value"),
            messages.VERDICT_ACTIONS[action["action_id"]],
            **_button_context(body),
        )

    def on_feature_verdict(self, body: dict[str, Any]) -> None:
        """An answer about one feature of an input-drift alert, from its menu."""
        action = body["actions"][0]
        value = str((action.get("selected_option") or {}).get("value") or "")
        alert_id, verdict, feature = (value.split("|", 2) + ["", ""])[:3]
        if verdict not in messages.FEATURE_VERDICTS or not feature:
            log.warning("slack feature verdict with a malformed value %r: ignored", value[:200])
            return
        self.record(
            request_key(body),
            alert_id,
            verdict,
            **_button_context(body),
            feature=feature,
        )

    def on_comment_button(self, body: dict[str, Any]) -> None:
        action = body["actions"][0]
        channel = (body.get("channel") or {}).get("id")
        ts = (body.get("container") or {}).get("message_ts")
        user = body["user"]["id"]
        with transaction(self.engine) as session:
            problem = self.check(
                self._alert(session, action.get("value")), action.get("value"), channel, user, ts,
                _thread_ts(body),
            )
        if problem:
            self.refuse(channel, user, problem)
            return
        self.client.views_open(
            trigger_id=body["trigger_id"],
            view=messages.comment_modal(int(action["value"]), channel, _thread_ts(body) or ts),
        )

    def on_comment_submitted(self, body: dict[str, Any], comment: str) -> None:
        try:
            meta = json.loads(body["view"].get("private_metadata") or "{}")
        except ValueError:
            meta = None
        if not isinstance(meta, dict):
            log.warning("slack comment modal without monitor's metadata: ignored")
            return
        user = body["user"]
        self.record(
            request_key(body),
            meta.get("alert_id"),
            "comment",
            channel=meta.get("channel"),
            user=user["id"],
            user_name=user.get("username") or user.get("name"),
            message_ts=meta.get("ts"),
            comment=comment,
            source="modal",
        )

    def on_rebaseline(self, body: dict[str, Any]) -> None:
        alert_id, _, run_id = str(body["actions"][0].get("value")).partition(":")
        channel, user = (body.get("channel") or {}).get("id"), body["user"]["id"]
        who = body["user"].get("username") or body["user"].get("name") or user
        if not self.gate.user_allowed(user):
            self.refuse(channel, user, messages.REFUSED_USER)
            return
        if not self._first_time(request_key(body)):
            return
        from monitor.baseline import adopt_run_as_baseline

        try:
            baseline_id = adopt_run_as_baseline(
                self.settings, self.engine, int(run_id), created_by=who
            )
        except Exception as err:  # noqa: BLE001 - the person who clicked gets the reason
            log.exception("adopting run %s as baseline failed", run_id)
            self.refuse(channel, user, messages.REBASELINE_FAILED.format(run_id=run_id, error=err))
            return
        with transaction(self.engine) as session:
            alert = self._alert(session, alert_id)
            if alert is not None:
                record_rebaseline(
                    session, alert, int(run_id), baseline_id, user=who, now=clock.utcnow()
                )
            model = alert.model if alert else "?"
        if channel:
            self.client.chat_postEphemeral(
                channel=channel,
                user=user,
                text=messages.REBASELINE_DONE.format(
                    baseline_id=baseline_id, model=model, run_id=run_id, user=who
                ),
            )

    def _first_time(self, key: str | None) -> bool:
        """Mark an inbound request handled; False when it already was (a replay)."""
        if not key:
            return True
        try:
            with transaction(self.engine) as session:
                if repo.is_processed(session, key):
                    return False
                repo.mark_processed(session, key, clock.utcnow())
        except IntegrityError:
            log.info("slack request %s was already handled (a concurrent retry)", key)
            return False
        return True

    def on_thread_message(self, body: dict[str, Any]) -> None:
        event = body.get("event") or {}
        if event.get("bot_id") or event.get("subtype") or not event.get("thread_ts"):
            return
        if event.get("thread_ts") == event.get("ts") or WHY.match(event.get("text") or ""):
            return
        channel, thread_ts = event.get("channel"), event.get("thread_ts")
        with transaction(self.engine) as session:
            alert = alert_for_message(session, channel, thread_ts)
            alert_id = alert.id if alert else None
        if alert_id is None:
            return  # a thread that is not an alert's: none of monitor's business
        self.record(
            request_key(body),
            alert_id,
            "comment",
            channel=channel,
            user=event.get("user"),
            user_name=None,
            message_ts=thread_ts,
            comment=event.get("text"),
            source="thread",
        )

    def on_mention(self, body: dict[str, Any]) -> None:
        event = body.get("event") or {}
        channel, user = event.get("channel"), event.get("user")
        thread_ts = event.get("thread_ts")
        match = WHY.match(event.get("text") or "")
        reply_ts = thread_ts or event.get("ts")
        if match is None:
            self.client.chat_postMessage(
                channel=channel, thread_ts=reply_ts, text=messages.WHY_USAGE
            )
            return
        request_id = match.group(1).strip("`<>")
        with transaction(self.engine) as session:
            alert = alert_for_message(session, channel, thread_ts)
            if not self.gate.user_allowed(user) or not self._channel_ok(session, channel, alert):
                self.refuse(
                    channel,
                    user,
                    messages.REFUSED_USER
                    if not self.gate.user_allowed(user)
                    else messages.REFUSED_CHANNEL,
                )
                return
            key = request_key(body)
            if key:
                repo.mark_processed(session, key, clock.utcnow())
            answer = why_answer(session, request_id, alert.model if alert else None, channel, reply_ts)
            if answer is not None:
                outbox.queue(session, answer, ["slack"], clock.utcnow(), alert_id=alert.id if alert else None)
        if answer is None:
            self.client.chat_postMessage(
                channel=channel,
                thread_ts=reply_ts,
                text=messages.WHY_UNKNOWN.format(request_id=request_id),
            )
            return
        self.deliver_now()

    def _channel_ok(self, session: Any, channel: str | None, alert: Alert | None) -> bool:
        if self.gate.channel_allowed(channel, alert):
            return True
        if self.settings.slack.allowed_channels:
            return False
        return channel_has_alerts(session, channel)


def _button_context(body: dict[str, Any]) -> dict[str, Any]:
    """Who pressed a button or picked a menu option, and where: `record`'s context."""
    user = body["user"]
    return {
        "channel": (body.get("channel") or {}).get("id"),
        "user": user["id"],
        "user_name": user.get("username") or user.get("name"),
        "message_ts": (body.get("container") or {}).get("message_ts"),
        "comment": None,
        "source": "button",
        "thread_ts": _thread_ts(body),
    }


def _thread_ts(body: dict[str, Any]) -> str | None:
    """The thread a clicked message sits in (None for a top-level message)."""
    thread = (body.get("message") or {}).get("thread_ts") or (body.get("container") or {}).get("thread_ts")
    return str(thread) if thread else None


def why_answer(
    session: Any, request_id: str, model: str | None, channel: str | None, thread_ts: str | None
) -> WhyAnswer | None:
    """The `why_answer` event for a request, from its latest stored attribution."""
    found = latest_explanation(session, model, request_id)
    if found is None:
        return None
    row, _run = found
    ranked = sorted(row.values.items(), key=lambda kv: -abs(float(kv[1])))
    return WhyAnswer(
        model=row.model,
        request_id=row.request_id,
        method=row.method,
        output=row.output,
        baseline_output=row.baseline_output,
        contributions=[[name, float(value), (row.features or {}).get(name)] for name, value in ranked],
        channel=channel,
        thread_ts=thread_ts,
    )
