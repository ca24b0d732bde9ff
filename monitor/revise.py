"""Labels that arrive late: revise the realized performance of past windows.

`refresh_labels` (the daemon's `label_refresh` job, and `monitor labels refresh`)
finds the stored windows within `[models.labels] horizon` whose labelled rows changed
since their latest revision (`monitor.store.revisions.stale_windows`), measures their
realized performance and calibration again, stores a new revision, updates the run's
document (so `monitor once` on the window returns the latest revision) and lets the
new realized metrics raise or resolve `performance_drop` (only that kind) through
`cycle.reconcile_alerts`, in one transaction per window.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from monitor import alerts, clock
from monitor.config import ModelConfig, Settings
from monitor.store import alerts as store_alerts
from monitor.store import transaction
from monitor.store.baselines import active_baseline
from monitor.store.locks import window_lock
from monitor.store.results import revision_metrics
from monitor.store.revisions import Stale, save_revision, stale_windows
from monitor.store.runs import get_run
from monitor.vocab import AlertKind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Revision:
    """One window whose realized performance was revised."""

    model: str
    run_id: int
    start: datetime
    end: datetime
    revision: int
    labelled_rows: int
    coverage: float | None
    realized: dict[str, Any] | None
    #: performance_drop alerts this revision opened or re-fired, and those it resolved
    alerts: tuple[dict[str, Any], ...] = ()
    resolved: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "run_id": self.run_id,
            "window": {"start": self.start.isoformat(), "end": self.end.isoformat()},
            "revision": self.revision,
            "labelled_rows": self.labelled_rows,
            "coverage": self.coverage,
            "realized": self.realized,
            "alerts": list(self.alerts),
            "resolved_alerts": list(self.resolved),
        }


def refresh_labels(
    settings: Settings,
    engine: Engine,
    model_name: str | None = None,
    *,
    runtime: Any = None,
    channels: Sequence[str],
    now: datetime | None = None,
) -> list[Revision]:
    """Revise every stale window of `model_name` (all models when None); returns the
    revisions stored, oldest window first per model. Only models reading the prediction
    log (`source = "log"`) are revised: labels reach other sources with their rows."""
    from monitor.cycle import Runtime

    runtime = runtime or Runtime()
    now = now or clock.utcnow()
    models = [settings.model(model_name)] if model_name else list(settings.models)
    revised: list[Revision] = []
    for model in models:
        if model.source != "log":
            # file and SQL sources bring their labels with each read: nothing arrives later
            log.debug("%s: source %s; labels are not revised", model.name, model.source)
            continue
        with transaction(engine) as session:
            reference = active_baseline(session, model.name)
            stale = stale_windows(session, model.name, now - model.labels.horizon)
        if reference is None or not stale:
            continue
        for window in stale:
            revision = revise_window(model, engine, window, reference, runtime, list(channels), now)
            if revision is not None:
                revised.append(revision)
    if revised:
        log.info("label refresh: %d window(s) revised", len(revised))
    return revised


def revise_window(
    model: ModelConfig,
    engine: Engine,
    stale: Stale,
    reference: Any,
    runtime: Any,
    channels: list[str],
    now: datetime,
) -> Revision | None:
    """Measure one stored window's labelled rows again and store the next revision;
    None when another process holds the window."""
    from monitor.intake import read_window
    from monitor.performance import realized_calibration, realized_document

    with window_lock(engine, model.name, stale.start, stale.end, wait=False) as acquired:
        if not acquired:
            log.info("%s %s: being computed; revised on the next refresh", model.name, stale.start)
            return None
        window = read_window(model, engine, stale.start, stale.end)
        analyzer = runtime.analyzer(model, reference)
        # the analyzer's own comparison with the baseline: the same rule as the run's
        realized = analyzer._performance(window.predictions, window.labels)
        calibration = realized_calibration(
            model, runtime.estimator(model, reference), window.labels, window.predictions
        )
        with transaction(engine) as session:
            run = get_run(session, stale.run_id)
            if run is None:
                return None
            run_id = run.id
            number = stale.revision + 1
            coverage = stale.labelled_now / run.rows if run.rows else None
            save_revision(
                session, run.id, number, stale.labelled_now, coverage,
                revision_metrics(realized, calibration), now,
            )
            summary = dict(run.summary or {})
            performance = dict(summary.get("performance") or {})
            performance.update(
                realized=realized_document(realized),
                calibration=calibration.to_dict() if calibration is not None else None,
                labelled_rows=stale.labelled_now,
                revision=number,
            )
            summary["performance"] = performance
            raised: tuple[dict[str, Any], ...] = ()
            resolved: tuple[int, ...] = ()
            if realized is not None:
                raised, resolved = _judge(session, model, run, realized, summary, channels, now)
            run.summary = summary
    log.info(
        "%s %s..%s: performance revision %d on %d labelled rows",
        model.name, stale.start.isoformat(), stale.end.isoformat(), number, stale.labelled_now,
    )
    return Revision(
        model.name, run_id, stale.start, stale.end, number, stale.labelled_now, coverage,
        performance["realized"], raised, resolved,
    )


def _judge(
    session: Any,
    model: ModelConfig,
    run: Any,
    realized: Any,
    summary: dict[str, Any],
    channels: list[str],
    now: datetime,
) -> tuple[tuple[dict[str, Any], ...], tuple[int, ...]]:
    """Raise, follow up or count clean the model's `performance_drop` alert."""
    from monitor.cycle import reconcile_alerts
    from monitor.events import run_context
    from monitor.policies import active_policies

    done = reconcile_alerts(
        session,
        run,
        alerts.performance_findings(realized, None),
        policies=active_policies(session, model.name, now),
        resolve_after=model.alerts.resolve_after,
        channels=channels,
        context=run_context(run.id, None, summary),  # type: ignore[arg-type]
        now=now,
        kinds=(AlertKind.PERFORMANCE_DROP,),
    )
    raised = tuple(store_alerts.raised_views(done.opened + done.refired))
    return raised, tuple(a.id for a in done.resolved)
