"""Notifiers that deliver outbox rows to Slack: the Web API (bot token) or a webhook.

`SlackNotifier` posts one Block Kit message per alert (with a chart in its thread and
the feedback buttons), replies in that thread when the alert fires again or resolves,
rewrites it with `chat.update` when feedback arrives, and answers `why` questions.
Exactly once: `chat.postMessage` has no idempotency key, so every post carries the
outbox id in its message metadata and a retried row first looks for it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http.client import HTTPException
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler

from monitor import charts
from monitor.notify import Delivered, NotifyError, OutboxMessage
from monitor.slack import messages

log = logging.getLogger(__name__)

#: how far back `conversations.history` looks for a post of a retried outbox row
HISTORY_LIMIT = 200
#: what a failed Web API call raises (a dropped answer may surface as http.client's errors)
_CALL_ERRORS = (SlackApiError, SlackClientError, OSError, HTTPException)
#: calls Slack may have carried out although their answer was lost: never retried blindly
NOT_IDEMPOTENT = ("chat.postMessage", "files.completeUploadExternal")


class BoundedRateLimitHandler(RateLimitErrorRetryHandler):
    """Waits out a 429 in place only when Slack asks for a short pause; a longer one is
    left to the outbox backoff, so the delivery thread is never blocked for minutes."""

    def __init__(self, max_retry_count: int = 1, max_wait: float = 5.0):
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(
        self, *, state: Any, request: Any, response: Any = None, error: Any = None
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        return retry_after_header(response.headers) <= self.max_wait


class IdempotentServerErrorRetryHandler(ServerErrorRetryHandler):
    """Retries 500/503 in place, except for posts: Slack may have stored a post whose
    answer failed, and a blind retry would post it twice. Those go back to the outbox,
    whose next try looks for the earlier post first."""

    NOT_IDEMPOTENT = ("chat.postMessage", "files.completeUploadExternal")

    def _can_retry(
        self, *, state: Any, request: Any, response: Any = None, error: Any = None
    ) -> bool:
        if str(getattr(request, "url", "")).endswith(NOT_IDEMPOTENT):
            return False
        return super()._can_retry(state=state, request=request, response=response, error=error)


class IdempotentConnectionErrorRetryHandler(ConnectionErrorRetryHandler):
    """Retries a dropped connection in place, except for posts: Slack may have stored the
    post before the connection dropped. A post is looked up by its metadata instead
    (`SlackNotifier._post`) before it is ever sent again."""

    def _can_retry(
        self, *, state: Any, request: Any, response: Any = None, error: Any = None
    ) -> bool:
        if str(getattr(request, "url", "")).endswith(NOT_IDEMPOTENT):
            return False
        return super()._can_retry(state=state, request=request, response=response, error=error)


def retry_after_header(headers: Mapping[str, Any] | None) -> float:
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            value = value[0] if isinstance(value, list) else value
            try:
                return float(value)
            except (TypeError, ValueError):
                return 1.0
    return 1.0


def retry_handlers(max_wait: float = 5.0) -> list[RetryHandler]:
    """Retries for connection errors and server errors (500/503), both not for posts,
    and short rate limits (429: Slack did nothing, so a post is retried too)."""
    return [
        IdempotentConnectionErrorRetryHandler(max_retry_count=2),
        BoundedRateLimitHandler(max_retry_count=1, max_wait=max_wait),
        IdempotentServerErrorRetryHandler(max_retry_count=1),
    ]


def make_client(token: str, api_url: str, *, max_wait: float = 5.0, timeout: int = 15) -> WebClient:
    """A WebClient for `api_url` with monitor's retry handlers."""
    return WebClient(
        token=token, base_url=api_url, timeout=timeout, retry_handlers=retry_handlers(max_wait)
    )


def _notify_error(action: str, err: Exception) -> NotifyError:
    """A NotifyError for a failed Slack call; a 429 carries Slack's Retry-After."""
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    retry_after = retry_after_header(getattr(response, "headers", None)) if status == 429 else None
    detail = (
        response.get("error")
        if isinstance(err, SlackApiError) and response is not None
        else str(err)
    )
    return NotifyError(f"slack {action} failed (HTTP {status}): {detail}", retry_after=retry_after)


