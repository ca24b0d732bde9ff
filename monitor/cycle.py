"""One monitoring run for one model and one window: the only place that knows the order.

read the window (`monitor.intake`) -> compute (`monitor.compute`: drift, attributions,
attribution drift, performance -> a typed `RunResult`) -> findings (`monitor.alerts`)
-> ONE transaction (`monitor.store.results` and `monitor.store.alerts`) that writes the
run, its results, the per-request attributions, the quarantined rows, the alerts and
their outbox events (`monitor.events`).

Nothing is written before that transaction, so a run killed half way leaves nothing
behind and the window is simply computed again. A window is computed once: the run
table is unique on (model, window), and on PostgreSQL an advisory lock keeps several
daemons from computing the same window at the same time.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from monitor import alerts, clock, metrics
from monitor.alerts import alert_view
from monitor.config import ModelConfig, Settings
from monitor.errors import MonitorError, NoBaselineError, RunError
from monitor.events import AlertEvent, run_context
from monitor.result import Gaps, RunResult, Traffic
from monitor.store import alerts as store_alerts
from monitor.store import outbox, results, transaction
from monitor.store.baselines import BaselineData, active_baseline
from monitor.store.fits import BaselineFits
from monitor.store.locks import window_lock
from monitor.store.revisions import labelled_in_window
from monitor.store.runs import had_traffic, quarantined_in_window, recent_runs
from monitor.store.tables import Alert, Run
from monitor.vocab import EventName, RunStatus
from monitor.windows import last_complete_window

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    run_id: int
    status: str
    summary: Mapping[str, Any]
    #: True when the stored run was returned instead of computing it again
    reused: bool = False
    #: the typed result when this call computed the run (None when it was reused)
    result: RunResult | None = None


class WindowBusy(RunError):
    """Another process is computing this window right now."""


class UnfinishedWindow(RunError):
    """The window has not ended yet: a run stored now would never judge its later rows."""

    exit_code = 2

    def __init__(self, model: str, start: datetime, end: datetime, now: datetime, window: timedelta):
        last_start, last_end = last_complete_window(window, now)
        wait = timedelta(seconds=math.ceil((end - now).total_seconds()))
        super().__init__(
            f"window {start.isoformat()} .. {end.isoformat()} of {model} has not ended: it "
            f"closes at {end.isoformat()} (in {wait}); a run stored now would never judge "
            f"the rows that arrive later. Compute it after it closes; the last complete "
            f"window is {last_start.isoformat()} .. {last_end.isoformat()}"
        )


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
    _estimators: dict[tuple[str, int], Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: segment / fairness / disparity analyzers fitted per (model, baseline)
    _groups: dict[tuple[str, int], Any] = field(default_factory=dict)

    def model(self, cfg: ModelConfig) -> Any:
        from monitor.model import load_model

        key = (str(cfg.path), cfg.path.stat().st_mtime if cfg.path.exists() else 0.0)
        with self._lock:
            if key not in self._models:
                self._models[key] = load_model(cfg.path)
            return self._models[key]

    def analyzer(self, cfg: ModelConfig, reference: BaselineData, fits: Any = None) -> Any:
        """The drift analyzer fitted on `reference` (once per baseline); `fits`, the
        baseline's `FitStore`, is where its calibrated nulls are read and kept."""
        from monitor.budget import AlertBudget
        from monitor.drift import DriftAnalyzer

        budget = AlertBudget.for_model(cfg)
        key = (cfg.name, reference.id)
        with self._lock:
            if key not in self._analyzers:
                analyzer = DriftAnalyzer(
                    cfg.features.numeric,
                    cfg.features.categorical,
                    cfg.drift,
                    cfg.task,
                    cfg.performance,
                    family_alpha=budget.drift,
                    performance_alpha=budget.performance,
                    seed=cfg.seed,
                )
                self._analyzers[key] = analyzer.fit(reference.sample, reference.predictions, reference.labels)
            if fits is not None:
                self._analyzers[key].keep_fits_in(fits)
            return self._analyzers[key]

    def estimator(self, cfg: ModelConfig, reference: BaselineData) -> Any:
        """The performance estimator fitted on `reference` (None: it has no labels)."""
        from monitor.performance import fit_estimator

        key = (cfg.name, reference.id)
        with self._lock:
            if key not in self._estimators:
                self._estimators[key] = fit_estimator(cfg, reference)
            return self._estimators[key]

    def groups(self, cfg: ModelConfig, reference: BaselineData) -> Any:
        """The model's segment and fairness analyzers fitted on `reference` (once per baseline)."""
        from monitor.fairness_step import fit_analyzers

        key = (cfg.name, reference.id)
        with self._lock:
            if key not in self._groups:
                self._groups[key] = fit_analyzers(cfg, reference)
            return self._groups[key]


