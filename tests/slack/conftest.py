"""Fixtures for the Slack tests: the loopback emulator, settings pointing at it, a
frozen-but-movable clock (`frozen`, from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monitor.config import FeedbackConfig, Secrets, Settings, SlackConfig
from tests.slack.emulator import APP, TEAM, SlackEmulator

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-1234-5678-abcdefSECRET"
APP_TOKEN = "xapp-1-A123-99-socketSECRET"


@pytest.fixture
def emulator() -> Iterator[SlackEmulator]:
    emu = SlackEmulator().start()
    yield emu
    emu.stop()


def make_settings(
    emulator: SlackEmulator,
    *,
    mode: str = "socket",
    allowed_users: tuple[str, ...] = (),
    team_id: str | None = TEAM,
    app_id: str | None = APP,
    webhook: bool = False,
) -> Settings:
    """Settings with Slack enabled against the emulator."""
    secrets = {
        "slack_bot_token": BOT_TOKEN,
        "slack_app_token": APP_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
    }
    if webhook:
        secrets["slack_webhook_url"] = emulator.webhook_url
    return Settings(
        slack=SlackConfig(
            enabled=True,
            mode=mode,
            channel="C_ALERTS",
            api_url=emulator.api_url,
            allowed_users=allowed_users,
            team_id=team_id,
            app_id=app_id,
        ),
        feedback=FeedbackConfig(
            mute_days=7, false_alarm_count=2, false_alarm_window_days=14, threshold_factor=1.5
        ),
        secrets=Secrets(**secrets),
    )
