"""The daemon's scheduler and delivery thread without its HTTP server: a job that asks
for early delivery while the daemon stops, and early delivery itself."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from apscheduler.schedulers.base import STATE_STOPPED
from sqlalchemy import select

from monitor import clock
from monitor.daemon import Daemon
from monitor.store import transaction
from monitor.store.tables import Outbox
from tests.factories import make_alert
from tests.intake.helpers import model_config, settings

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no SQL in question


@pytest.fixture
def daemon(engine):
    daemon = Daemon(settings(model_config()), engine)
    yield daemon
    if daemon.scheduler.running:
        daemon.stop()


def test_stop_while_a_running_job_asks_for_delivery_does_not_deadlock(daemon):
    """The order that hung SIGTERM: shutdown(wait=True) holds the job-store lock while
    it waits for the running job, and that job then asks for an early delivery."""
    entered, asked = threading.Event(), threading.Event()

    def job() -> None:
        entered.set()
        while daemon.scheduler.state != STATE_STOPPED:
            time.sleep(0.01)
        time.sleep(0.3)  # shutdown now holds the job-store lock and waits for this job
        daemon.deliver_soon()
        asked.set()

    daemon.start_jobs()
    daemon.scheduler.add_job(job, id="asks", next_run_time=datetime.now(UTC))
    assert entered.wait(10)
    stopper = threading.Thread(target=daemon.stop, name="stopper", daemon=True)
    began = time.monotonic()
    stopper.start()
    stopper.join(20)
    assert not stopper.is_alive(), "stop() deadlocked with a job asking for delivery"
    assert asked.is_set() and time.monotonic() - began < 10
    assert not daemon._delivery.is_alive()


def test_deliver_soon_delivers_before_the_outbox_tick(daemon, engine, capsys):
    alert_id = make_alert(engine, channels=("console",), now=clock.utcnow())
    daemon.start_jobs()
    first_tick = daemon.scheduler.get_job("outbox").next_run_time
    assert (first_tick - datetime.now(UTC)).total_seconds() > 20  # every 30 s: not before
    daemon.deliver_soon()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with transaction(engine) as session:
            row = session.scalars(select(Outbox).where(Outbox.alert_id == alert_id)).one()
            if row.delivered_at is not None:
                break
        time.sleep(0.05)
    assert row.delivered_at is not None
    assert "drifted" in capsys.readouterr().out