def run_once(
    settings: Settings,
    engine: Engine,
    model_name: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    force: bool = False,
    runtime: Runtime | None = None,
    channels: Sequence[str],
    wait: bool = False,
    gaps: Sequence[tuple[datetime, datetime]] = (),
) -> RunOutcome:
    """Compute (or return the stored) run of `model_name` for [start, end).

    `channels` are the outbox channels its alerts are announced on
    (`monitor.notify.outbox_channels(settings)`; none: alerts are stored, not announced).
    `gaps` are earlier windows the caller found were never computed (a `data_gap`
    finding of this run). Raises NoBaselineError, storing nothing, when the model has
    no baseline yet.

    Raises UnfinishedWindow, storing nothing, when `end` is still in the future.
    Raises RunFailed when the run failed (after recording it as failed with a
    run_failed alert). When another process is computing the window: with `wait`,
    waits for it and returns its run; without, raises WindowBusy (what daemons want).
    """
    model = settings.model(model_name)
    if start is None or end is None:
        start, end = last_complete_window(model.window)
    if end <= start:
        raise RunError(f"window end {end.isoformat()} is not after its start {start.isoformat()}")
    now = clock.utcnow()
    if end > now:
        raise UnfinishedWindow(model.name, start, end, now, model.window)
    runtime = runtime or Runtime()
    channels = list(channels)
    _require_baseline(engine, model)
    with window_lock(engine, model.name, start, end, wait=wait) as acquired:
        if not acquired:
            raise WindowBusy(
                f"{model.name} {start.isoformat()}..{end.isoformat()} is being computed by another process"
            )
        existing = _find_run(engine, model.name, start, end)
        if existing and existing.status != RunStatus.FAILED and not force:
            return RunOutcome(existing.id, existing.status, existing.summary or {}, reused=True)
        log.info(
            "computing %s %s..%s%s",
            model.name,
            start.isoformat(),
            end.isoformat(),
            " (replacing the stored run)" if existing and existing.status != RunStatus.FAILED else "",
        )
        began = time.perf_counter()
        try:
            computed = _compute(settings, engine, model, start, end, runtime, gaps)
        except Exception as err:
            if existing is not None and existing.status != RunStatus.FAILED:
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
            metrics.observe_run(model.name, RunStatus.FAILED, time.perf_counter() - began, 0, 0)
            message = _describe(err)
            raise RunFailed(f"run {outcome.run_id} for {model.name} failed: {message}", outcome) from err
        outcome = _save(engine, model, computed, existing, channels)
        if not outcome.reused:
            refresh_card(engine, model, outcome.run_id)
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


def _find_run(engine: Engine, model: str, start: datetime, end: datetime) -> Run | None:
    with transaction(engine) as session:
        return results.find_run(session, model, start, end)


def _require_baseline(engine: Engine, model: ModelConfig) -> None:
    with transaction(engine) as session:
        if active_baseline(session, model.name) is None:
            raise NoBaselineError(
                f"model {model.name!r} has no baseline yet: run `monitor baseline {model.name}` first"
            )


def _compute(
    settings: Settings,
    engine: Engine,
    model: ModelConfig,
    start: datetime,
    end: datetime,
    runtime: Runtime,
    gaps: Sequence[tuple[datetime, datetime]] = (),
) -> RunResult:
    """Read the window and what it is compared with, then run the engines on it."""
    from monitor.compute import compute
    from monitor.intake import read_window
    from monitor.policies import active_policies

    tick = time.perf_counter()
    reference = _reference(engine, model, start, end)
    window = read_window(model, engine, start, end)
    timings = {"read": round(time.perf_counter() - tick, 4)}
    with transaction(engine) as session:
        policies = active_policies(session, model.name, clock.utcnow())
        at_ingest = quarantined_in_window(session, model.name, start, end)
        traffic = _traffic(session, model, start) if window.rows == 0 else None
        labelled = labelled_in_window(session, model.name, start, end)
    result = compute(
        model,
        window,
        reference,
        start=start,
        end=end,
        policies=policies,
        runtime=runtime,
        at_ingest=at_ingest,
        timings=timings,
        estimation_reference=_stored_baseline(engine, model) if reference.id < 0 else None,
        # a stored baseline keeps its fits; previous_window references are one window's
        fits=BaselineFits(engine, reference.id) if reference.id > 0 else None,
    )
    return replace(
        result,
        traffic=traffic,
        gaps=Gaps(tuple(gaps)) if gaps else None,
        # the whole window's labelled rows (the log's), or the sample's (file and SQL sources)
        labelled_rows=max(labelled, result.labelled_rows),
    )


