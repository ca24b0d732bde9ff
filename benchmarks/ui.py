"""Dashboard model page over a year of hourly runs: server time and page-ready time.

A model with 8,760 hourly windows and 30 features (runs, per-feature drift verdicts,
prediction drift, two performance metrics, attribution importances: ~600k result rows,
inserted in bulk through `monitor.store.dashboard.add_history`) plus 60 alerts with
feedback, in a SQLite file and in a fresh PostgreSQL database. For each backend:

- server time: GET /ui/models/bench (the default 30-day range) over HTTP against the
  dashboard served by uvicorn in this process, median of the repeats; the same page's
  store queries alone are timed in the same loop (interleaved) as the reference floor;
- page ready: Debian's chromium (Playwright) opens the page and waits until every chart
  is drawn (`body[data-ready]`), median of the repeats (plotly.js cached after the first);
- the 365-day range is timed too and printed (no target).

Targets: server median <= 1 s, page ready median <= 2 s. Exit 1 on a miss.

    python benchmarks/ui.py [--repeats 9] [--backend sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor import clock  # noqa: E402
from monitor.config import settings_from_dict  # noqa: E402
from monitor.server import BackgroundServer  # noqa: E402
from monitor.store import dashboard as dash  # noqa: E402
from monitor.store import make_engine, transaction, upgrade  # noqa: E402
from monitor.store.tables import Alert, Feedback  # noqa: E402
from monitor.ui import create_ui_app  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
FEATURES = [f"f{i:02d}" for i in range(30)]
WINDOWS = 8760
TARGET_SERVER_S = 1.0
TARGET_READY_S = 2.0
#: the 365-day page has no target: timed a few times only
YEAR_REPEATS = 3
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def settings_for(url: str):
    model = {"name": "bench", "path": "model.keras", "task": "binary_classification",
             "features": {"numeric": FEATURES}}
    return settings_from_dict({"database": {"url": url}, "models": [model]}, env={})


def fill(engine, now: datetime) -> None:
    """A year of hourly history for model "bench" (ids chosen here, inserted in bulk)."""
    rng = np.random.default_rng(0)
    first = now - timedelta(hours=WINDOWS)
    runs, scores, importance = [], [], []
    for i in range(WINDOWS):
        start = first + timedelta(hours=i)
        end = start + timedelta(hours=1)
        rid = i + 1
        runs.append({"id": rid, "model": "bench", "window_start": start, "window_end": end,
                     "status": "succeeded", "started_at": end, "finished_at": end,
                     "rows": int(rng.integers(800, 1200)), "sampled": 500,
                     "quarantined": int(rng.integers(0, 20)), "summary": None})
        p = rng.uniform(0, 1, len(FEATURES)) ** 3
        for name, value in zip(FEATURES, p, strict=True):
            scores.append({"run_id": rid, "scope": "feature", "feature": name, "method": "ks",
                           "score": float(value), "threshold": 0.01, "drifted": bool(value < 0.01)})
        scores.append({"run_id": rid, "scope": "prediction", "feature": None, "method": "psi",
                       "score": float(rng.uniform(0, 0.2)), "threshold": 0.1, "drifted": False})
        for metric in ("accuracy", "roc_auc"):
            scores.append({"run_id": rid, "scope": "performance", "feature": metric, "method": metric,
                           "score": float(rng.uniform(0.8, 0.95)), "threshold": 0.9, "drifted": False})
        weights = rng.dirichlet(np.ones(len(FEATURES)))
        importance.extend({"run_id": rid, "feature": name, "method": "integrated_gradients",
                           "baseline_importance": 1 / len(FEATURES), "current_importance": float(w),
                           "relative_change": None, "distance": None}
                          for name, w in zip(FEATURES, weights, strict=True))
    with transaction(engine) as session:
        dash.add_history(session, runs, scores, importance)
        for k in range(60):
            at = first + timedelta(hours=int(rng.integers(0, WINDOWS)))
            alert = Alert(model="bench", kind="feature_drift", feature=FEATURES[k % 30],
                          dedup_key=f"bench|feature_drift|{k}", severity="warning",
                          status="resolved" if k < 50 else "open", title=f"{FEATURES[k % 30]} drifted",
                          details={}, opened_at=at, last_fired_at=at + timedelta(hours=2))
            session.add(alert)
            session.flush()
            session.add(Feedback(alert_id=alert.id, user_id="ui:bench", user_name="bench",
                                 verdict="acknowledge", source="ui", created_at=at + timedelta(hours=1)))


def get(port: int, path: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    began = time.perf_counter()
    conn.request("GET", path)
    answer = conn.getresponse()
    body = answer.read()
    took = time.perf_counter() - began
    conn.close()
    if answer.status != 200:
        raise SystemExit(f"GET {path}: {answer.status} {body[:300]!r}")
    return took


def queries(engine, now: datetime, days: int) -> float:
    since = now - timedelta(days=days)
    began = time.perf_counter()
    with transaction(engine) as session:
        dash.runs_between(session, "bench", since, now)
        dash.scores_between(session, "bench", since, now)
        dash.importance_between(session, "bench", since, now)
        dash.alerts_between(session, "bench", since, now)
        dash.feedback_between(session, "bench", since, now)
    return time.perf_counter() - began


def measure(url: str, repeats: int, browser) -> dict[str, float]:
    engine = make_engine(url)
    upgrade(engine)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    began = time.perf_counter()
    fill(engine, now)
    print(f"  filled {WINDOWS} runs x {len(FEATURES)} features in {time.perf_counter() - began:.1f} s")
    settings = settings_for(url)
    server = BackgroundServer(create_ui_app(settings, engine, host="127.0.0.1")).start()
    out: dict[str, float] = {}
    try:
        get(server.port, "/ui/models/bench")  # warm-up (connection pool, imports)
        page, floor, year = [], [], []
        for i in range(repeats):
            page.append(get(server.port, "/ui/models/bench"))
            floor.append(queries(engine, now, 30))
            if i < YEAR_REPEATS:
                year.append(get(server.port, "/ui/models/bench?days=365"))
        out["server"] = statistics.median(page)
        out["queries"] = statistics.median(floor)
        out["server_365"] = statistics.median(year)
        tab = browser.new_page(viewport={"width": 1366, "height": 900})
        ready, drawing = [], []
        for i in range(repeats + 1):
            began = time.perf_counter()
            tab.goto(f"{server.url}/ui/models/bench")
            tab.wait_for_selector("body[data-ready='1']", timeout=60_000)
            took = time.perf_counter() - began
            # time from the HTML received to every chart drawn (the browser's own share)
            draw = tab.evaluate("performance.now() - performance.timing.responseEnd"
                                " + performance.timing.navigationStart") / 1000
            if i == 1:
                print(f"  ms per chart in the browser: {tab.evaluate('window.monitorDrawMs')}")
            if i == 0:
                out["ready_cold"] = took
            else:
                ready.append(took)
                drawing.append(draw)
        out["ready"] = statistics.median(ready)
        out["drawing"] = statistics.median(drawing)
        tab.close()
    finally:
        server.stop()
        engine.dispose()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    # the page's range ends at the clock's now: the real one here
    assert clock.utcnow().tzinfo is not None
    print(f"targets: model page (30 days of {WINDOWS} hourly windows, {len(FEATURES)} features): "
          f"server median <= {TARGET_SERVER_S:g} s, page ready in chromium median <= {TARGET_READY_S:g} s")
    results: dict[str, dict[str, float]] = {}
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            if args.backend in ("sqlite", "both"):
                print("sqlite:")
                results["sqlite"] = measure(f"sqlite:///{tmp}/ui.db", args.repeats, browser)
            if args.backend in ("postgresql", "both"):
                admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
                name = f"monitor_bench_ui_{uuid.uuid4().hex[:8]}"
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                try:
                    print("postgresql:")
                    results["postgresql"] = measure(
                        admin.url.set(database=name).render_as_string(hide_password=False),
                        args.repeats, browser)
                finally:
                    with admin.connect() as conn:
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    admin.dispose()
        finally:
            browser.close()
    missed = False
    for backend, r in results.items():
        ok_server = r["server"] <= TARGET_SERVER_S
        ok_ready = r["ready"] <= TARGET_READY_S
        missed |= not (ok_server and ok_ready)
        print(f"{backend:>10}: server {r['server'] * 1000:.0f} ms (store queries alone "
              f"{r['queries'] * 1000:.0f} ms) {'ok' if ok_server else 'MISSED'} · page ready "
              f"{r['ready'] * 1000:.0f} ms (of which drawing {r['drawing'] * 1000:.0f} ms; first load "
              f"{r['ready_cold'] * 1000:.0f} ms) "
              f"{'ok' if ok_ready else 'MISSED'} · 365-day range server {r['server_365'] * 1000:.0f} ms "
              f"(no target)")
    print(f"medians of {args.repeats} repeats")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
