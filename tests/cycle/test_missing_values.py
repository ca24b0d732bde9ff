"""Missing feature values are data (issue 24): logged, counted in the window's data
quality against the baseline's own rate, left out of attributions, and `monitor why`
says why it cannot explain such a row; on SQLite and PostgreSQL with the small real
Keras model."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from monitor.baseline import build_baseline
from monitor.cycle import Runtime, run_once
from monitor.errors import AttributionError
from monitor.explain import explain_request
from monitor.intake.ingest import ingest_predictions, parse_body
from monitor.store import transaction
from monitor.store.tables import Alert, Prediction, SampleAttribution
from tests.models import FEATURES, T0, WINDOW


def _nulls(engine, settings, cancer, start, feature: str, n: int, prefix: str) -> list[str]:
    """Ingest `n` rows whose `feature` is an explicit JSON null; their request ids."""
    _, held_out = cancer
    rows = held_out.sample(n, replace=True, random_state=7).reset_index(drop=True)
    records = [
        {"model": "cancer", "request_id": f"{prefix}{i}",
         "timestamp": (start + timedelta(seconds=10 + i)).isoformat(),
         "features": {f: (None if f == feature else float(row[f])) for f in FEATURES},
         "prediction": 0.8 * float(row["malignant"]) + 0.1, "label": int(row["malignant"])}
        for i, row in rows.iterrows()
    ]
    result = ingest_predictions(engine, settings.models, parse_body(json.dumps(records).encode()),
                                source="test")
    assert result.accepted == n and result.quarantined == 0
    return [r["request_id"] for r in records]


def _kinds(outcome) -> set[str]:
    return {a["kind"] for a in outcome.summary["alerts"]}


def test_null_rows_are_stored_counted_judged_and_not_explained(engine, settings, cancer,
                                                                send_traffic):
    build_baseline(settings, engine, "cancer", created_by="test")
    runtime = Runtime()
    send_traffic(engine, settings, T0, seed=1, n=150)
    few = _nulls(engine, settings, cancer, T0, "mean_radius", 2, "null-")
    clean = run_once(settings, engine, "cancer", T0, T0 + WINDOW, runtime=runtime,
                     channels=["console"])

    with transaction(engine) as session:
        logged = session.scalars(select(Prediction).where(Prediction.request_id.in_(few))).all()
        assert len(logged) == 2 and all(p.features["mean_radius"] is None for p in logged)
        explained = set(session.scalars(select(SampleAttribution.request_id).where(
            SampleAttribution.run_id == clean.run_id)))
    summary = clean.summary
    assert summary["rows"] == 152 and summary["quarantined"] == 0
    assert summary["quality"]["missing"]["mean_radius"] == pytest.approx(2 / 152)
    # the baseline has no missing value, but 2 of 152 rows is within what a 341-row
    # baseline could have missed: no finding
    assert "data_quality" not in _kinds(clean)
    assert explained and not explained & set(few)

    with pytest.raises(AttributionError, match=r"no value for mean_radius .* cannot be run"):
        explain_request(settings, engine, "cancer", few[0])

    send_traffic(engine, settings, T0 + WINDOW, seed=2, n=150)
    _nulls(engine, settings, cancer, T0 + WINDOW, "mean_texture", 30, "jump-")
    jump = run_once(settings, engine, "cancer", T0 + WINDOW, T0 + 2 * WINDOW, runtime=runtime,
                    channels=["console"])
    assert [a["kind"] for a in jump.summary["alerts"]].count("data_quality") == 1
    with transaction(engine) as session:
        alert = session.scalars(select(Alert).where(Alert.kind == "data_quality")).one()
        title, details = alert.title, dict(alert.details)
    assert title.startswith("data quality: mean_texture missing in 16.7% of rows (baseline 0.0%)")
    assert details["features"] == ["mean_texture"]
    checks = [c for c in jump.summary["quality"]["checks"] if c["flagged"]]
    assert [(c["test"], c["feature"], c["count"]) for c in checks] == [("missing", "mean_texture", 30)]
    assert checks[0]["p_value"] < checks[0]["alpha"] < 1e-4
