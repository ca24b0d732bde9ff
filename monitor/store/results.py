"""The one mapper of runs: a `RunResult` and its alerts -> rows, for every outcome.

A succeeded, insufficient-data or failed run is written the same way, inside the
cycle's transaction: the run row (replacing an earlier one of the same window), the
rows the run quarantined, its drift, performance and attribution results, the
per-request attributions, and finally the stored document (`Run.summary`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from monitor.drift.records import plain
from monitor.result import RunResult, json_safe, verdict
from monitor.store.predictions import quarantine_rows
from monitor.store.tables import (
    AttributionResult,
    DriftResult,
    Quarantine,
    Run,
    SampleAttribution,
    SurrogateResult,
)
from monitor.vocab import RunStatus


def find_run(session: Session, model: str, start: datetime, end: datetime) -> Run | None:
    return session.scalars(
        select(Run).where(Run.model == model, Run.window_start == start, Run.window_end == end)
    ).first()


def forget_run(session: Session, run_id: int) -> None:
    """Delete a run being replaced (--force, or a failed run computed again)."""
    session.execute(delete(Quarantine).where(Quarantine.source == f"run:{run_id}"))
    session.execute(delete(Run).where(Run.id == run_id))
    session.flush()


def save_run(
    session: Session, result: RunResult, *, now: datetime, replacing: int | None = None
) -> Run:
    """Insert the run of `result` with its quarantined rows and result rows; flushed."""
    if replacing is not None:
        forget_run(session, replacing)
    failed = result.status == RunStatus.FAILED
    run = Run(
        model=result.model,
        window_start=result.start,
        window_end=result.end,
        status=str(result.status),
        started_at=now,
        finished_at=now,
        baseline_id=None if failed or result.baseline is None else result.baseline.id,
        rows=result.rows,
        sampled=result.sampled,
        quarantined=0 if failed else result.quarantined,
        timings=None if failed else dict(result.timings),
        error=result.error[:4000] if result.error else None,
    )
    session.add(run)
    session.flush()
    if result.rejected:
        quarantine_rows(session, result.rejected, source=f"run:{run.id}")
    _save_drift(session, run, result)
    _save_attribution(session, run, result)
    _save_revision(session, run, result, now)
    _save_estimate(session, run, result)
    _save_fairness(session, run, result)
    _save_transparency(session, run, result)
    return run


def revision_metrics(realized: Any, calibration: Any) -> dict[str, Any]:
    """What a performance revision stores: realized metrics and calibration."""
    from monitor.performance import realized_document

    return {
        "realized": realized_document(realized),
        "calibration": calibration.to_dict() if calibration is not None else None,
    }


def _save_revision(session: Session, run: Run, result: RunResult, now: datetime) -> None:
    """Revision 0 of the window's realized performance: what the run measured."""
    if result.status != RunStatus.SUCCEEDED:
        return
    from monitor.store.revisions import save_revision

    coverage = result.labelled_rows / result.rows if result.rows else None
    save_revision(
        session,
        run.id,
        result.revision,
        result.labelled_rows,
        coverage,
        revision_metrics(result.performance, result.calibration),
        now,
    )


def _save_estimate(session: Session, run: Run, result: RunResult) -> None:
    """One `estimated` row per estimated metric: score = the estimate, threshold = its
    band's lower end, details = the whole estimate (band, baseline, degraded)."""
    estimated = result.estimated
    if estimated is None or result.status != RunStatus.SUCCEEDED:
        return
    for name, metric in (estimated.to_dict().get("metrics") or {}).items():
        row = _verdict_row(
            run,
            "estimated",
            {
                "method": name,
                "score": metric.get("value"),
                "threshold": metric.get("lower"),
                "drifted": bool(metric.get("degraded")),
            },
            name,
        )
        row.details = dict(metric)
        session.add(row)


