"""One monitoring run for one model and one window: the only place that knows the order.

read the window -> validate and quarantine -> sample -> drift -> attributions of the
sampled rows -> attribution drift -> performance if labels -> alert rules -> ONE
transaction that writes the run, its results, the per-request attributions, the
quarantined rows, the alerts and their outbox rows.

Nothing is written before that transaction, so a run killed half way leaves nothing
behind and the window is simply computed again. A window is computed once: the run
table is unique on (model, window), and on PostgreSQL an advisory lock keeps several
daemons from computing the same window at the same time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError

from monitor import alerts, clock, metrics
from monitor.config import ModelConfig, Settings
from monitor.errors import MonitorError, RunError
from monitor.store import transaction
from monitor.store.baselines import BaselineData, active_baseline
from monitor.store.locks import window_lock
from monitor.store.runs import quarantined_in_window
from monitor.store.tables import Alert, Quarantine, Run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    run_id: int
    status: str
    summary: Mapping[str, Any]
    #: True when the stored run was returned instead of computing it again
    reused: bool = False


class WindowBusy(RunError):
    """Another process is computing this window right now."""


class RunFailed(RunError):
    """The run failed; it was recorded (``outcome``) with a run_failed alert."""

    def __init__(self, message: str, outcome: RunOutcome):
        super().__init__(message)
        self.outcome = outcome


@dataclass
class Runtime:
    """What a daemon keeps between runs: loaded models and fitted drift analyzers."""

    _models: dict[tuple[str, float], Any] = field(default_factory=dict)
    _analyzers: dict[tuple[str, int], Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def model(self, cfg: ModelConfig) -> Any:
        from monitor.model import load_model

        key = (str(cfg.path), cfg.path.stat().st_mtime if cfg.path.exists() else 0.0)
        with self._lock:
            if key not in self._models:
                self._models[key] = load_model(cfg.path)
            return self._models[key]

    def analyzer(self, cfg: ModelConfig, reference: BaselineData) -> Any:
        from monitor.drift import DriftAnalyzer

        key = (cfg.name, reference.id)
        with self._lock:
            if key not in self._analyzers:
                analyzer = DriftAnalyzer(
                    cfg.features.numeric,
                    cfg.features.categorical,
                    cfg.drift,
                    cfg.task,
                    cfg.performance,
                )
                self._analyzers[key] = analyzer.fit(reference.sample, reference.predictions, reference.labels)
            return self._analyzers[key]


def last_complete_window(window: timedelta, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The most recent window that has ended, aligned to multiples of its length since epoch."""
    now = now or clock.utcnow()
    epoch = datetime(1970, 1, 1, tzinfo=now.tzinfo)
    end = epoch + ((now - epoch) // window) * window
    return end - window, end


def run_once(
    settings: Settings,
    engine: Engine,
    model_name: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    force: bool = False,
    runtime: Runtime | None = None,
    channels: list[str] | None = None,
    wait: bool = False,
) -> RunOutcome:
    """Compute (or return the stored) run of `model_name` for [start, end).

    Raises RunFailed when the run failed (after recording it as failed with a
    run_failed alert). When another process is computing the window: with `wait`,
    waits for it and returns its run; without, raises WindowBusy (what daemons want).
    """
    model = settings.model(model_name)
    if start is None or end is None:
        start, end = last_complete_window(model.window)
    if end <= start:
        raise RunError(f"window end {end.isoformat()} is not after its start {start.isoformat()}")
    runtime = runtime or Runtime()
    channels = channels if channels is not None else _channels(settings)
    with window_lock(engine, model.name, start, end, wait=wait) as acquired:
        if not acquired:
            raise WindowBusy(
                f"{model.name} {start.isoformat()}..{end.isoformat()} is being computed by another process"
            )
        existing = _find_run(engine, model.name, start, end)
        if existing and existing.status != "failed" and not force:
            return RunOutcome(existing.id, existing.status, existing.summary or {}, reused=True)
        log.info(
            "computing %s %s..%s%s",
            model.name,
            start.isoformat(),
            end.isoformat(),
            " (replacing the stored run)" if existing and existing.status != "failed" else "",
        )
        began = time.perf_counter()
        try:
            computed = _compute(settings, engine, model, start, end, runtime)
        except Exception as err:
            if existing is not None and existing.status != "failed":
                # --force on a good run: a failed recomputation must not destroy it
                log.error(
                    "recomputing run %s of %s failed; the stored run is kept",
                    existing.id,
                    model.name,
                    exc_info=None if isinstance(err, MonitorError) else err,
                )
                raise RunError(
                    f"recomputing run {existing.id} of {model.name} failed: {_describe(err)}; "
                    "the stored run is kept"
                ) from err
            outcome = _record_failure(engine, model, start, end, err, existing, channels)
            metrics.observe_run(model.name, "failed", time.perf_counter() - began, 0, 0)
            message = _describe(err)
            raise RunFailed(f"run {outcome.run_id} for {model.name} failed: {message}", outcome) from err
        outcome = _store(engine, model, computed, existing, channels)
        metrics.observe_run(
            model.name,
            outcome.status,
            time.perf_counter() - began,
            outcome.summary.get("rows", 0),
            outcome.summary.get("quarantined", 0),
            outcome.summary.get("alerts", []),
        )
        return outcome


def _describe(err: BaseException) -> str:
    return str(err) if isinstance(err, MonitorError) else f"{type(err).__name__}: {err}"


def _channels(settings: Settings) -> list[str]:
    try:
        from monitor.slack import outbox_channels
    except ImportError:  # pragma: no cover - the Slack package is part of the install
        return ["console"]
    return outbox_channels(settings)


def _find_run(engine: Engine, model: str, start: datetime, end: datetime) -> Run | None:
    with transaction(engine) as session:
        return session.scalars(
            select(Run).where(Run.model == model, Run.window_start == start, Run.window_end == end)
        ).first()


@dataclass
class Computed:
    """Everything a run produced, before it is written."""

    model: str
    start: datetime
    end: datetime
    status: str
    baseline_id: int | None
    summary: dict[str, Any]
    window: Any
    report: Any = None
    explanation: Any = None
    attribution: Any = None
    attribution_threshold: float | None = None
    findings: list[alerts.Finding] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _compute(
    settings: Settings, engine: Engine, model: ModelConfig, start: datetime, end: datetime, runtime: Runtime
) -> Computed:
    from monitor import analysis
    from monitor.intake import read_window
    from monitor.policies import active_policies

    timings: dict[str, float] = {}
    tick = time.perf_counter()
    reference = _reference(engine, model, start, end)
    window = read_window(model, engine, start, end)
    timings["read"] = round(time.perf_counter() - tick, 4)
    with transaction(engine) as session:
        policies = active_policies(session, model.name, clock.utcnow())
        at_ingest = quarantined_in_window(session, model.name, start, end)
    computed = Computed(
        model.name,
        start,
        end,
        "succeeded",
        reference.id if reference.id > 0 else None,
        {},
        window,
        timings=timings,
    )
    if len(window.frame) < model.drift.min_rows:
        computed.status = "insufficient_data"
    else:
        analysis.analyze(computed, model, reference, policies, runtime)
    computed.summary = analysis.summarize(computed, model, reference, at_ingest)
    computed.findings = alerts.findings(computed.summary)
    return computed


def _reference(engine: Engine, model: ModelConfig, start: datetime, end: datetime) -> BaselineData:
    with transaction(engine) as session:
        baseline = active_baseline(session, model.name)
    if baseline is None:
        raise RunError(f"model {model.name!r} has no baseline yet: run `monitor baseline {model.name}` first")
    if model.baseline.mode == "previous_window":
        from monitor import analysis

        return analysis.previous_window_reference(engine, model, baseline, start, end)
    return baseline


def _store(
    engine: Engine, model: ModelConfig, computed: Computed, existing: Run | None, channels: list[str]
) -> RunOutcome:
    from monitor import analysis
    from monitor.intake import quarantine_rows
    from monitor.policies import active_policies

    now = clock.utcnow()
    try:
        with transaction(engine) as session:
            if existing is not None:
                _forget(session, existing.id)
            run = Run(
                model=computed.model,
                window_start=computed.start,
                window_end=computed.end,
                status=computed.status,
                started_at=now,
                finished_at=now,
                baseline_id=computed.baseline_id,
                rows=computed.summary["rows"],
                sampled=computed.summary["sampled"],
                quarantined=computed.summary["quarantined"],
                timings=computed.timings,
            )
            session.add(run)
            session.flush()
            quarantine_rows(session, computed.window.rejected, source=f"run:{run.id}")
            analysis.save_results(session, run, computed, model)
            policies = active_policies(session, model.name, now)
            done = alerts.reconcile(
                session,
                run,
                computed.findings,
                policies=policies,
                resolve_after=model.alerts.resolve_after,
                channels=channels,
                context=analysis.payload_context(run, computed.summary),
                now=now,
                count_clean=computed.status == "succeeded",
            )
            summary = {
                **computed.summary,
                "run_id": run.id,
                "alerts": _raised(session, done.opened + done.refired),
                "resolved_alerts": list(done.resolved),
            }
            run.summary = summary
    except IntegrityError:
        # another process stored this window first (SQLite has no advisory lock)
        stored = _find_run(engine, computed.model, computed.start, computed.end)
        if stored is None:
            raise
        log.info("run for %s %s was stored by another process; returning it", computed.model, computed.start)
        return RunOutcome(stored.id, stored.status, stored.summary or {}, reused=True)
    log.info(
        "run %s %s %s..%s: %s, %d rows, %d sampled, %d quarantined, %d alert(s) raised, %d resolved",
        run.id,
        computed.model,
        computed.start.isoformat(),
        computed.end.isoformat(),
        computed.status,
        summary["rows"],
        summary["sampled"],
        summary["quarantined"],
        len(summary["alerts"]),
        len(done.resolved),
    )
    return RunOutcome(run.id, computed.status, summary)


def _forget(session: Any, run_id: int) -> None:
    """Delete a run being replaced (--force, or a failed run computed again)."""
    session.execute(delete(Quarantine).where(Quarantine.source == f"run:{run_id}"))
    session.execute(delete(Run).where(Run.id == run_id))
    session.flush()


def _raised(session: Any, ids: tuple[int, ...]) -> list[dict[str, Any]]:
    raised = []
    for alert in session.scalars(select(Alert).where(Alert.id.in_(ids)).order_by(Alert.id)):
        details = alert.details or {}
        features = (
            [alert.feature]
            if alert.feature
            else details.get("drifted_features") or details.get("top_changes") or []
        )
        raised.append(
            {
                "id": alert.id,
                "kind": alert.kind,
                "severity": alert.severity,
                "features": list(features),
                "status": alert.status,
            }
        )
    return raised


def _record_failure(
    engine: Engine,
    model: ModelConfig,
    start: datetime,
    end: datetime,
    err: BaseException,
    existing: Run | None,
    channels: list[str],
) -> RunOutcome:
    """Store a failed run with its error and raise (or re-fire) its run_failed alert."""
    from monitor.policies import active_policies

    # an expected failure (bad model file, no baseline) is one line; a bug gets its traceback
    log.error(
        "run for %s %s..%s failed: %s",
        model.name,
        start.isoformat(),
        end.isoformat(),
        _describe(err),
        exc_info=None if isinstance(err, MonitorError) else err,
    )
    message = _describe(err)
    now = clock.utcnow()
    with transaction(engine) as session:
        if existing is not None:
            _forget(session, existing.id)
        run = Run(
            model=model.name,
            window_start=start,
            window_end=end,
            status="failed",
            started_at=now,
            finished_at=now,
            error=message[:4000],
        )
        session.add(run)
        session.flush()
        window = {"start": start.isoformat(), "end": end.isoformat()}
        summary = {
            "run_id": run.id,
            "model": model.name,
            "window": window,
            "status": "failed",
            "error": message,
            "rows": 0,
            "sampled": 0,
            "quarantined": 0,
        }
        finding = alerts.Finding(
            "run_failed",
            None,
            f"monitoring run failed: {message[:200]}",
            {"error": message[:2000]},
            (message[:500],),
        )
        done = alerts.reconcile(
            session,
            run,
            [finding],
            policies=active_policies(session, model.name, now),
            resolve_after=model.alerts.resolve_after,
            channels=channels,
            context={
                "run": {
                    "id": run.id,
                    "window_start": window["start"],
                    "window_end": window["end"],
                    "rows": 0,
                    "sampled": 0,
                    "quarantined": 0,
                }
            },
            now=now,
            count_clean=False,
        )
        run.summary = {**summary, "alerts": _raised(session, done.opened + done.refired)}
        return RunOutcome(run.id, "failed", run.summary)
