"""Slack: alerts people can read and answer (`notifier`), and the answers (`app`).

`build_notifiers(settings)` and `outbox_channels(settings)` are what the daemon and the
cycle call; nothing else outside this package talks to Slack.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.config import Settings
    from monitor.notify import Notifier

log = logging.getLogger(__name__)


def outbox_channels(settings: Settings) -> list[str]:
    """The outbox channels the cycle writes rows for: "slack" (Slack app with a bot
    token), "webhook" (SLACK_WEBHOOK_URL), or "console" when neither is set up."""
    channels = []
    secrets = settings.secrets
    if settings.slack.enabled and secrets.slack_bot_token is not None:
        channels.append("slack")
    if secrets.slack_webhook_url is not None:
        channels.append("webhook")
    return channels or ["console"]


def build_notifiers(settings: Settings) -> dict[str, Notifier]:
    """One notifier per outbox channel (see `outbox_channels`), keyed by channel name."""
    from monitor import logs
    from monitor.notify import ConsoleNotifier

    secrets = settings.secrets
    if settings.slack.enabled and secrets.slack_bot_token is None:
        log.warning(
            "slack.enabled is true but SLACK_BOT_TOKEN is not set: alerts go to the console"
        )
    notifiers: dict[str, Notifier] = {}
    for channel in outbox_channels(settings):
        if channel == "slack":
            from monitor.slack.notifier import SlackNotifier, make_client

            token = secrets.slack_bot_token.get_secret_value()  # type: ignore[union-attr]
            logs.register_secret(token)
            client = make_client(token, settings.slack.api_url)
            notifiers["slack"] = SlackNotifier(
                client, settings.slack.channel or "", report_base_url=settings.slack.report_base_url
            )
        elif channel == "webhook":
            from monitor.slack.notifier import WebhookNotifier

            url = secrets.slack_webhook_url.get_secret_value()  # type: ignore[union-attr]
            logs.register_secret(url)
            notifiers["webhook"] = WebhookNotifier(
                url, report_base_url=settings.slack.report_base_url
            )
        else:
            notifiers["console"] = ConsoleNotifier()
    return notifiers
