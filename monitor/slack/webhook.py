"""The incoming-webhook notifier: alerts posted to SLACK_WEBHOOK_URL, for teams without
a Slack app (alerts only: a webhook takes no answers)."""

from __future__ import annotations

from slack_sdk.errors import SlackClientError
from slack_sdk.webhook import WebhookClient

from monitor.notify import Delivered, NotifyError, OutboxMessage
from monitor.slack import messages
from monitor.slack.notifier import retry_after_header, retry_handlers
from monitor.vocab import EventName

_ANNOUNCED = (EventName.ALERT_OPENED, EventName.ALERT_REFIRED, EventName.ALERT_RESOLVED)


class WebhookNotifier:
    """Posts alerts to an incoming-webhook URL (no Slack app: alerts only, no answers)."""

    name = "webhook"

    def __init__(self, url: str, *, report_base_url: str | None = None, timeout: int = 15):
        self.client = WebhookClient(url, timeout=timeout, retry_handlers=retry_handlers())
        self.report_base_url = report_base_url

    def deliver(self, message: OutboxMessage) -> Delivered:
        """Send one row as a webhook message; raises NotifyError on failure."""
        if message.event not in _ANNOUNCED:
            return Delivered()
        body = messages.webhook_body(message.event, message.payload, self.report_base_url)
        try:
            response = self.client.send(text=body["text"], blocks=body["blocks"])
        except (SlackClientError, OSError) as err:
            raise NotifyError(f"slack webhook failed: {type(err).__name__}") from err
        if response.status_code != 200:
            retry = retry_after_header(response.headers) if response.status_code == 429 else None
            raise NotifyError(
                f"slack webhook answered HTTP {response.status_code}: {response.body[:200]}",
                retry_after=retry,
            )
        return Delivered(external_id=f"webhook:{message.id}")
