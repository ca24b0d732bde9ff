"""`monitor report`: the run's own alerts, its quarantined rows, and a quiet console."""

from __future__ import annotations

import html
import warnings

import pytest

from monitor.baseline import build_baseline
from monitor.cycle import run_once
from monitor.report import build_report
from tests.models import T0, WINDOW


@pytest.fixture
def two_runs(engine, settings, send_traffic):
    build_baseline(settings, engine, "cancer", created_by="test")
    send_traffic(engine, settings, T0, seed=1)
    send_traffic(engine, settings, T0 + WINDOW, seed=2, shift=True, bad=4)
    clean = run_once(settings, engine, "cancer", T0, T0 + WINDOW, channels=["console"])
    shifted = run_once(settings, engine, "cancer", T0 + WINDOW, T0 + 2 * WINDOW, channels=["console"])
    return clean, shifted


def test_report_lists_only_the_runs_alerts_and_its_quarantine(engine, settings, two_runs):
    clean, shifted = two_runs
    first = {a["id"] for a in clean.summary["alerts"]}
    opened_later = {a["id"] for a in shifted.summary["alerts"]} - first
    assert opened_later

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        later = build_report(settings, engine, shifted.run_id)
        earlier = build_report(settings, engine, clean.run_id)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], \
        [str(w.message) for w in caught]

    for alert_id in opened_later:
        assert f"<tr><td>{alert_id}</td>" in later
        assert f"<tr><td>{alert_id}</td>" not in earlier  # the first run's report shows its own only
    for alert_id in first:
        assert f"<tr><td>{alert_id}</td>" in earlier

    assert "<h2>Data quality and quarantine</h2>" in later
    assert "<td>missing_feature</td><td>4</td>" in later or "<td>wrong_type</td><td>4</td>" in later
    assert "bad-0" in later  # a sample raw row is shown
    assert "no row was quarantined" in earlier

    # Evidently's page is in an opaque-origin frame; the file runs no script but its own, by hash
    assert "<iframe sandbox='allow-scripts' " in later and "allow-same-origin" not in later
    meta = later.split("http-equiv='Content-Security-Policy' content=\"", 1)[1].split('"', 1)[0]
    policy = html.unescape(meta)
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert policy.count("'sha256-") >= 4 and "default-src 'none'" in policy


def test_report_masks_and_cuts_raw_rows(engine, settings, two_runs):
    from monitor.store import transaction
    from monitor.store.tables import Quarantine

    _, shifted = two_runs
    with transaction(engine) as session:
        raw = '{"auth": "Bearer s3cr3t-token", "pad": "' + "z" * 2000 + '"}'
        session.add(Quarantine(model="cancer", ts=T0 + WINDOW, source="http", reason="bad_json",
                               detail="x", raw=raw))
    page = build_report(settings, engine, shifted.run_id, evidently=False)
    assert "s3cr3t-token" not in page and "Bearer ***" in page
    assert "z" * 400 not in page and "(2" in page  # cut, with the full length said


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_constant_feature_gives_no_runtime_warning(engine, settings, cancer):
    """Evidently's report divides by a zero variance on a constant column (numpy warns)."""
    import json

    from monitor.intake.ingest import ingest_predictions, parse_body
    from tests.models import FEATURES

    build_baseline(settings, engine, "cancer", created_by="test")
    _, held_out = cancer
    records = [{"model": "cancer", "request_id": f"c{i}", "timestamp": (T0 + i * WINDOW / 100).isoformat(),
                "features": {f: 0.125 if f == "mean_smoothness" else float(row[f]) for f in FEATURES},
                "prediction": 0.5}
               for i, row in held_out.head(80).reset_index(drop=True).iterrows()]
    ingest_predictions(engine, settings.models, parse_body(json.dumps(records).encode()), source="test")
    run = run_once(settings, engine, "cancer", T0, T0 + WINDOW, channels=["console"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        page = build_report(settings, engine, run.run_id)
    assert "Evidently drift report" in page and "constant in the window" in page
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], \
        [str(w.message) for w in caught]