def _stored_baseline(engine: Engine, model: ModelConfig) -> BaselineData | None:
    with transaction(engine) as session:
        return active_baseline(session, model.name)


def _traffic(session: Any, model: ModelConfig, start: datetime) -> Traffic:
    """For a window without a valid row: how many windows in a row had none."""
    quiet = 1
    for rows, status in recent_runs(session, model.name, start, model.alerts.no_data_after - 1):
        if rows > 0 or status == RunStatus.FAILED:
            break
        quiet += 1
    return Traffic(quiet, had_traffic(session, model.name, start), model.alerts.no_data_after)


def _reference(engine: Engine, model: ModelConfig, start: datetime, end: datetime) -> BaselineData:
    with transaction(engine) as session:
        baseline = active_baseline(session, model.name)
    if baseline is None:
        raise RunError(f"model {model.name!r} has no baseline yet: run `monitor baseline {model.name}` first")
    if model.baseline.mode == "previous_window":
        return _previous_window_reference(engine, model, baseline, start, end)
    return baseline


def _previous_window_reference(
    engine: Engine, model: ModelConfig, baseline: BaselineData, start: datetime, end: datetime
) -> BaselineData:
    """For `baseline.mode = "previous_window"`: the window before this one as reference.

    Attributions and performance still come from the stored baseline (they need the
    model on a reference the team chose); the drift reference is the previous window.
    """
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
        attributes=previous.attributes.reset_index(drop=True) if previous.attributes is not None else None,
    )


def _store(
    engine: Engine,
    model: ModelConfig,
    result: RunResult,
    existing: Run | None,
    channels: list[str],
) -> tuple[RunOutcome, int]:
    """Write a run and its alerts in one transaction: the same path for every outcome.
    Returns the outcome and how many alerts the run resolved."""
    from monitor.policies import active_policies

    now = clock.utcnow()
    found = alerts.findings(result)
    with transaction(engine) as session:
        run = results.save_run(
            session, result, now=now, replacing=existing.id if existing is not None else None
        )
        done = reconcile_alerts(
            session,
            run,
            found,
            policies=active_policies(session, model.name, now),
            resolve_after=model.alerts.resolve_after,
            channels=channels,
            context=run_context(run.id, result),
            now=now,
        )
        extra: dict[str, Any] = {"alerts": store_alerts.raised_views(done.opened + done.refired)}
        if result.status != RunStatus.FAILED:
            extra["resolved_alerts"] = [a.id for a in done.resolved]
        summary = results.finish_run(session, run, result, extra)
    return RunOutcome(run.id, result.status, summary, result=result), len(done.resolved)


@dataclass(frozen=True)
class Reconciled:
    """What a run did to its model's alerts."""

    opened: tuple[Alert, ...]
    refired: tuple[Alert, ...]
    resolved: tuple[Alert, ...]
    muted: tuple[str, ...]


def reconcile_alerts(
    session: Any,
    run: Run,
    found: Sequence[alerts.Finding],
    *,
    policies: alerts.Policies,
    resolve_after: int,
    channels: Sequence[str],
    context: Mapping[str, Any],
    now: datetime,
    kinds: Sequence[str] | None = None,
) -> Reconciled:
    """Apply a run's findings to its model's alerts and queue one outbox event per
    opened, re-fired or resolved alert, in the caller's transaction. With `kinds`, only
    live alerts of those kinds are considered (a label revision judges performance only)."""
    live = store_alerts.live_alerts(session, run.model)
    if kinds is not None:
        live = [a for a in live if a.kind in kinds]
    decided = alerts.plan(
        run.model,
        store_alerts.as_live(live),
        found,
        policies=policies,
        resolve_after=resolve_after,
        run_status=run.status,
    )
    applied = store_alerts.apply_plan(session, run, decided, live, now=now)
    event = incident_event(applied, live, context)
    if event is not None:
        outbox.queue(session, event, channels, now, alert_id=event.alert["id"])
    if decided.muted:
        muted = ", ".join(decided.muted)
        log.info("run %s: %d finding(s) muted by policy: %s", run.id, len(decided.muted), muted)
    return Reconciled(applied.opened, applied.refired, applied.resolved, decided.muted)


