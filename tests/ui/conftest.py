"""Dashboard fixtures: a database filled by real runs of the small Keras model, the UI
served on a free port, and Debian's chromium driven through Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from tests.models import T0, WINDOW

CHROMIUM = os.environ.get("MONITOR_TEST_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@dataclass(frozen=True)
class Filled:
    """Run ids of the filled database: one clean window, then two shifted ones."""

    clean: int
    shifted: int
    again: int
    alert_ids: tuple[int, ...]
    request_id: str


@pytest.fixture
def filled(engine, settings, send_traffic, frozen) -> Filled:
    """Baseline + three windows of traffic (the last two shifted) + three real runs."""
    from monitor.baseline import build_baseline
    from monitor.cycle import run_once

    build_baseline(settings, engine, "cancer", created_by="test")
    ids = send_traffic(engine, settings, T0, seed=1)
    send_traffic(engine, settings, T0 + WINDOW, seed=2, shift=True, bad=4)
    send_traffic(engine, settings, T0 + 2 * WINDOW, seed=3, shift=True)
    frozen.now = T0 + WINDOW + timedelta(minutes=5)  # each run just after its window
    clean = run_once(settings, engine, "cancer", T0, T0 + WINDOW, channels=["console"])
    frozen.advance(hours=1)
    shifted = run_once(settings, engine, "cancer", T0 + WINDOW, T0 + 2 * WINDOW, channels=["console"])
    frozen.advance(hours=1)
    again = run_once(settings, engine, "cancer", T0 + 2 * WINDOW, T0 + 3 * WINDOW, channels=["console"])
    frozen.advance(minutes=30)
    alerts = tuple(sorted({a["id"] for r in (clean, shifted, again) for a in r.summary["alerts"]}))
    return Filled(clean.run_id, shifted.run_id, again.run_id, alerts, ids[0])


@pytest.fixture
def browser() -> Iterator[object]:
    """Debian's chromium through Playwright (never a downloaded browser)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("the playwright package is not installed (pip install -e '.[dev]')")
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        _no_browser(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _no_browser(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"browser tests need chromium in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def shots(tmp_path_factory) -> Path:
    """Where the browser tests keep their screenshots (printed, so they can be looked at)."""
    path = tmp_path_factory.mktemp("ui-screenshots")
    print(f"screenshots in {path}")
    return path


@pytest.fixture
def alert_row(engine) -> int:
    """One open alert (no run needed) for the auth tests."""
    from monitor.store import transaction
    from monitor.store.tables import Alert

    with transaction(engine) as session:
        alert = Alert(model="cancer", kind="feature_drift", feature="mean_radius",
                      dedup_key="cancer|feature_drift|mean_radius", severity="warning", status="open",
                      title="mean_radius drifted", details={}, opened_at=T0, last_fired_at=T0)
        session.add(alert)
        session.flush()
        return alert.id