class SlackNotifier:
    """Delivers outbox rows of channel "slack" through the Web API."""

    name = "slack"

    def __init__(
        self,
        client: WebClient,
        channel: str,
        *,
        report_base_url: str | None = None,
        charts_enabled: bool = True,
    ):
        self.client, self.channel = client, channel
        self.report_base_url = report_base_url
        self.charts_enabled = charts_enabled

    def deliver(self, message: OutboxMessage) -> Delivered:
        """Post, reply, update or answer for one outbox row; raises NotifyError to retry."""
        try:
            if message.event == "alert_opened":
                return self._open(message)
            if message.event in ("alert_refired", "alert_resolved"):
                return self._reply(message)
            if message.event == "feedback_update":
                return self._update(message)
            if message.event == "why_answer":
                return self._why(message)
        except _CALL_ERRORS as err:
            raise _notify_error(message.event, err) from err
        log.warning("outbox %s: unknown event %r, dropped", message.id, message.event)
        return Delivered()

    def _metadata(self, message: OutboxMessage) -> dict[str, Any]:
        return {"event_type": messages.METADATA_EVENT, "event_payload": {"outbox_id": message.id}}

    def _already_posted(
        self, message: OutboxMessage, channel: str, thread_ts: str | None
    ) -> str | None:
        """The ts of an earlier post of this row (a crash after posting, before commit)."""
        if message.attempts == 0:
            return None
        return self._find_post(message, channel, thread_ts)

    def _find_post(self, message: OutboxMessage, channel: str, thread_ts: str | None) -> str | None:
        """The ts of a post carrying this outbox row's id in its metadata, else None."""
        if thread_ts:
            found = self.client.conversations_replies(
                channel=channel, ts=thread_ts, include_all_metadata=True, limit=HISTORY_LIMIT
            )
        else:
            found = self.client.conversations_history(
                channel=channel, include_all_metadata=True, limit=HISTORY_LIMIT
            )
        for item in found.get("messages") or []:
            meta = item.get("metadata") or {}
            if meta.get("event_type") == messages.METADATA_EVENT and str(
                (meta.get("event_payload") or {}).get("outbox_id")
            ) == str(message.id):
                log.info(
                    "outbox %s was already posted as %s; not posting again",
                    message.id,
                    item.get("ts"),
                )
                return str(item.get("ts"))
        return None

    def _post(
        self,
        message: OutboxMessage,
        channel: str,
        text: str,
        *,
        blocks: list[Any] | None = None,
        thread_ts: str | None = None,
    ) -> tuple[str, str]:
        """Post once (looking for an earlier post of a retried row); returns (channel, ts).

        A post whose answer is lost (connection dropped, 5xx) may be stored all the same:
        it is looked up by its metadata at once, and only the outbox's next attempt,
        which looks again, may post it anew.
        """
        earlier = self._already_posted(message, channel, thread_ts)
        if earlier:
            return channel, earlier
        try:
            response = self.client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                thread_ts=thread_ts,
                metadata=self._metadata(message),
                unfurl_links=False,
            )
        except _CALL_ERRORS as err:
            status = getattr(getattr(err, "response", None), "status_code", None)
            if status == 429 or (isinstance(err, SlackApiError) and status == 200):
                raise  # refused by Slack: nothing was stored
            log.warning("outbox %s: post answer lost (%s); looking for the post",
                        message.id, type(err).__name__)
            try:
                found = self._find_post(message, channel, thread_ts)
            except _CALL_ERRORS:
                log.warning("outbox %s: cannot look for the post now", message.id, exc_info=True)
                found = None
            if found:
                return channel, found
            raise
        return str(response["channel"]), str(response["ts"])

    def _open(self, message: OutboxMessage) -> Delivered:
        text, blocks = messages.alert_message(
            message.event, message.payload, report_base_url=self.report_base_url
        )
        channel, ts = self._post(message, self.channel, text, blocks=blocks)
        if self.charts_enabled:
            self._upload(
                lambda: charts.alert_chart(message.payload),
                channel,
                ts,
                f"alert-{message.alert_id}.png",
                "Drift and attribution chart",
            )
        return Delivered(external_id=ts, channel=channel)

    def _reply(self, message: OutboxMessage) -> Delivered:
        if not message.alert_slack_ts:
            # the alert was never posted to Slack (e.g. Slack enabled later): post it whole
            text, blocks = messages.alert_message(
                message.event,
                message.payload,
                report_base_url=self.report_base_url,
                with_buttons=False,
            )
            channel, ts = self._post(message, self.channel, text, blocks=blocks)
            return Delivered(external_id=ts, channel=channel)
        channel = message.alert_slack_channel or self.channel
        text, blocks = messages.thread_reply_blocks(message.event, message.payload)
        channel, ts = self._post(message, channel, text, blocks=blocks, thread_ts=message.alert_slack_ts)
        # the incident's message stays where its thread is: later findings join that thread
        return Delivered(external_id=ts, channel=channel, thread_ts=message.alert_slack_ts)

    def _update(self, message: OutboxMessage) -> Delivered:
        if not message.alert_slack_ts:
            return Delivered()
        if message.payload.get("shared"):
            # the message lists other findings too: say who answered in its thread
            channel = message.alert_slack_channel or self.channel
            text = messages.feedback_reply(message.payload)
            channel, ts = self._post(message, channel, text, thread_ts=message.alert_slack_ts)
            return Delivered(external_id=ts, channel=channel, thread_ts=message.alert_slack_ts)
        text, blocks = messages.feedback_message(message.payload)
        response = self.client.chat_update(
            channel=message.alert_slack_channel or self.channel,
            ts=message.alert_slack_ts,
            text=text,
            blocks=blocks,
        )
        return Delivered(external_id=str(response.get("ts")), channel=str(response.get("channel")))

    def _why(self, message: OutboxMessage) -> Delivered:
        payload = message.payload
        channel = payload.get("channel") or self.channel
        thread_ts = payload.get("thread_ts")
        text = messages.why_message(payload)
        channel, ts = self._post(message, channel, text, thread_ts=thread_ts)
        if self.charts_enabled and payload.get("contributions"):
            self._upload(
                lambda: charts.contributions_chart(
                    payload["contributions"],
                    float(payload.get("output") or 0.0),
                    payload.get("baseline_output"),
                ),
                channel,
                thread_ts or ts,
                f"why-{payload.get('request_id')}.png",
                "Contributions",
            )
        return Delivered(external_id=ts, channel=channel)

    def _upload(self, draw: Any, channel: str, thread_ts: str, filename: str, title: str) -> None:
        """Upload a chart into a thread; a failure is logged, the message stays delivered."""
        try:
            png = draw()
            if png is None:
                return
            self.client.files_upload_v2(
                channel=channel, thread_ts=thread_ts, content=png, filename=filename, title=title
            )
        except Exception:  # noqa: BLE001 - the alert is out; a missing chart must not re-post it
            log.warning(
                "chart %s could not be uploaded to %s/%s",
                filename,
                channel,
                thread_ts,
                exc_info=True,
            )
