"""Segments and fairness in every run, end to end on SQLite and PostgreSQL: a real Keras
model, attributes sent over the intake beside the inputs, a baseline keeping them, and
the `bias` alert raised for exactly the group the model turns against, from then on."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from monitor import alerts
from monitor.baseline import build_baseline
from monitor.config import load_settings
from monitor.cycle import Runtime, run_once
from monitor.explain import explain_request
from monitor.intake.ingest import ingest_predictions, parse_body
from monitor.report import build_report
from monitor.slack.messages import alert_message
from monitor.store import transaction
from monitor.store.baselines import active_baseline
from monitor.vocab import AlertKind
from tests.models import CONFIG, FEATURES, T0, WINDOW

FAIRNESS = """
[models.segments]
attributes = ["sex"]
min_rows = 30
stratify = true
[models.fairness]
protected = ["sex"]
favorable = 0
resamples = 1000
"""
#: rows per window, windows before the model turns against group F, windows after
ROWS, CLEAN, BIASED = 600, 5, 3
#: rows sampled per window (uniform for drift; stratified by sex for segments and fairness)
SAMPLED = 400
#: share of group F's favorable (benign) decisions the model turns into denials
PENALTY = 0.4
FAIR_KINDS = {AlertKind.BIAS, AlertKind.BIAS_DRIFT, AlertKind.EXPLANATION_DISPARITY}


def _sex(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(np.array(["F", "M"], dtype=object), n, p=[0.4, 0.6])


@pytest.fixture
def fair_settings(db_url, model_dir, write_config, cancer, tmp_path):
    train, _ = cancer
    with_sex = train.copy()
    with_sex["sex"] = _sex(np.random.default_rng(7), len(train))
    with_sex.to_parquet(tmp_path / "train_sex.parquet", index=False)
    body = CONFIG.format(url=db_url, model_dir=model_dir, features=str(FEATURES).replace("'", '"'))
    body = body.replace(f'data = "{model_dir}/train.parquet"', f'data = "{tmp_path}/train_sex.parquet"')
    body = body.replace("sample_size = 300", f"sample_size = {SAMPLED}")
    return load_settings(write_config(body + FAIRNESS), env={})


@pytest.fixture(scope="module")
def scores(model_dir, cancer) -> tuple[pd.DataFrame, np.ndarray]:
    """The held-out rows and the real model's P(malignant) on them (what serving logged)."""
    from monitor.model import load_model

    _, held_out = cancer
    loaded = load_model(model_dir / "model.keras")
    return held_out, np.asarray(loaded.score(held_out[FEATURES], "binary_classification", None)).reshape(-1)


def _send(engine, settings, held_out, scores, start, seed: int, penalty: float) -> None:
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(held_out), ROWS)
    sex = _sex(rng, ROWS)
    served = scores[pick].copy()
    denied = (sex == "F") & (served < 0.5) & (rng.uniform(size=ROWS) < penalty)
    served[denied] = rng.uniform(0.5, 0.95, int(denied.sum()))
    records = [
        {
            "model": "cancer",
            "request_id": f"{seed}-{i}",
            "timestamp": (start + timedelta(seconds=float(rng.uniform(0, 3599)))).isoformat(),
            "features": {f: float(held_out[f].iloc[p]) for f in FEATURES},
            "prediction": float(served[i]),
            "label": int(held_out["malignant"].iloc[p]),
            "attributes": {"sex": str(sex[i]), "ignored": "never stored"},
        }
        for i, p in enumerate(pick)
    ]
    body = parse_body(json.dumps(records).encode())
    result = ingest_predictions(engine, settings.models, body, source="test")
    assert result.accepted == ROWS and result.quarantined == 0


def sex_of(engine, request_id: str) -> str:
    from sqlalchemy import select

    from monitor.store.tables import Prediction

    with transaction(engine) as session:
        return session.scalar(select(Prediction.attributes).where(Prediction.request_id == request_id))["sex"]


