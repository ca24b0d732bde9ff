"""The dashboard in a real browser (Debian's chromium through Playwright): overview ->
model -> run -> alert -> feedback, the database checked, screenshots kept."""

from __future__ import annotations

import pytest

from monitor.server import BackgroundServer
from monitor.store import transaction
from monitor.store.dashboard import alert_feedback
from monitor.ui import create_ui_app
from tests.models import SHIFTED

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


def _ready(page) -> None:
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)


def test_click_through_and_give_feedback(engine, settings, filled, browser, shots):
    server = BackgroundServer(create_ui_app(settings, engine, host="127.0.0.1")).start()
    errors: list[str] = []
    try:
        page = browser.new_page(viewport={"width": 1366, "height": 900})  # a laptop
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(f"{server.url}/ui/")
        _ready(page)
        assert page.locator("span.pill.critical").count() == 1  # open alerts by severity
        assert all(f in page.content() for f in SHIFTED)  # drifted features of the last run
        page.screenshot(path=str(shots / "1-overview.png"), full_page=True)

        page.click("a[href='/ui/models/cancer']")
        _ready(page)
        heatmap = page.locator("#chart-drift .main-svg").first
        heatmap.wait_for()
        assert page.locator("#chart-drift").inner_text().count("mean_radius") >= 1
        assert page.locator("#chart-importance .scatterlayer .trace").count() == 5  # one line per feature
        assert page.locator("#chart-events .scatterlayer .point").count() >= len(filled.alert_ids)
        page.screenshot(path=str(shots / "2-model.png"), full_page=True)

        # click the last window's bar in the rows chart: its run opens
        bars = page.locator("#chart-volume .barlayer .point path")
        assert bars.count() == 3
        bars.nth(2).click(force=True)
        page.wait_for_url(f"**/ui/runs/{filled.again}")
        _ready(page)
        text = page.inner_text("main")
        assert "Drift" in text and "Data quality and quarantine" in text
        assert page.locator("img[alt='drift scores against thresholds']").count() == 1
        frame = page.frame_locator("iframe")
        frame.locator("body").wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        assert len(frame.locator("body").inner_text(timeout=60_000)) > 50  # Evidently drew something
        page.screenshot(path=str(shots / "3-run.png"), full_page=True)

        page.goto(f"{server.url}/ui/runs/{filled.shifted}")
        _ready(page)
        assert "missing_feature" in page.content() or "wrong_type" in page.content()

        alert_id = filled.alert_ids[0]
        page.goto(f"{server.url}/ui/alerts")
        _ready(page)
        page.click(f"a[href='/ui/alerts/{alert_id}']")
        _ready(page)
        assert "sign in with your name" in page.content()  # no action without a name
        page.click("p.warn a")
        page.fill("input[name='name']", "Ann Example")
        page.click("button[type='submit']")
        page.wait_for_url(f"**/ui/alerts/{alert_id}")
        page.fill("textarea[name='comment']", "seasonal, expected")
        page.click("button[value='false_alarm']")
        page.wait_for_url(f"**/ui/alerts/{alert_id}?done=false_alarm")
        _ready(page)
        assert "seasonal, expected" in page.inner_text("main")
        page.screenshot(path=str(shots / "4-alert.png"), full_page=True)
    finally:
        server.stop()
    with transaction(engine) as session:
        _, history = alert_feedback(session, alert_id)
        assert [(f.user_name, f.verdict, f.comment, f.source) for f in history] == [
            ("Ann Example", "false_alarm", "seasonal, expected", "ui")]
    assert not errors, errors


def test_why_what_if_and_counterfactual(engine, settings, filled, browser, shots):
    server = BackgroundServer(create_ui_app(settings, engine, host="127.0.0.1")).start()
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{server.url}/ui/why?model=cancer&request_id={filled.request_id}")
        _ready(page)
        page.locator("#chart-contributions .main-svg").first.wait_for()
        before = page.inner_text("main")
        assert "output" in before and "mean_radius" in before
        page.fill("input[name='set.mean_radius']", "28")
        with page.expect_navigation(timeout=120_000):  # loads the model, integrated gradients
            page.click("button:text-is('recompute')")
        _ready(page)
        after = page.inner_text("main")
        assert "what-if: mean_radius" in after and "→ 28" in after
        page.screenshot(path=str(shots / "5-why.png"), full_page=True)
    finally:
        server.stop()
