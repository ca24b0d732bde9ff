"""Fixtures for the Slack tests: the loopback emulator, settings pointing at it, a
frozen-but-movable clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from monitor import clock
from monitor.config import FeedbackConfig, Secrets, Settings, SlackConfig
from tests.slack.emulator import APP, TEAM, SlackEmulator
from tests.slack.helpers import T0

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-1234-5678-abcdefSECRET"
APP_TOKEN = "xapp-1-A123-99-socketSECRET"


@pytest.fixture
def emulator() -> Iterator[SlackEmulator]:
    emu = SlackEmulator().start()
    yield emu
    emu.stop()


class MovableClock:
    """monitor.clock.utcnow replaced by a clock the test moves."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.now += timedelta(**delta)


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> MovableClock:
    fake = MovableClock(T0)
    monkeypatch.setattr(clock, "utcnow", fake)
    return fake


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
