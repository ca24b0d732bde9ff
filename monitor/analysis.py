"""The analysis half of a run: drift and attributions on a sampled window, and what the
run keeps of them (the summary document, result rows, notification context).

Called by `monitor.cycle` only; the analyzers themselves (`monitor.drift`,
`monitor.attribution`) know nothing about runs or the database.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from monitor.config import ModelConfig
from monitor.errors import RunError
from monitor.store.baselines import BaselineData
from monitor.store.tables import AttributionResult, DriftResult, Run, SampleAttribution

PREDICTION_KEY = "__prediction__"


def analyze(computed: Any, model: ModelConfig, reference: BaselineData, policies: Any, runtime: Any) -> None:
    """Run drift and attribution analysis on the window; fills `computed` in place."""
    from monitor.attribution import attribution_drift, explain_for_model

    window = computed.window
    factors = {
        name: policies.factor("feature_drift", name)
        for name in model.features.names
        if policies.factor("feature_drift", name) != 1.0
    }
    if policies.factor("prediction_drift", None) != 1.0:
        factors[PREDICTION_KEY] = policies.factor("prediction_drift", None)
    tick = time.perf_counter()
    analyzer = runtime.analyzer(model, reference)
    computed.report = analyzer.analyze(
        window.frame, window.predictions, window.labels, threshold_factors=factors
    )
    computed.timings["drift"] = round(time.perf_counter() - tick, 4)

    tick = time.perf_counter()
    loaded = runtime.model(model)
    subset = window.frame.iloc[: model.attribution.max_samples]
    computed.explanation = explain_for_model(model, loaded, subset, reference.sample)
    names = list(model.features.names)
    if reference.attributions is not None and len(subset):
        computed.attribution_threshold = 1 - (1 - model.attribution.ndcg_threshold) * policies.factor(
            "attribution_drift", None
        )
        computed.attribution = attribution_drift(
            reference.attributions[names].to_numpy(dtype=float),
            computed.explanation.values[names].to_numpy(dtype=float),
            names,
            threshold=computed.attribution_threshold,
        )
    computed.timings["attribution"] = round(time.perf_counter() - tick, 4)


def previous_window_reference(
    engine: Engine, model: ModelConfig, baseline: BaselineData, start: datetime, end: datetime
) -> BaselineData:
    """For `baseline.mode = "previous_window"`: the window before this one as reference.

    Attributions and performance still come from the stored baseline (they need the
    model on a reference the team chose); the drift reference is the previous window.
    """
    from dataclasses import replace

    from monitor.intake import read_window

    previous = read_window(model, engine, start - (end - start), start)
    if len(previous.frame) < model.drift.min_rows:
        raise RunError(
            f"previous window {(start - (end - start)).isoformat()}..{start.isoformat()} has "
            f"{len(previous.frame)} rows; previous_window mode needs at least {model.drift.min_rows}"
        )
    # a negative id: fitted analyzers are cached per reference, never reused across windows
    return replace(
        baseline,
        id=-int(start.timestamp()),
        sample=previous.frame.reset_index(drop=True),
        predictions=previous.predictions,
        labels=previous.labels,
    )


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _verdict(fd: Any) -> dict[str, Any]:
    return {
        "method": fd.method,
        "score": _clean(fd.score),
        "threshold": _clean(fd.threshold),
        "drifted": bool(fd.drifted),
    }


def summarize(
    computed: Any, model: ModelConfig, reference: BaselineData, at_ingest: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """The run's document: exactly what `monitor once --json` prints (run_id and alerts
    are added when the run is stored). `at_ingest` counts, by reason, rows of this
    window quarantined when they were ingested."""
    window = computed.window
    reasons = dict(window.reasons)
    for reason, count in (at_ingest or {}).items():
        reasons[reason] = reasons.get(reason, 0) + count
    summary: dict[str, Any] = {
        "model": model.name,
        "window": {"start": computed.start.isoformat(), "end": computed.end.isoformat()},
        "status": computed.status,
        "rows": int(window.rows),
        "sampled": int(len(window.frame)),
        "quarantined": sum(n for r, n in reasons.items() if r != "duplicate"),
        "reasons": reasons,
        "baseline": {
            "id": reference.id if reference.id > 0 else None,
            "version": reference.version,
            "mode": model.baseline.mode,
        },
        "drift": None,
        "prediction_drift": None,
        "attribution": None,
        "performance": None,
        "quality": {},
        "timings": dict(computed.timings),
    }
    if computed.status == "insufficient_data":
        summary["insufficient_data"] = {"rows": int(len(window.frame)), "min_rows": model.drift.min_rows}
        return summary
    report = computed.report
    summary["drift"] = {
        "dataset_drift": bool(report.dataset_drift),
        "drift_share": _clean(report.drift_share),
        "share_threshold": _clean(report.share_threshold),
        "features": {name: _verdict(fd) for name, fd in report.features.items()},
    }
    if report.prediction is not None:
        summary["prediction_drift"] = _verdict(report.prediction)
    summary["attribution"] = _attribution_summary(computed)
    if report.performance is not None:
        summary["performance"] = {
            name: {k: _clean(v) for k, v in metric.items()}
            for name, metric in report.performance.to_dict().get("metrics", {}).items()
        }
    summary["quality"] = _quality(report, reference)
    return summary


def _attribution_summary(computed: Any) -> dict[str, Any] | None:
    explanation = computed.explanation
    if explanation is None:
        return None
    current = explanation.values.abs().mean()
    drift = computed.attribution
    features: dict[str, Any] = {}
    per_feature = {f.feature: f for f in drift.features} if drift is not None else {}
    for name in explanation.values.columns:
        entry = {"baseline": None, "current": _clean(float(current[name])), "change": None}
        f = per_feature.get(name)
        if f is not None:
            entry.update(
                baseline=_clean(f.baseline_importance),
                current=_clean(f.current_importance),
                change=_clean(f.relative_change),
                distance=_clean(f.distance),
            )
        features[name] = entry
    median_error = None
    if explanation.completeness_error is not None and len(explanation.completeness_error):
        median_error = _clean(float(np.median(explanation.completeness_error)))
    return {
        "method": explanation.method,
        "ndcg": _clean(drift.ndcg) if drift is not None else None,
        "threshold": _clean(getattr(computed, "attribution_threshold", None)),
        "drifted": bool(drift.drifted) if drift is not None else False,
        "explained": int(len(explanation.values)),
        "median_completeness_error": median_error,
        "features": features,
    }


def _quality(report: Any, reference: BaselineData) -> dict[str, Any]:
    """The window's data quality in the shape alerts and notifications read."""
    quality = report.quality.to_dict()
    missing = quality.get("missing_share", {})
    stats = reference.feature_stats or {}
    increase = {}
    for name, share in missing.items():
        before = (stats.get(name) or {}).get("missing_share") or 0.0
        if share is not None and share - before > 0:
            increase[name] = _clean(share - before)
    return {
        "missing": {n: v for n, v in missing.items() if v},
        "missing_increase": increase,
        "out_of_range": quality.get("out_of_range", {}),
        "unseen": quality.get("unseen_categories", {}),
        "constant": quality.get("constant", []),
        "all_missing": quality.get("all_missing", []),
    }