def incident_event(applied: Any, live: Sequence[Alert], context: Mapping[str, Any]) -> AlertEvent | None:
    """ONE outbox event for everything a run did to its model's alerts (one message).

    The lead alert is the incident's: a live alert already posted (its message is the
    thread later windows reply in), else the first alert the run opened. The event is
    `alert_opened` when the run starts an incident (a new message listing every finding),
    `alert_refired` when it adds to a live one, `alert_resolved` when it only resolves.
    """
    announced = [
        *((EventName.ALERT_OPENED, a) for a in applied.opened),
        *((EventName.ALERT_REFIRED, a) for a in applied.refired),
        *((EventName.ALERT_RESOLVED, a) for a in applied.resolved),
    ]
    if not announced:
        return None
    posted = sorted((a for a in live if a.slack_ts), key=lambda a: a.id)
    lead = posted[0] if posted else min((a for _, a in announced), key=lambda a: a.id)
    lead_event = next((name for name, a in announced if a.id == lead.id), None)
    if applied.opened and not posted:
        name = EventName.ALERT_OPENED
    elif applied.opened or applied.refired:
        name = EventName.ALERT_REFIRED
    else:
        name = EventName.ALERT_RESOLVED
    findings = [_finding_view(event, alert) for event, alert in announced]
    details = dict(lead.details or {})
    lines = tuple(details.pop("lines", [])) if lead_event is not None else ()
    return AlertEvent(name, alert_view(lead), {**context, "alerts": findings}, lines, details)


def _finding_view(event: EventName, alert: Alert) -> dict[str, Any]:
    details = dict(alert.details or {})
    lines = list(details.pop("lines", []))
    return {"event": str(event), **alert_view(alert), "lines": lines, "details": details}


def _save(
    engine: Engine, model: ModelConfig, result: RunResult, existing: Run | None, channels: list[str]
) -> RunOutcome:
    """Store a computed run; another process storing the same window first wins."""
    try:
        outcome, resolved = _store(engine, model, result, existing, channels)
    except IntegrityError:
        # another process stored this window first (SQLite has no advisory lock)
        stored = _find_run(engine, result.model, result.start, result.end)
        if stored is None:
            raise
        log.info("run for %s %s was stored by another process; returning it", result.model, result.start)
        return RunOutcome(stored.id, stored.status, stored.summary or {}, reused=True)
    summary = outcome.summary
    log.info(
        "run %s %s %s..%s: %s, %d rows, %d sampled, %d quarantined, %d alert(s) raised, %d resolved",
        outcome.run_id,
        result.model,
        result.start.isoformat(),
        result.end.isoformat(),
        result.status,
        summary["rows"],
        summary["sampled"],
        summary["quarantined"],
        len(summary["alerts"]),
        resolved,
    )
    return outcome


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
    # an expected failure (bad model file, no baseline) is one line; a bug gets its traceback
    log.error(
        "run for %s %s..%s failed: %s",
        model.name,
        start.isoformat(),
        end.isoformat(),
        _describe(err),
        exc_info=None if isinstance(err, MonitorError) else err,
    )
    result = RunResult.failed(model.name, start, end, _describe(err))
    outcome, _ = _store(engine, model, result, existing, channels)
    return outcome


def refresh_card(engine: Engine, model: ModelConfig, run_id: int | None) -> int | None:
    """Regenerate the model's card from the store and keep it as a new version; returns
    the version. A card that cannot be built is logged, never fails the run."""
    from monitor.card import build_card
    from monitor.store.cards import card_evidence, save_card

    try:
        with transaction(engine) as session:
            evidence = card_evidence(session, model.name, model.card.recent_runs)
            now = clock.utcnow()
            document = build_card(model, evidence, generated_at=now.isoformat())
            version = save_card(session, model.name, document, run_id=run_id, now=now,
                                keep=model.card.keep_versions)
    except Exception:
        log.exception("model card of %s could not be regenerated after run %s", model.name, run_id)
        return None
    log.info("model card of %s: version %d (after run %s)", model.name, version, run_id)
    return version
