"""Slack: alerts people can read and answer (`notifier`), and the answers (`app`).

`slack_notifiers(settings, channels)` builds the Slack app and incoming-webhook
notifiers that `monitor.notify.build_notifiers` asks for; nothing outside this package
talks to Slack.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.config import Settings
    from monitor.notify import Notifier

log = logging.getLogger(__name__)


def slack_notifiers(settings: Settings, channels: Sequence[str]) -> dict[str, Notifier]:
    """The notifiers of the "slack" and "webhook" outbox channels among `channels`."""
    from monitor import logs

    secrets = settings.secrets
    if settings.slack.enabled and secrets.slack_bot_token is None:
        log.warning("slack.enabled is true but SLACK_BOT_TOKEN is not set: alerts go to the console")
    notifiers: dict[str, Notifier] = {}
    if "slack" in channels and secrets.slack_bot_token is not None:
        from monitor.slack.notifier import SlackNotifier, make_client

        token = secrets.slack_bot_token.get_secret_value()
        logs.register_secret(token)
        client = make_client(token, settings.slack.api_url)
        notifiers["slack"] = SlackNotifier(
            client, settings.slack.channel or "", report_base_url=settings.slack.report_base_url
        )
    if "webhook" in channels and secrets.slack_webhook_url is not None:
        from monitor.slack.webhook import WebhookNotifier

        url = secrets.slack_webhook_url.get_secret_value()
        logs.register_secret(url)
        notifiers["webhook"] = WebhookNotifier(url, report_base_url=settings.slack.report_base_url)
    return notifiers