@pytest.mark.slow
def test_bias_is_raised_for_the_penalized_group_from_then_on_and_not_before(engine, fair_settings, scores):
    held_out, served = scores
    summary = build_baseline(fair_settings, engine, "cancer", created_by="test")
    assert not [n for n in summary.notes if "segment attribute" in n]
    with transaction(engine) as session:
        reference = active_baseline(session, "cancer")
    assert list(reference.attributes.columns) == ["sex"] and len(reference.attributes) == summary.rows
    assert set(reference.attributes["sex"]) == {"F", "M"}

    runtime = Runtime()
    kinds_by_window = []
    for w in range(CLEAN + BIASED):
        start = T0 + w * WINDOW
        penalty = PENALTY if w >= CLEAN else 0.0
        _send(engine, fair_settings, held_out, served, start, seed=100 + w, penalty=penalty)
        outcome = run_once(fair_settings, engine, "cancer", start, start + WINDOW, runtime=runtime,
                           channels=["console"])
        result = outcome.result
        assert result.segments is not None and result.fairness is not None
        doc = outcome.summary
        assert {"segments", "fairness"} <= set(doc)
        groups = doc["fairness"]["attributes"]["sex"]["groups"]
        assert groups["F"]["rows"] > 100 and doc["sampled"] == SAMPLED
        # the stratified sample's weights estimate the whole window
        assert groups["F"]["weighted_rows"] + groups["M"]["weighted_rows"] == pytest.approx(ROWS)
        assert doc["segments"]["weighted"] and doc["segments"]["sampling"]["rows"] == ROWS
        assert {s["name"] for s in doc["segments"]["segments"]} >= {
            "sex=F",
            "sex=M",
        }
        found = [(f.kind, f.feature) for f in alerts.findings(result) if f.kind in FAIR_KINDS]
        kinds_by_window.append(found)
    assert runtime.groups(fair_settings.model("cancer"), reference).fitted

    clean, biased = kinds_by_window[:CLEAN], kinds_by_window[CLEAN:]
    # clean windows raise no fairness finding at all (measured: 0 of CLEAN on each database)
    assert clean == [[]] * CLEAN
    for found in biased:
        assert (AlertKind.BIAS, "sex=F") in found
        # only group F is named as disadvantaged
        assert {feature for kind, feature in found if kind == AlertKind.BIAS} == {"sex=F"}

    # the stored alert is one live alert for sex=F, re-fired by every biased window
    with transaction(engine) as session:
        from sqlalchemy import select

        from monitor.store.tables import Alert

        live = session.scalars(select(Alert).where(Alert.kind == AlertKind.BIAS)).all()
        assert [(a.feature, a.fire_count) for a in live] == [("sex=F", BIASED)]
        assert live[0].details["attribute"] == "sex" and live[0].details["compared_with"] == "M"

    # `monitor why` names the request's groups; the report has its fairness and segments
    answer = explain_request(fair_settings, engine, "cancer", f"{100 + CLEAN}-0")
    assert answer["groups"] == [f"sex={sex_of(engine, f'{100 + CLEAN}-0')}"]
    page = build_report(fair_settings, engine, outcome.run_id, evidently=False)
    assert "<h2>Fairness</h2>" in page and "<h2>Segments</h2>" in page and "sex=F" in page
    if result.disparity is not None and result.disparity.reasons:  # the baseline's gap beside the window's
        assert "<h3>Explanation disparity</h3>" in page and "gap in the baseline" in page

    # the Slack message of the bias alert names the groups, the interval and the band
    bias = next(f for f in alerts.findings(result) if f.kind == AlertKind.BIAS)
    alert = {"kind": "bias", "severity": "critical", "model": "cancer", "title": bias.title, "id": 1}
    payload = {"alert": alert, "lines": list(bias.lines), "details": dict(bias.details)}
    text = json.dumps(alert_message("alert_opened", payload)[1])
    assert "sex=F" in text and "against `sex=M`" in text and "simultaneous intervals" in text
    for metric, m in bias.details["metrics"].items():
        band = f"allowed [{m['band'][0]:.3g}, {m['band'][1]:.3g}]"
        assert metric in text and band in text and m["ci"][1] < m["band"][0]

    # the run's group metrics and segments are stored as result rows too
    with transaction(engine) as session:
        from sqlalchemy import select

        from monitor.store.tables import DriftResult

        stored = session.execute(
            select(DriftResult.scope, DriftResult.feature, DriftResult.method, DriftResult.drifted)
            .where(DriftResult.run_id == outcome.run_id, DriftResult.scope.in_(["fairness", "segment"]))
        ).all()
    assert ("fairness", "sex=F", "true_positive_rate_difference", True) in stored
    assert {f for scope, f, _, _ in stored if scope == "segment"} >= {"sex=F", "sex=M"}

    # the undeclared attribute was never stored
    with transaction(engine) as session:
        from sqlalchemy import select

        from monitor.store.tables import Prediction

        stored = session.scalars(select(Prediction.attributes).limit(5)).all()
        assert stored and all(a == {"sex": a["sex"]} for a in stored)


