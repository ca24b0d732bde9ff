"""The commands an operator (or an outside script) runs, as processes: baseline,
ingest, once --json twice, why, report, alerts."""

from __future__ import annotations

import json

import pytest

from monitor.windows import last_complete_window
from tests.cli import run_cli
from tests.models import FEATURES, SHIFTED, T0, WINDOW


def monitor(settings, *args, check=True):
    return run_cli(*args, config=settings.source_path, check=check)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_operator_workflow(settings, cancer, tmp_path):
    _, held_out = cancer
    rows = held_out.head(150)
    lines = [
        json.dumps({"request_id": f"r{i}", "timestamp": (T0 + i * WINDOW / 200).isoformat(),
                    "features": {f: float(row[f]) * (1.5 if f in SHIFTED else 1.0) for f in FEATURES},
                    "prediction": 0.5})
        for i, row in rows.iterrows()
    ]
    lines += [json.dumps({"request_id": f"broken-{i}", "timestamp": T0.isoformat(),
                          "features": {"mean_radius": None}, "prediction": 0.5}) for i in range(12)]
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text("\n".join(lines) + "\n")

    out = monitor(settings, "baseline", "cancer").stdout
    assert "baseline v1 of cancer is active" in out
    ingested = monitor(settings, "ingest", "cancer", str(traffic), "--no-progress")
    assert "150" in ingested.stdout + ingested.stderr

    window = ["--start", T0.isoformat(), "--end", (T0 + WINDOW).isoformat()]
    first = monitor(settings, "once", "cancer", "--json", *window)
    document = json.loads(first.stdout)  # exactly one JSON document on stdout
    assert {"run_id", "model", "window", "rows", "sampled", "quarantined", "drift", "prediction_drift",
            "attribution", "performance", "alerts"} <= set(document)
    # 12 malformed rows (absent feature keys) of 162: more than a working sender's 0.1%
    assert document["rows"] == 150 and document["quarantined"] == 12
    drifted = {n for n, f in document["drift"]["features"].items() if f["drifted"]}
    assert set(SHIFTED) <= drifted
    assert {"method", "score", "threshold", "drifted"} <= set(document["drift"]["features"]["mean_radius"])
    second = json.loads(monitor(settings, "once", "cancer", "--json", *window).stdout)
    assert second["run_id"] == document["run_id"]

    request_id = next(iter(_explained(settings, document["run_id"])))
    why = monitor(settings, "why", "cancer", request_id).stdout
    assert f"cancer request {request_id}" in why and "contribution" in why
    report = tmp_path / "report.html"
    monitor(settings, "report", str(document["run_id"]), "--out", str(report), "--no-evidently")
    assert "mean_radius" in report.read_text()
    listed = json.loads(monitor(settings, "alerts", "--json").stdout)
    assert {a["kind"] for a in listed} >= {"feature_drift", "data_quality"}
    table = monitor(settings, "alerts").stdout.splitlines()
    assert table[0].split()[:7] == ["id", "status", "severity", "model", "kind", "fired", "last"]
    assert table[-1].startswith("fired = how many runs raised the alert")
    assert len(table) == len(listed) + 2
    unknown = monitor(settings, "alerts", "--model", "nope", check=False)
    assert unknown.returncode == 2 and "no model named 'nope' (configured: cancer)" in unknown.stderr
    missing = monitor(settings, "why", "cancer", "no-such-request", check=False)
    assert missing.returncode == 4 and "neither among the explained samples" in missing.stderr


def _explained(settings, run_id):
    from monitor.store import make_engine, transaction
    from monitor.store.runs import explained_requests

    engine = make_engine(settings.database.url)
    with transaction(engine) as session:
        ids = explained_requests(session, run_id, limit=3)
    engine.dispose()
    return ids


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_once_refuses_the_current_window_as_a_usage_error(settings, engine):
    from monitor.baseline import build_baseline

    build_baseline(settings, engine, "cancer", created_by="test")
    _, start = last_complete_window(WINDOW)  # the window under way
    end = start + WINDOW
    proc = monitor(settings, "once", "cancer", "--start", start.isoformat(), "--end", end.isoformat(),
                   "--json", check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"of cancer has not ended: it closes at {end.isoformat()}" in proc.stderr
    status = json.loads(monitor(settings, "status", "--json").stdout)
    assert status[0]["last_run"] is None  # nothing stored