def finish_run(session: Session, run: Run, result: RunResult, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Store the run's document (`result.to_dict()` + run id + `extra`) and return it."""
    doc = result.to_dict()
    if result.status == RunStatus.FAILED:
        summary = {"run_id": run.id, **doc, **extra}
    else:
        summary = {**doc, "run_id": run.id, **extra}
    run.summary = summary
    return summary


_VERDICT_COLUMNS = ("method", "score", "threshold", "drifted")


def _verdict_row(run: Run, scope: str, v: Mapping[str, Any], feature: str | None = None) -> DriftResult:
    """A verdict row; what the columns do not hold (calibrated p-value, level, minimum
    detectable shift) goes into `details`."""
    extra = {k: value for k, value in v.items() if k not in _VERDICT_COLUMNS and value is not None}
    return DriftResult(
        run_id=run.id,
        scope=scope,
        feature=feature,
        method=v["method"],
        score=v["score"],
        threshold=v["threshold"],
        drifted=bool(v["drifted"]),
        details=extra or None,
    )


def _save_drift(session: Session, run: Run, result: RunResult) -> None:
    report = result.drift
    if report is None or result.status != RunStatus.SUCCEEDED:
        return
    session.add_all(_verdict_row(run, "feature", verdict(f), name) for name, f in report.features.items())
    session.add(
        _verdict_row(
            run,
            "dataset",
            {
                "method": "share_of_drifted_features",
                "score": plain(report.drift_share),
                "threshold": plain(report.share_threshold),
                "drifted": report.dataset_drift,
            },
        )
    )
    if report.prediction is not None:
        session.add(_verdict_row(run, "prediction", verdict(report.prediction)))
    if report.performance is not None:
        for name, metric in report.performance.metrics.items():
            values = metric.to_dict()
            # score = the window's value, threshold = the baseline's (the full comparison in details)
            row = _verdict_row(
                run,
                "performance",
                {
                    "method": name,
                    "score": values.get("current"),
                    "threshold": values.get("baseline"),
                    "drifted": values.get("degraded"),
                },
                name,
            )
            row.details = values
            session.add(row)


def _save_attribution(session: Session, run: Run, result: RunResult) -> None:
    outcome = result.attribution
    if outcome is None:
        return
    if outcome.drift is not None:
        session.add(
            _verdict_row(
                run,
                "attribution",
                {
                    "method": "ndcg",
                    "score": plain(outcome.drift.ndcg),
                    "threshold": plain(outcome.threshold),
                    "drifted": outcome.drifted,
                },
            )
        )
    session.add_all(
        AttributionResult(
            run_id=run.id,
            feature=name,
            method=outcome.method,
            baseline_importance=f.get("baseline"),
            current_importance=f.get("current") or 0.0,
            relative_change=f.get("change"),
            distance=f.get("distance"),
        )
        for name, f in outcome.feature_table().items()
    )
    explanation = outcome.explanation
    errors = explanation.completeness_error
    baseline_out = explanation.baseline_output
    session.add_all(
        SampleAttribution(
            run_id=run.id,
            model=run.model,
            request_id=str(request_id),
            method=explanation.method,
            output=float(explanation.output[i]),
            baseline_output=float(baseline_out[i]) if baseline_out is not None else None,
            values={k: json_safe(float(v)) for k, v in explanation.values.iloc[i].items()},
            features={k: json_safe(v) for k, v in outcome.inputs.iloc[i].items()},
            completeness_error=json_safe(float(errors[i])) if errors is not None else None,
            reasons=_reasons_of(result, str(request_id)),
        )
        for i, request_id in enumerate(explanation.values.index)
    )


def _save_fairness(session: Session, run: Run, result: RunResult) -> None:
    """One `fairness` row per group metric (score = value, drifted = bias; the interval,
    band and baseline in details) and one `segment` row per reported segment (score =
    the drift p-value of its prediction)."""
    rows = []
    if result.fairness is not None:
        for attr in result.fairness.attributes.values():
            for group in attr.groups.values():
                for metric, m in group.metrics.items():
                    verdict_of = {"method": str(metric), "score": plain(m.value), "threshold": None,
                                  "drifted": m.bias}
                    row = _verdict_row(run, "fairness", verdict_of, f"{attr.attribute}={group.group}"[:256])
                    row.details = {**m.to_dict(), "rows": int(group.rows),
                                   "compared_with": attr.reference_group}
                    rows.append(row)
    if result.segments is not None:
        level = result.segments.p_value / max(result.segments.tested, 1)
        for seg in result.segments.segments:
            row = _verdict_row(
                run,
                "segment",
                {
                    "method": seg.drift_method or "none",
                    "score": plain(seg.drift_p_value),
                    "threshold": plain(level),
                    "drifted": seg.drifted,
                },
                seg.name[:256],
            )
            row.details = seg.to_dict()
            rows.append(row)
    session.add_all(rows)


def _reasons_of(result: RunResult, request_id: str) -> dict[str, Any] | None:
    reasons = result.decision_reasons
    if reasons is None:
        return None
    entry = reasons.per_request.get(request_id)
    return dict(entry) if entry is not None else None


def _save_transparency(session: Session, run: Run, result: RunResult) -> None:
    """The surrogate tree, the reason-shift test and the faithfulness verdict of a run."""
    if result.status != RunStatus.SUCCEEDED:
        return
    surrogate = result.surrogate
    if surrogate is not None:
        doc = surrogate.to_dict()
        session.add(
            SurrogateResult(
                run_id=run.id,
                model=run.model,
                fidelity=doc["fidelity"],
                lower_bound=doc["lower_bound"],
                depth=doc["depth"],
                top_feature=doc["top_feature"],
                baseline_top_feature=doc["baseline_top_feature"],
                flagged=surrogate.flagged,
                rules=doc.pop("rules"),
                details=doc,
            )
        )
    shift = getattr(result.decision_reasons, "shift", None)
    if shift is not None:
        row = _verdict_row(
            run,
            "reasons",
            {"method": "tvd_permutation", "score": plain(shift.distance),
             "threshold": plain(shift.threshold), "drifted": shift.shifted},
        )
        row.details = shift.to_dict()
        session.add(row)
    faith = result.faithfulness
    if faith is not None:
        row = _verdict_row(
            run,
            "faithfulness",
            {"method": "completeness_error", "score": plain(faith.median_error),
             "threshold": faith.tolerance, "drifted": faith.exceeded},
        )
        row.details = faith.to_dict()
        session.add(row)