def _verdict_row(run: Run, scope: str, verdict: Mapping[str, Any], feature: str | None = None) -> DriftResult:
    return DriftResult(
        run_id=run.id,
        scope=scope,
        feature=feature,
        method=verdict["method"],
        score=verdict["score"],
        threshold=verdict["threshold"],
        drifted=bool(verdict["drifted"]),
    )


def save_results(session: Session, run: Run, computed: Any, model: ModelConfig) -> None:
    """Result rows of a stored run: drift verdicts, importances, per-request attributions."""
    summary = computed.summary
    drift = summary.get("drift")
    if drift:
        session.add_all(_verdict_row(run, "feature", f, name) for name, f in drift["features"].items())
        session.add(
            _verdict_row(
                run,
                "dataset",
                {
                    "method": "share_of_drifted_features",
                    "score": drift["drift_share"],
                    "threshold": drift["share_threshold"],
                    "drifted": drift["dataset_drift"],
                },
            )
        )
    if summary.get("prediction_drift"):
        session.add(_verdict_row(run, "prediction", summary["prediction_drift"]))
    for metric, values in (summary.get("performance") or {}).items():
        # score = the window's value, threshold = the baseline's (the full comparison in details)
        row = _verdict_row(
            run,
            "performance",
            {
                "method": metric,
                "score": values.get("current"),
                "threshold": values.get("baseline"),
                "drifted": values.get("degraded"),
            },
            metric,
        )
        row.details = dict(values)
        session.add(row)
    attribution = summary.get("attribution")
    if attribution:
        if attribution.get("ndcg") is not None:
            session.add(
                _verdict_row(
                    run, "attribution", {**attribution, "method": "ndcg", "score": attribution["ndcg"]}
                )
            )
        session.add_all(
            AttributionResult(
                run_id=run.id,
                feature=name,
                method=attribution["method"],
                baseline_importance=f.get("baseline"),
                current_importance=f.get("current") or 0.0,
                relative_change=f.get("change"),
                distance=f.get("distance"),
            )
            for name, f in attribution["features"].items()
        )
        _save_samples(session, run, computed)


def _save_samples(session: Session, run: Run, computed: Any) -> None:
    explanation = computed.explanation
    frame = computed.window.frame.loc[explanation.values.index]
    errors = explanation.completeness_error
    baseline_out = explanation.baseline_output
    rows = []
    for i, request_id in enumerate(explanation.values.index):
        rows.append(
            SampleAttribution(
                run_id=run.id,
                model=run.model,
                request_id=str(request_id),
                method=explanation.method,
                output=float(explanation.output[i]),
                baseline_output=float(baseline_out[i]) if baseline_out is not None else None,
                values={k: _clean(float(v)) for k, v in explanation.values.iloc[i].items()},
                features={k: _clean(_plain(v)) for k, v in frame.iloc[i].items()},
                completeness_error=_clean(float(errors[i])) if errors is not None else None,
            )
        )
    session.add_all(rows)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value


def payload_context(run: Run, summary: Mapping[str, Any]) -> dict[str, Any]:
    """What every notification of this run carries besides its alert."""
    return {
        "run": {
            "id": run.id,
            "window_start": summary["window"]["start"],
            "window_end": summary["window"]["end"],
            "rows": summary["rows"],
            "sampled": summary["sampled"],
            "quarantined": summary["quarantined"],
        },
        "drift": summary.get("drift"),
        "attribution": summary.get("attribution"),
        "quality": {
            **(summary.get("quality") or {}),
            "quarantined": summary["quarantined"],
            "reasons": summary.get("reasons", {}),
        },
        "report_hint": f"monitor report {run.id} --out report-{run.id}.html",
    }
