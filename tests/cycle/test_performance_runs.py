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
    net = load_model(model_dir / "model.keras")
    frame["score"] = np.asarray(net.predict_frame(frame[FEATURES])).reshape(-1)
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
    wanted = {"ece", "brier", "false_positive_rate", "false_negative_rate", "precision", "recall"}
    assert wanted <= set(calibration["metrics"])
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
    _assert_both_fell(before, after["performance"])


def test_labels_posted_later_give_the_window_a_realized_metric_in_a_new_revision(
    engine, settings, baselined, scored
):
    from monitor.revise import refresh_labels

    truth = send_scored(engine, settings, scored.sample(200, replace=True, random_state=5), T0,
                        tag="f", labels=False)
    first = once(settings, engine, "cancer", T0, T0 + WINDOW)
    assert first.summary["performance"]["realized"] is None
    assert refresh_labels(settings, engine, "cancer", channels=["console"]) == []  # nothing new

    post_labels(engine, settings, truth[:150])
    (revised,) = refresh_labels(settings, engine, "cancer", channels=["console"])
    assert (revised.run_id, revised.revision, revised.labelled_rows) == (first.run_id, 1, 150)
    assert revised.coverage == pytest.approx(0.75)
    stored = once(settings, engine, "cancer", T0, T0 + WINDOW)
    assert stored.reused and stored.run_id == first.run_id
    perf = stored.summary["performance"]
    assert perf["revision"] == 1 and perf["labelled_rows"] == 150
    assert perf["realized"]["accuracy"]["ci"] is not None and perf["calibration"]["metrics"]["ece"] >= 0
    assert perf["estimated"] == first.summary["performance"]["estimated"]  # the estimate is kept
    assert refresh_labels(settings, engine, "cancer", channels=["console"]) == []

    post_labels(engine, settings, truth[150:])
    (again,) = refresh_labels(settings, engine, "cancer", channels=["console"])
    assert (again.revision, again.labelled_rows) == (2, 200)


def test_revision_raises_a_realized_performance_drop(engine, settings, baselined, scored):
    from monitor.revise import refresh_labels
    from monitor.store import transaction
    from monitor.store.tables import Alert

    unsure = scored[(scored["score"] > 0.15) & (scored["score"] < 0.85)]
    wrong = unsure[(unsure["score"] >= 0.5) != (unsure["malignant"] == 1)]
    rows = wrong.sample(120, replace=True, random_state=6)
    truth = send_scored(engine, settings, rows, T0, tag="g", labels=False)
    once(settings, engine, "cancer", T0, T0 + WINDOW)
    post_labels(engine, settings, truth)
    (revised,) = refresh_labels(settings, engine, "cancer", channels=["console"])
    assert revised.realized["accuracy"]["degraded"] is True
    with transaction(engine) as session:
        (alert,) = session.query(Alert).filter(Alert.kind == "performance_drop").all()
        assert alert.details["basis"] == "realized"
        assert alert.status != "resolved"


def test_a_corrected_label_replaces_the_old_one_and_is_audited(engine, settings, baselined, scored):
    from monitor.intake.ingest import ingest_labels
    from monitor.revise import refresh_labels
    from monitor.store import transaction
    from monitor.store.tables import Label, LabelAudit

    truth = send_scored(engine, settings, scored.sample(60, replace=True, random_state=7), T0,
                        tag="h", labels=True)
    once(settings, engine, "cancer", T0, T0 + WINDOW)
    rid, label = truth[0]

    def send(value):
        body = json.dumps([{"model": "cancer", "request_id": rid, "label": value}]).encode()
        return ingest_labels(engine, settings.models, parse_body(body), source="test")

    assert send(label).as_json() == {"accepted": 0, "quarantined": 0, "reasons": {"duplicate": 1}}
    assert send(1 - label).as_json() == {"accepted": 1, "quarantined": 0, "reasons": {}}
    with transaction(engine) as session:
        assert session.query(Label).filter(Label.request_id == rid).one().label == 1 - label
        (audit,) = session.query(LabelAudit).all()
        assert (audit.request_id, audit.old_label, audit.new_label) == (rid, label, 1 - label)
    (revised,) = refresh_labels(settings, engine, "cancer", channels=["console"])
    assert revised.revision == 1 and revised.labelled_rows == 60  # same count, corrected value


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_labels_refresh_and_performance_commands(engine, settings, baselined, scored):
    from tests.cli import run_cli

    truth = send_scored(engine, settings, scored.sample(100, replace=True, random_state=8), T0,
                        tag="i", labels=False)
    send_scored(engine, settings, scored.sample(100, replace=True, random_state=9), T0 + WINDOW,
                tag="j", labels=True)
    once(settings, engine, "cancer", T0, T0 + WINDOW)
    once(settings, engine, "cancer", T0 + WINDOW, T0 + 2 * WINDOW)
    post_labels(engine, settings, truth)
    out = run_cli("labels", "refresh", "cancer", "--json", config=settings.source_path, check=True).stdout
    (doc,) = [json.loads(line) for line in out.splitlines()]
    assert doc["revision"] == 1 and doc["labelled_rows"] == 100 and doc["realized"]["accuracy"]
    out = run_cli("performance", "cancer", "--json", config=settings.source_path, check=True).stdout
    windows = [json.loads(line) for line in out.splitlines()]
    assert [w["window"]["start"] for w in windows] == [T0.isoformat(), (T0 + WINDOW).isoformat()]
    assert [w["revision"] for w in windows] == [1, 0]
    assert all(w["realized"]["accuracy"]["current"] > 0.5 for w in windows)
    assert all(w["estimated"]["metrics"]["accuracy"]["value"] > 0.5 for w in windows)
    assert windows[0]["coverage"] == 1.0
    table = run_cli("performance", "cancer", config=settings.source_path, check=True).stdout
    assert "assuming no concept drift" in table and "accuracy" in table
    unknown = run_cli("labels", "refresh", "nope", config=settings.source_path)
    assert unknown.returncode != 0 and "no model named 'nope'" in unknown.stderr


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_estimated_false_alarm_rate_on_clean_windows(engine, settings, baselined, scored, capsys):
    """200 clean windows of 200 rows (held-out rows, the model's own scores, no labels),
    through the run's own path (the runtime's estimator, `estimate_window`): the rate of
    estimated performance_drop, printed, must stay below 1%."""
    from monitor.performance import estimate_window, label_scale
    from monitor.store import transaction
    from monitor.store.baselines import active_baseline

    model = settings.model("cancer")
    with transaction(engine) as session:
        reference = active_baseline(session, "cancer")
    estimator = Runtime().estimator(model, reference)
    windows, drops, misses = 200, 0, 0
    for k in range(windows):
        rows = scored.sample(200, replace=True, random_state=1000 + k)
        judged = estimate_window(model, estimator, rows[FEATURES], rows["score"].to_numpy(),
                                 label_scale(reference.labels))
        drops += bool(judged.degraded)
        acc = judged.estimate.metrics["accuracy"]
        realized = float(((rows["score"] >= 0.5) == (rows["malignant"] == 1)).mean())
        misses += not acc.lower <= realized <= acc.upper
    with capsys.disabled():
        print(f"\nclean windows: {drops}/{windows} estimated performance_drop "
              f"({drops / windows:.1%}); realized accuracy outside the band in {misses}/{windows}")
    assert drops / windows < 0.01


