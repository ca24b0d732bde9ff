"""Windows missed while monitor was down: caught up, or reported as a gap and backfilled."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from monitor.baseline import build_baseline
from monitor.cycle import run_once
from monitor.daemon import CATCH_UP_WINDOWS, Daemon
from monitor.store import transaction
from monitor.store.tables import Alert, Outbox, Run
from monitor.windows import aligned_windows, gap_report, missed_windows, windows_tile
from tests.cli import run_cli
from tests.models import T0, WINDOW


@pytest.fixture
def daemon(engine, settings):
    build_baseline(settings, engine, "cancer", created_by="test")
    return Daemon(settings, engine)


def test_a_long_outage_is_caught_up_then_reported_as_a_gap_and_backfilled(
    daemon, engine, settings, send_traffic, frozen
):
    send_traffic(engine, settings, T0, seed=1)
    frozen.now = T0 + WINDOW + timedelta(minutes=5)
    daemon.cycle_job("cancer")  # the first window: no gap before a model's first run
    frozen.now = T0 + 11 * WINDOW + timedelta(minutes=5)  # down for 9 windows
    daemon.cycle_job("cancer")
    with transaction(engine) as session:
        starts = sorted(session.scalars(select(Run.window_start)))
        gap_alert = session.scalars(select(Alert).where(Alert.kind == "data_gap")).one()
        report = gap_report(session, settings.models[0], timedelta(days=90))
    # the first window, the 3 most recent missed ones, and the current one
    assert starts == [T0] + [T0 + i * WINDOW for i in range(10 - CATCH_UP_WINDOWS, 11)]
    assert gap_alert.details["missed_windows"] == 9 - CATCH_UP_WINDOWS
    assert gap_alert.details["start"] == (T0 + WINDOW).isoformat()
    assert report["missed_windows"] == 9 - CATCH_UP_WINDOWS
    assert report["ranges"] == [[(T0 + WINDOW).isoformat(), (T0 + 7 * WINDOW).isoformat()]]
    shown = status_text(settings)
    assert f"GAPS: {9 - CATCH_UP_WINDOWS} window(s) never computed" in shown
    assert f"monitor backfill cancer --start {(T0 + WINDOW).isoformat()}" in shown

    proc = run_cli(
        "backfill", "cancer", "--start", (T0 + WINDOW).isoformat(), "--end", (T0 + 7 * WINDOW).isoformat(),
        "--json", config=settings.source_path, check=True,
    )
    docs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [d["window"]["start"] for d in docs] == [(T0 + i * WINDOW).isoformat() for i in range(1, 7)]
    assert {d["status"] for d in docs} == {"insufficient_data"}
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 11
        assert gap_report(session, settings.models[0], timedelta(days=90)) is None
    assert "GAPS" not in status_text(settings)


def test_a_fresh_daemon_catches_up_windows_logged_before_its_first_run(
    daemon, engine, settings, send_traffic, frozen
):
    """Traffic logged for 6 windows, the daemon never ran (killed before its first
    tick): the windows since the first prediction are caught up or reported as a gap."""
    for i in range(6):
        send_traffic(engine, settings, T0 + i * WINDOW, n=20, seed=30 + i)  # n < min_rows: quick runs
    frozen.now = T0 + 6 * WINDOW + timedelta(minutes=5)
    daemon.cycle_job("cancer")
    with transaction(engine) as session:
        starts = sorted(session.scalars(select(Run.window_start)))
        gap_alert = session.scalars(select(Alert).where(Alert.kind == "data_gap")).one()
        report = gap_report(session, settings.models[0], timedelta(days=90))
    missed = 5 - CATCH_UP_WINDOWS  # 5 windows before the current one
    assert starts == [T0 + i * WINDOW for i in range(missed, 6)]
    assert gap_alert.details["missed_windows"] == missed
    assert gap_alert.details["start"] == T0.isoformat()
    assert report["ranges"] == [[T0.isoformat(), (T0 + missed * WINDOW).isoformat()]]
    assert f"GAPS: {missed} window(s) never computed" in status_text(settings)


def test_windows_before_the_first_run_are_gaps_within_the_horizon(
    engine, settings, send_traffic, frozen
):
    """A run computed by hand for the second window with traffic: the first window is a
    gap; a prediction older than the horizon starts no gap."""
    build_baseline(settings, engine, "cancer", created_by="test")
    send_traffic(engine, settings, T0 - timedelta(days=10), n=1, seed=40)
    send_traffic(engine, settings, T0, n=20, seed=41)
    send_traffic(engine, settings, T0 + WINDOW, n=20, seed=42)
    frozen.now = T0 + 2 * WINDOW + timedelta(minutes=5)
    run_once(settings, engine, "cancer", T0 + WINDOW, T0 + 2 * WINDOW, channels=[])
    model = settings.models[0]
    with transaction(engine) as session:
        within_a_day = gap_report(session, model, timedelta(days=1))
        within_90_days = gap_report(session, model, timedelta(days=90))
        missed = missed_windows(session, model, T0 + 2 * WINDOW, timedelta(days=90))
    assert within_a_day["ranges"] == [[T0.isoformat(), (T0 + WINDOW).isoformat()]]
    assert within_90_days["missed_windows"] == 10 * 24 + 1  # from the old prediction's window
    assert within_90_days["ranges"][0][0] == (T0 - timedelta(days=10)).isoformat()
    # the daemon's next tick catches up nothing (nothing after the latest run): the
    # earlier windows are reported, not alerted on every tick
    assert missed == []


def status_text(settings):
    """`monitor status` in this process, so it sees the frozen clock."""
    from click.testing import CliRunner

    from monitor.cli import cli

    result = CliRunner().invoke(cli, ["--config", str(settings.source_path), "status"])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_backfill_stores_alerts_silently_unless_notify(engine, settings, send_traffic):
    build_baseline(settings, engine, "cancer", created_by="test")
    send_traffic(engine, settings, T0, seed=2, shift=True)
    proc = run_cli(
        "backfill", "cancer", "--start", T0.isoformat(), "--end", (T0 + 2 * WINDOW).isoformat(),
        config=settings.source_path, check=True,
    )
    assert "2 window(s) of cancer: 0 failed" in proc.stdout and "not announced" in proc.stdout
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Alert)) > 0
        assert session.scalar(select(func.count()).select_from(Outbox)) == 0
    again = run_cli(
        "backfill", "cancer", "--start", T0.isoformat(), "--end", (T0 + 2 * WINDOW).isoformat(), "--force",
        "--notify", "--json", config=settings.source_path, check=True,
    )
    assert len(again.stdout.splitlines()) == 2
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Outbox)) > 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_backfill_into_the_future_stops_at_the_last_window_that_has_ended(engine, settings):
    import re
    from datetime import UTC, datetime

    from monitor.windows import last_complete_window

    build_baseline(settings, engine, "cancer", created_by="test")
    now = datetime.now(UTC)
    start = last_complete_window(WINDOW, now)[0] - WINDOW
    end = (now + 3 * WINDOW).isoformat()
    proc = run_cli("backfill", "cancer", "--start", start.isoformat(), "--end", end,
                   config=settings.source_path)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"\b[23] window\(s\) of cancer: 0 failed", proc.stdout), proc.stdout
    assert "is in the future" in proc.stderr
    with transaction(engine) as session:
        assert max(session.scalars(select(Run.window_end))).replace(tzinfo=UTC) <= datetime.now(UTC)


def test_backfill_rejects_a_range_without_a_whole_window(settings):
    proc = run_cli(
        "backfill", "cancer", "--start", T0.isoformat(), "--end", (T0 + WINDOW / 2).isoformat(),
        config=settings.source_path,
    )
    assert proc.returncode == 2 and "holds no complete" in proc.stderr


def test_window_arithmetic(settings):
    model = settings.models[0]
    assert windows_tile(model)  # interval:1h with 1h windows
    sparse = model.model_copy(update={"schedule": "0 2 * * *"})
    assert not windows_tile(sparse)  # daily runs of hourly windows: no gaps expected
    assert aligned_windows(T0 + timedelta(minutes=1), T0 + 3 * WINDOW, WINDOW) == [
        (T0 + WINDOW, T0 + 2 * WINDOW),
        (T0 + 2 * WINDOW, T0 + 3 * WINDOW),
    ]
