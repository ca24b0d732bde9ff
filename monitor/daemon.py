"""`monitor run`: the daemon.

One process: APScheduler 3 runs a job per model (its schedule from config), the outbox
delivery job and a daily retention job; uvicorn serves ingest, /healthz, /metrics and
the Slack endpoint in the main thread. SIGTERM or SIGINT stops the server, then the
scheduler waits for a running cycle to finish (a cycle writes in one transaction, so
even a hard kill leaves no half-written run).

Jobs never call back into the scheduler: `BackgroundScheduler.shutdown(wait=True)`
holds the scheduler's job-store lock while it waits for running jobs, so a job that
asked it for anything (`get_job`, `modify_job`) during a shutdown would wait forever.
A job that wants the outbox delivered early sets an event instead (`deliver_soon`).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import uvicorn
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from monitor import clock, metrics
from monitor.config import ModelConfig, Settings
from monitor.cycle import Runtime, WindowBusy, last_complete_window, run_once
from monitor.errors import NoBaselineError, RunError
from monitor.notify import deliver_outbox, pending_count
from monitor.store import require_current, transaction
from monitor.store.engine import wait_for_database
from monitor.store.maintenance import ensure_partitions
from monitor.store.retention import purge_older_than
from monitor.store.runs import has_run, last_runs
from monitor.windows import gap_report, missed_windows, trigger_for

log = logging.getLogger(__name__)

#: on each tick, windows this far back that have no run are computed too (after downtime)
CATCH_UP_WINDOWS = 3
#: on stop, how long an outbox delivery asked for by a job may take to finish
DELIVERY_STOP_WAIT = timedelta(seconds=30)


class Daemon:
    """The scheduler, the notifiers and the HTTP server of one `monitor run` process."""

    def __init__(self, settings: Settings, engine: Engine):
        from monitor.notify import build_notifiers, outbox_channels

        self.settings, self.engine = settings, engine
        self.runtime = Runtime()
        self.notifiers = build_notifiers(settings)
        self.channels = outbox_channels(settings)
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=2)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(settings.scheduler.misfire_grace.total_seconds()),
            },
            timezone="UTC",
        )
        self._stopping = threading.Event()
        #: set by jobs that stored alerts: the delivery thread delivers the outbox now
        self._deliver_now = threading.Event()
        self._delivery = threading.Thread(
            target=self._deliver_when_asked, name="monitor-deliver-soon", daemon=True
        )

    # -- jobs ---------------------------------------------------------------------------

    def schedule(self) -> None:
        for model in self.settings.models:
            self.scheduler.add_job(
                self.cycle_job,
                trigger_for(model),
                args=[model.name],
                id=f"cycle:{model.name}",
                name=f"monitoring run for {model.name}",
                replace_existing=True,
            )
        self.scheduler.add_job(
            self.outbox_job,
            IntervalTrigger(seconds=self.settings.scheduler.outbox_interval.total_seconds()),
            id="outbox",
            name="outbox delivery",
            replace_existing=True,
        )
        self.scheduler.add_job(
            self.label_refresh_job,
            IntervalTrigger(seconds=self.settings.scheduler.label_refresh.total_seconds()),
            id="label_refresh",
            name="performance revisions of windows whose labels arrived",
            replace_existing=True,
        )
        self.scheduler.add_job(
            self.partitions_job,
            IntervalTrigger(hours=1),
            id="partitions",
            name="prediction log partitions",
            replace_existing=True,
            next_run_time=clock.utcnow(),
        )
        self.scheduler.add_job(
            self.retention_job,
            IntervalTrigger(hours=24),
            id="retention",
            name="retention",
            replace_existing=True,
            next_run_time=clock.utcnow() + timedelta(minutes=5),
        )

    def cycle_job(self, model_name: str) -> None:
        """Compute the last complete window and up to CATCH_UP_WINDOWS recent ones missed
        while down (or, before the model's first run, since its first logged prediction);
        older missed windows are reported as a gap (`data_gap`)."""
        model = self.settings.model(model_name)
        start, end = last_complete_window(model.window)
        try:
            missed = self._missed_windows(model, start)
        except Exception:
            log.exception("%s: cannot read the stored runs (database down?); retrying next tick", model_name)
            return
        gaps = missed[:-CATCH_UP_WINDOWS] if len(missed) > CATCH_UP_WINDOWS else []
        if gaps:
            log.warning(
                "%s: %d window(s) from %s to %s have no run (monitor was down or not running yet) "
                "and are NOT computed; run `monitor backfill %s --start %s --end %s` to compute them",
                model_name,
                len(gaps),
                gaps[0][0].isoformat(),
                gaps[-1][1].isoformat(),
                model_name,
                gaps[0][0].isoformat(),
                gaps[-1][1].isoformat(),
            )
        windows = [*missed[len(gaps):], (start, end)]
        for w_start, w_end in windows:
            if self._stopping.is_set():
                return
            if w_start != start and not self._missing(model_name, w_start, w_end):
                continue
            try:
                outcome = run_once(
                    self.settings,
                    self.engine,
                    model_name,
                    w_start,
                    w_end,
                    runtime=self.runtime,
                    channels=self.channels,
                    gaps=gaps if w_start == start else (),
                )
            except WindowBusy:
                log.debug("%s %s: computed by another daemon", model_name, w_start.isoformat())
            except NoBaselineError as err:
                log.warning("%s: not monitored yet: %s", model_name, err)
                return
            except RunError:
                pass  # recorded as a failed run and logged with its traceback by the cycle
            except Exception:
                log.exception(
                    "monitoring job for %s window %s failed before the run could be "
                    "recorded (database down?); it will be retried on the next tick",
                    model_name,
                    w_start.isoformat(),
                )
                return
            else:
                if not outcome.reused:
                    self.deliver_soon()

    def _missed_windows(self, model: ModelConfig, start: datetime) -> list[tuple[datetime, datetime]]:
        with transaction(self.engine) as session:
            return missed_windows(session, model, start, self._horizon)

    @property
    def _horizon(self) -> timedelta:
        """How far back missed windows are looked for: the log keeps no older rows."""
        return timedelta(days=self.settings.scheduler.retention_days)

    def _missing(self, model: str, start: Any, end: Any) -> bool:
        with transaction(self.engine) as session:
            return not has_run(session, model, start, end)

    def outbox_job(self) -> None:
        try:
            deliver_outbox(self.engine, self.notifiers)
        except Exception:
            log.exception("outbox delivery failed (database down?); retrying on the next tick")

    def label_refresh_job(self) -> None:
        """Revise the realized performance of past windows whose labels arrived."""
        from monitor.revise import refresh_labels

        try:
            revised = refresh_labels(self.settings, self.engine, runtime=self.runtime, channels=self.channels)
        except Exception:
            log.exception("label refresh failed (database down?); retrying on the next tick")
            return
        if any(r.alerts or r.resolved for r in revised):
            self.deliver_soon()

    def deliver_soon(self) -> None:
        """Deliver fresh alerts now instead of waiting for the next outbox tick.

        Only sets an event (see the module's docstring): a job calling the scheduler
        here would deadlock a shutdown that waits for that job."""
        self._deliver_now.set()

    def _deliver_when_asked(self) -> None:
        """The delivery thread: deliver the outbox each time a job asks, until stopped.
        (`deliver_outbox` serializes with the outbox job, so a row goes out once.)"""
        while True:
            self._deliver_now.wait()
            if self._stopping.is_set():
                return
            self._deliver_now.clear()
            self.outbox_job()

    def partitions_job(self) -> None:
        """PostgreSQL: create the prediction log's daily partitions a week ahead."""
        try:
            upkeep = ensure_partitions(self.engine, clock.utcnow())
        except Exception:
            log.exception("creating prediction log partitions failed (database down?); retrying in an hour")
            return
        if upkeep.created or upkeep.moved_rows:
            log.info(
                "prediction log: %d partition(s) created, %d row(s) moved out of the default partition",
                len(upkeep.created),
                upkeep.moved_rows,
            )

    def retention_job(self) -> None:
        cutoff = clock.utcnow() - timedelta(days=self.settings.scheduler.retention_days)
        with transaction(self.engine) as session:
            counts = purge_older_than(session, cutoff)
        log.info("retention: deleted rows older than %s: %s", cutoff.date().isoformat(), counts)

    # -- health -------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Extra /healthz fields: scheduler state, jobs, outbox backlog, last runs, and the
        windows each model missed (never computed) within retention."""
        jobs = {
            job.id: job.next_run_time.isoformat() if job.next_run_time else None
            for job in self.scheduler.get_jobs()
        }
        state = {"scheduler": "running" if self.scheduler.running else "stopped", "jobs": jobs}
        try:
            state["outbox_backlog"] = pending_count(self.engine)
            with transaction(self.engine) as session:
                state["last_runs"] = last_runs(session)
                gaps = {m.name: gap_report(session, m, self._horizon) for m in self.settings.models}
            state["gaps"] = {name: report for name, report in gaps.items() if report}
        except Exception as err:  # noqa: BLE001 - /healthz reports, it does not crash
            state["database_error"] = type(err).__name__
        state["healthy"] = self.scheduler.running and "database_error" not in state
        return state

    # -- lifecycle ----------------------------------------------------------------------

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT, then stop gracefully."""
        from monitor.server import check_bind, create_app
        from monitor.slack.app import start_feedback

        check_bind(self.settings)
        # a daemon started before its database (a reboot, a container order) waits for it;
        # SIGTERM/SIGINT while waiting stop it cleanly
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._stopping.set())
        if not wait_for_database(self.engine, stop=self._stopping):
            log.info("stopped while waiting for the database")
            return
        require_current(self.engine)
        app = create_app(self.settings, self.engine, health=self.health)
        from monitor.ui.app import mount_ui_if_usable

        mount_ui_if_usable(app, self.settings, self.engine)
        metrics.watch_backlog(lambda: pending_count(self.engine))
        feedback = start_feedback(self.settings, self.engine, app)
        if self.engine.dialect.name == "sqlite":
            log.info("database is SQLite: run a single daemon on it (use PostgreSQL to run several)")
        self.start_jobs()
        log.info(
            "monitor daemon started: %d model(s) [%s], notifying via %s, serving on http://%s:%d",
            len(self.settings.models),
            ", ".join(m.name for m in self.settings.models),
            ", ".join(self.notifiers) or "nothing",
            self.settings.server.host,
            self.settings.server.port,
        )
        server = _Server(
            uvicorn.Config(
                app,
                host=self.settings.server.host,
                port=self.settings.server.port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )
        self._install_signal_handlers(server)
        try:
            server.run()
        finally:
            self.stop(feedback)

    def start_jobs(self) -> None:
        """Schedule the jobs and start the scheduler and the delivery thread."""
        self.schedule()
        self.scheduler.start()
        self._delivery.start()

    def _install_signal_handlers(self, server: Any) -> None:
        """SIGTERM/SIGINT stop the server; the scheduler is stopped after it returns.
        A second signal stops without waiting for open connections."""

        def on_signal(signum: int, _frame: Any) -> None:
            name = signal.Signals(signum).name
            if server.should_exit:
                log.warning("%s again: not waiting for open connections", name)
                server.force_exit = True
            else:
                log.info("%s received: shutting down", name)
            server.should_exit = True
            self._stopping.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def stop(self, feedback: Any = None) -> None:
        log.info("stopping: waiting for running jobs to finish")
        self._stopping.set()
        self._deliver_now.set()  # wakes the delivery thread, which then ends
        if feedback is not None:
            feedback.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if self._delivery.is_alive():
            self._delivery.join(DELIVERY_STOP_WAIT.total_seconds())
            if self._delivery.is_alive():
                log.warning(
                    "outbox delivery still running after %ds; stopping anyway (undelivered "
                    "rows stay in the outbox and go out on the next start)",
                    DELIVERY_STOP_WAIT.total_seconds(),
                )
        self.engine.dispose()
        log.info("monitor daemon stopped")


class _Server(uvicorn.Server):
    """uvicorn's server without its signal capture: uvicorn re-raises SIGTERM after
    shutting down, which would kill the process before the scheduler is stopped."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
