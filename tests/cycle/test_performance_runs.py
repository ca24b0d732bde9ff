"""Estimated performance in every run, labels that arrive later revising past windows,
corrected labels audited: the real cancer model on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest

from monitor.baseline import build_baseline
from monitor.cycle import Runtime, run_once
from monitor.intake.ingest import ingest_labels, ingest_predictions, parse_body
from tests.models import FEATURES, T0, WINDOW


def once(*args, **kwargs):
    return run_once(*args, channels=["console"], **kwargs)


@pytest.fixture
def baselined(engine, settings):
    return build_baseline(settings, engine, "cancer", created_by="test")


@pytest.fixture(scope="module")
def scored(model_dir, cancer):
    """The held-out rows with the real model's P(malignant)."""
    from monitor.model import load_model

    _, held_out = cancer
    frame = held_out.copy()
    frame["score"] = np.asarray(load_model(model_dir / "model.keras").predict_frame(frame[FEATURES])).reshape(-1)
    return frame


def send_scored(engine, settings, rows, start, *, tag: str, labels: bool) -> list[tuple[str, int]]:
    """Log `rows` with the model's own scores in [start, start + 1h); returns (id, label)."""
    rng = np.random.default_rng(abs(hash(tag)) % 2**32)
    records, truth = [], []
    for i, row in rows.reset_index(drop=True).iterrows():
        rid = f"{tag}-{i}"
        ts = start + timedelta(seconds=float(rng.uniform(0, 3599)))
        record = {"model": "cancer", "request_id": rid, "timestamp": ts.isoformat(),
                  "features": {f: float(row[f]) for f in FEATURES}, "prediction": float(row["score"])}
        if labels:
            record["label"] = int(row["malignant"])
        records.append(record)
        truth.append((rid, int(row["malignant"])))
    ingest_predictions(engine, settings.models, parse_body(json.dumps(records).encode()), source="test")
    return truth


def post_labels(engine, settings, truth) -> None:
    body = json.dumps([{"model": "cancer", "request_id": r, "label": y} for r, y in truth]).encode()
    ingest_labels(engine, settings.models, parse_body(body), source="test")


def test_window_without_labels_gets_an_estimate_and_no_realized_metric(
    engine, settings, baselined, scored
):
    send_scored(engine, settings, scored.sample(200, replace=True, random_state=1), T0, tag="a", labels=False)
    doc = once(settings, engine, "cancer", T0, T0 + WINDOW).summary
    perf = doc["performance"]
    assert perf["realized"] is None and perf["calibration"] is None
    assert perf["labelled_rows"] == 0 and perf["revision"] == 0
    estimated = perf["estimated"]
    assert estimated["method"] == "cbpe" and estimated["assumption"] == "no concept drift"
    accuracy = estimated["metrics"]["accuracy"]
    assert accuracy["lower"] <= accuracy["value"] <= accuracy["upper"]
    assert 0.6 < accuracy["value"] <= 1.0 and accuracy["baseline"] is not None
    assert not [a for a in doc["alerts"] if a["kind"] == "performance_drop"]


def test_labelled_window_reports_calibration_and_realized_with_intervals(engine, settings, baselined, scored):
    send_scored(engine, settings, scored.sample(200, replace=True, random_state=2), T0, tag="b", labels=True)
    perf = once(settings, engine, "cancer", T0, T0 + WINDOW).summary["performance"]
    assert perf["labelled_rows"] == 200
    assert perf["realized"]["accuracy"]["ci"] is not None
    calibration = perf["calibration"]
    assert {"ece", "brier", "false_positive_rate", "false_negative_rate", "precision", "recall"} <= set(calibration["metrics"])
    assert calibration["decision_threshold"] == 0.5 and calibration["reliability"]
    # the estimate and what the labels say agree within the estimate's band
    est = perf["estimated"]["metrics"]["accuracy"]
    assert est["lower"] <= perf["realized"]["accuracy"]["current"] <= est["upper"]


def test_clean_windows_raise_no_estimated_performance_drop(engine, settings, baselined, scored):
    runtime = Runtime()
    drops = []
    for k in range(6):
        start = T0 + k * WINDOW
        send_scored(engine, settings, scored.sample(200, replace=True, random_state=10 + k), start,
                    tag=f"c{k}", labels=False)
        doc = once(settings, engine, "cancer", start, start + WINDOW, runtime=runtime).summary
        assert doc["performance"]["estimated"] is not None
        drops += [a for a in doc["alerts"] if a["kind"] == "performance_drop"]
    assert drops == []


def test_shifted_window_estimate_moves_with_the_realized_metric(engine, settings, baselined, scored):
    """Covariate shift without concept drift: more rows where the model is unsure."""
    runtime = Runtime()
    clean = scored.sample(200, replace=True, random_state=3)
    unsure = scored[(scored["score"] > 0.15) & (scored["score"] < 0.85)]
    assert len(unsure) >= 10
    shifted = unsure.sample(200, replace=True, random_state=4)
    send_scored(engine, settings, clean, T0, tag="d", labels=True)
    send_scored(engine, settings, shifted, T0 + WINDOW, tag="e", labels=True)
    before = once(settings, engine, "cancer", T0, T0 + WINDOW, runtime=runtime).summary["performance"]
    after = once(settings, engine, "cancer", T0 + WINDOW, T0 + 2 * WINDOW, runtime=runtime).summary
    perf = after["performance"]
    for metric in ("accuracy", "roc_auc"):
        realized_change = perf["realized"][metric]["current"] - before["realized"][metric]["current"]
        estimated_change = (perf["estimated"]["metrics"][metric]["value"]
                            - before["estimated"]["metrics"][metric]["value"])
        assert realized_change < 0 and estimated_change < 0, (metric, realized_change, estimated_change)