#: clean windows measured without the database (same model, same engines, same wiring)
MEASURED = 60


@pytest.mark.slow
def test_clean_windows_rate_of_fairness_findings(model_dir, cancer, scores, write_config, tmp_path):
    """The false-flag rate of the wiring on clean windows of the scenario: the real
    model's own decisions, sex independent of everything, attributions of each window."""
    from types import SimpleNamespace

    from monitor.attribution import explain_for_model
    from monitor.fairness_step import analyze_window, fit_analyzers
    from monitor.model import load_model
    from monitor.result import AttributionOutcome, RunResult
    from monitor.vocab import RunStatus

    train, _ = cancer
    held_out, served = scores
    body = CONFIG.format(url=f"sqlite:///{tmp_path}/unused.db", model_dir=model_dir,
                         features=str(FEATURES).replace("'", '"'))
    model = load_settings(write_config(body + FAIRNESS), env={}).model("cancer")
    loaded = load_model(model_dir / "model.keras")
    base_scores = np.asarray(loaded.score(train[FEATURES], model.task, None)).reshape(-1)
    reference = SimpleNamespace(
        sample=train[FEATURES], attributes=pd.DataFrame({"sex": _sex(np.random.default_rng(7), len(train))}),
        predictions=base_scores, labels=train["malignant"].to_numpy(), version=1,
        attributions=explain_for_model(model, loaded, train[FEATURES].iloc[:200], train[FEATURES]).values
        .reset_index(drop=True),
    )
    analyzers = fit_analyzers(model, reference)
    assert analyzers.fitted
    flagged, tests = [], 0
    for w in range(MEASURED):
        rng = np.random.default_rng(1000 + w)
        pick = rng.integers(0, len(held_out), SAMPLED)
        frame = held_out[FEATURES].iloc[pick].set_axis([f"{w}-{i}" for i in range(SAMPLED)])
        window = SimpleNamespace(
            frame=frame, predictions=served[pick], labels=held_out["malignant"].to_numpy()[pick],
            attributes=pd.DataFrame({"sex": _sex(rng, SAMPLED)}, index=frame.index),
        )
        explained = explain_for_model(model, loaded, frame, train[FEATURES])
        groups = analyze_window(model, window, analyzers, AttributionOutcome(explained, frame))
        tests += len(groups.disparity.reasons) + len(groups.disparity.influence)
        result = RunResult("cancer", T0, T0 + WINDOW, RunStatus.SUCCEEDED, fairness=groups.fairness,
                           disparity=groups.disparity)
        found = [f.kind for f in alerts.findings(result) if f.kind in FAIR_KINDS]
        flagged.append(found)
    windows = sum(bool(f) for f in flagged)
    print(f"clean windows with a fairness finding: {windows}/{MEASURED} "
          f"(bias {sum(AlertKind.BIAS in f for f in flagged)}, "
          f"bias_drift {sum(AlertKind.BIAS_DRIFT in f for f in flagged)}, "
          f"explanation_disparity {sum(AlertKind.EXPLANATION_DISPARITY in f for f in flagged)}; "
          f"{tests} disparity tests run)")
    assert tests >= 2 * MEASURED  # the disparity tests really ran
    assert sum(AlertKind.BIAS in f for f in flagged) <= 1
    assert windows <= 3


def test_a_baseline_without_the_attribute_column_analyzes_without_a_baseline(
    engine, db_url, model_dir, write_config, scores
):
    held_out, served = scores
    body = CONFIG.format(url=db_url, model_dir=model_dir, features=str(FEATURES).replace("'", '"'))
    settings = load_settings(write_config(body + FAIRNESS), env={})
    summary = build_baseline(settings, engine, "cancer", created_by="test")
    assert any("no column for the segment attribute(s) ['sex']" in n for n in summary.notes)
    _send(engine, settings, held_out, served, T0, seed=7, penalty=0.0)
    runtime = Runtime()
    outcome = run_once(settings, engine, "cancer", T0, T0 + WINDOW, runtime=runtime, channels=["console"])
    with transaction(engine) as session:
        reference = active_baseline(session, "cancer")
    assert reference.attributes is None and not runtime.groups(settings.model("cancer"), reference).fitted
    sex = outcome.summary["fairness"]["attributes"]["sex"]
    assert sex["reference_source"] != "configured" and sex["groups"]["F"]["rows"] > 50
    assert all(m["baseline"] is None for g in sex["groups"].values() for m in g["metrics"].values())
    assert outcome.summary["fairness"]["drift"] == []
