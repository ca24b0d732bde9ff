"""Shared test factories: alerts, runs and outbox rows written straight through the
tables as the cycle would, and typed run results built from a few numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from monitor.alerts import alert_view
from monitor.attribution.drift import AttributionDrift, FeatureAttributionDrift
from monitor.attribution.explain import FrameExplanation
from monitor.drift.records import DataQuality, DriftReport, FeatureDrift
from monitor.result import AttributionOutcome, BaselineRef, RunResult, WindowQuality
from monitor.store.engine import transaction
from monitor.store.tables import Alert, Outbox, Run
from monitor.vocab import RunStatus

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class MovableClock:
    """`monitor.clock.utcnow` replaced by a clock the test moves (the one fake clock)."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)




def payload(alert: Alert, run: Run) -> dict[str, Any]:
    """An `alert_opened` payload shaped like the cycle's."""
    return {
        "alert": alert_view(alert),
        "run": {
            "id": run.id,
            "window_start": run.window_start.isoformat(),
            "window_end": run.window_end.isoformat(),
            "rows": 500,
            "sampled": 200,
            "quarantined": 3,
        },
        "lines": ["mean radius drifted: wasserstein 0.31 > 0.1", "dataset drift share 0.4"],
        "details": {"method": "wasserstein", "score": 0.31, "threshold": 0.1},
        "drift": {
            "dataset_drift": True,
            "drift_share": 0.4,
            "features": {
                "mean radius": {
                    "method": "wasserstein",
                    "score": 0.31,
                    "threshold": 0.1,
                    "drifted": True,
                },
                "mean texture": {
                    "method": "wasserstein",
                    "score": 0.02,
                    "threshold": 0.1,
                    "drifted": False,
                },
            },
        },
        "attribution": {
            "method": "integrated_gradients",
            "ndcg": 0.82,
            "threshold": 0.9,
            "features": {
                "mean radius": {"baseline": 0.1, "current": 0.3, "change": 0.2},
                "mean texture": {"baseline": 0.25, "current": 0.12, "change": -0.13},
            },
        },
        "quality": {
            "quarantined": 3,
            "reasons": {"missing_feature": 2, "not_a_number": 1},
            "missing": {"mean radius": 0.01},
            "out_of_range": {"mean area": 4},
            "unseen": {"color": ["purple"]},
        },
        "report_hint": f"monitor report {run.id} --out report-{run.id}.html",
        "report_url": None,
    }


def make_alert(
    engine: Engine,
    *,
    model: str = "cancer",
    kind: str = "feature_drift",
    feature: str | None = "mean radius",
    channels: tuple[str, ...] = ("slack",),
    now: datetime = T0,
    window: int = 0,
) -> int:
    """A run, an open alert and its `alert_opened` outbox rows; returns the alert id."""
    with transaction(engine) as session:
        start = now - timedelta(hours=1 + window)
        run = Run(
            model=model,
            window_start=start,
            window_end=start + timedelta(hours=1),
            status="succeeded",
            started_at=now,
            finished_at=now,
            rows=500,
            sampled=200,
            quarantined=3,
        )
        session.add(run)
        session.flush()
        alert = Alert(
            model=model,
            kind=kind,
            feature=feature,
            dedup_key=f"{model}|{kind}|{feature or '*'}",
            severity="warning",
            status="open",
            title=f"{feature or kind} drifted",
            details={"method": "wasserstein"},
            first_run_id=run.id,
            last_run_id=run.id,
            opened_at=now,
            last_fired_at=now,
        )
        session.add(alert)
        session.flush()
        for channel in channels:
            session.add(
                Outbox(
                    alert_id=alert.id,
                    event="alert_opened",
                    channel=channel,
                    payload=payload(alert, run),
                    created_at=now,
                    next_attempt_at=now,
                )
            )
        return alert.id


def queue(
    engine: Engine, alert_id: int, event: str, now: datetime = T0, channel: str = "slack"
) -> int:
    """Another outbox row for an existing alert (refired/resolved); returns its id."""
    with transaction(engine) as session:
        alert = session.get(Alert, alert_id)
        run = session.get(Run, alert.last_run_id)
        alert.fire_count += event == "alert_refired"
        row = Outbox(
            alert_id=alert_id,
            event=event,
            channel=channel,
            payload=payload(alert, run),
            created_at=now,
            next_attempt_at=now,
        )
        session.add(row)
        session.flush()
        return row.id


def run_result(
    drifted: tuple[str, ...] = ("a",),
    *,
    ndcg: float | None = None,
    quarantined: int = 0,
    rows: int = 100,
    features: tuple[str, ...] = ("a", "b", "c"),
    model: str = "m",
    status: str = "succeeded",
    start: datetime = T0,
    shifted: tuple[str, ...] = (),
) -> RunResult:
    """A typed RunResult: K-S verdicts on `features` (those in `drifted` drifted), dataset
    drift when at least two drifted, and attributions when `ndcg` is given."""
    verdicts = {
        n: FeatureDrift("ks", 0.001 if n in drifted else 0.5, 0.05, n in drifted, "numeric", True)
        for n in features
    }
    report = DriftReport(
        features=verdicts,
        dataset_drift=len(drifted) >= 2,
        drift_share=len(drifted) / len(features),
        share_threshold=0.5,
        prediction=None,
        quality=DataQuality(),
        performance=None,
        insufficient_data=False,
        min_rows=30,
        rows=rows,
    )
    attribution = None
    if ndcg is not None:
        importance = {"a": (0.5, 0.1), "b": (0.1, 0.6)}
        drift = AttributionDrift(
            ndcg=ndcg,
            threshold=0.9,
            drifted=ndcg < 0.9,
            features=tuple(
                FeatureAttributionDrift(
                    name, before, after, (after - before) / before, abs(after - before), rank, rank,
                    p_value=1e-6 if name in shifted else 0.5, alpha=0.001, drifted=name in shifted,
                    min_detectable_change=0.3,
                )
                for rank, (name, (before, after)) in enumerate(importance.items())
            ),
        )
        values = pd.DataFrame({"a": [0.1, -0.1], "b": [0.6, -0.6]}, index=["r1", "r2"])
        explanation = FrameExplanation("integrated_gradients", values, np.zeros(2), None, None, 16)
        attribution = AttributionOutcome(explanation, values, drift, 0.9)
    return RunResult(
        model=model,
        start=start,
        end=start + timedelta(hours=1),
        status=RunStatus(status),
        baseline=BaselineRef(1, 1, "training"),
        rows=rows,
        sampled=rows,
        reasons={"missing_feature": quarantined} if quarantined else {},
        min_rows=30,
        drift=report,
        attribution=attribution,
        # hourly windows, a budget of 1 a month, data quality's default share
        quality=WindowQuality.against(None, None, rows=rows, alpha=0.1 / 720,
                                      reasons={"missing_feature": quarantined}),
    )