def test_daemon_label_refresh_job_revises_and_the_report_shows_it(engine, settings, baselined, scored):
    from monitor.daemon import Daemon
    from monitor.report import build_report

    truth = send_scored(engine, settings, scored.sample(100, replace=True, random_state=11), T0,
                        tag="k", labels=False)
    run_id = once(settings, engine, "cancer", T0, T0 + WINDOW).run_id
    daemon = Daemon(settings, engine)
    daemon.schedule()
    job = daemon.scheduler.get_job("label_refresh")
    assert job.trigger.interval == settings.scheduler.label_refresh == timedelta(minutes=15)
    post_labels(engine, settings, truth)
    daemon.label_refresh_job()
    stored = once(settings, engine, "cancer", T0, T0 + WINDOW).summary["performance"]
    assert stored["revision"] == 1 and stored["realized"]["accuracy"]["current"] > 0.5
    html = build_report(settings, engine, run_id, evidently=False)
    assert "revision 1" in html and "assuming no concept drift" in html and "score bin" in html


def test_fixture_shift_moves_estimate_and_realized_the_same_way(engine, settings, baselined, send_traffic):
    """The shared traffic fixture's shift (inputs moved, scores pushed towards 0.5)."""
    runtime = Runtime()
    send_traffic(engine, settings, T0, seed=1)
    send_traffic(engine, settings, T0 + WINDOW, seed=2, shift=True)
    before = once(settings, engine, "cancer", T0, T0 + WINDOW, runtime=runtime).summary["performance"]
    after = once(settings, engine, "cancer", T0 + WINDOW, T0 + 2 * WINDOW, runtime=runtime).summary
    _assert_both_fell(before, after["performance"])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_previous_window_mode_estimates_from_the_stored_baseline(
    engine, db_url, model_dir, write_config, scored
):
    from monitor.config import load_settings
    from tests.models import CONFIG

    body = CONFIG.format(url=db_url, model_dir=model_dir, features=str(FEATURES).replace("'", '"'))
    body = body.replace("max_rows = 400", 'max_rows = 400\nmode = "previous_window"')
    settings = load_settings(write_config(body), env={})
    build_baseline(settings, engine, "cancer", created_by="test")
    runtime = Runtime()
    for k in range(2):
        send_scored(engine, settings, scored.sample(200, replace=True, random_state=20 + k), T0 + k * WINDOW,
                    tag=f"p{k}", labels=False)
    doc = once(settings, engine, "cancer", T0 + WINDOW, T0 + 2 * WINDOW, runtime=runtime).summary
    assert doc["baseline"]["mode"] == "previous_window"
    assert doc["performance"]["estimated"]["metrics"]["accuracy"]["baseline"] is not None
    assert [key for key in runtime._estimators] == [("cancer", 1)]  # fitted on the stored baseline


def _assert_both_fell(before: dict, perf: dict) -> None:
    """Realized and estimated accuracy and ROC AUC both fell from `before` to `perf`."""
    for metric in ("accuracy", "roc_auc"):
        realized = perf["realized"][metric]["current"] - before["realized"][metric]["current"]
        estimated = (perf["estimated"]["metrics"][metric]["value"]
                     - before["estimated"]["metrics"][metric]["value"])
        assert realized < 0 and estimated < 0, (metric, realized, estimated)
