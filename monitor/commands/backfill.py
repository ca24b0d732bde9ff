"""`monitor backfill MODEL --start --end`: compute every window of a range in one process."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime

import click

from monitor.cli import AppContext
from monitor.commands._common import IsoTime, deliver

log = logging.getLogger(__name__)


@click.command()
@click.argument("model")
@click.option("--start", type=IsoTime(), required=True, help="Range start (ISO-8601, UTC if no offset).")
@click.option("--end", type=IsoTime(), required=True, help="End of the range (exclusive).")
@click.option("--json", "as_json", is_flag=True, help="One `once --json` document per window, one per line.")
@click.option("--notify", is_flag=True, help="Announce the alerts raised (default: store them silently).")
@click.option("--force", is_flag=True, help="Compute again windows that already have a stored run.")
@click.pass_obj
def backfill(
    app: AppContext, model: str, start: datetime, end: datetime, as_json: bool, notify: bool, force: bool
) -> None:
    """Compute every window of MODEL between --start and --end: "what would I have
    been told?".

    Windows are aligned to the model's `window` length as the daemon aligns them; a
    window that already has a stored run is returned as stored unless --force. Runs and
    alerts are stored; alerts are announced (Slack, webhook, console) only with --notify.
    A progress bar goes to stderr. A range that reaches into the future stops at the last
    window that has ended. Exits 1 when a window failed (it is recorded), 2 on a usage
    error (no baseline yet, an empty range).
    """
    from tqdm import tqdm

    from monitor import clock
    from monitor.cycle import RunFailed, Runtime, run_once
    from monitor.errors import ConfigError
    from monitor.notify import outbox_channels
    from monitor.windows import aligned_windows

    settings = app.settings()
    cfg = settings.model(model)
    engine = app.engine()
    now = clock.utcnow()
    if end > now:  # windows that have not closed are never stored (see `monitor once`)
        log.warning("backfill %s: --end %s is in the future; the range stops at the last "
                    "window that has ended (before %s)", model, end.isoformat(), now.isoformat())
    windows = aligned_windows(start, min(end, now), cfg.window)
    if not windows:
        raise ConfigError(
            [f"--start {start.isoformat()} .. --end {end.isoformat()} holds no complete "
             f"{cfg.window} window of {model} that has ended (windows are aligned to multiples "
             "of their length)"]
        )
    channels = outbox_channels(settings) if notify else []
    runtime, failed, raised = Runtime(), 0, 0
    with tqdm(total=len(windows), desc=f"backfill {model}", unit="window", file=sys.stderr,
              disable=None) as bar:
        for w_start, w_end in windows:
            try:
                outcome = run_once(
                    settings, engine, model, w_start, w_end,
                    force=force, runtime=runtime, channels=channels, wait=True,
                )
            except RunFailed as err:
                outcome, failed = err.outcome, failed + 1
            raised += len(outcome.summary.get("alerts") or [])
            if as_json:
                click.echo(json.dumps(outcome.summary, default=str, allow_nan=False))
            else:
                bar.write(_line(outcome))
            bar.update(1)
    if notify:
        deliver(settings, engine, json_on_stdout=as_json)
    if not as_json:
        click.echo(
            f"{len(windows)} window(s) of {model}: {failed} failed, {raised} alert(s) raised"
            + ("" if notify else " (stored, not announced: --notify to announce them)")
        )
    if failed:
        sys.exit(1)


def _line(outcome: object) -> str:
    s = getattr(outcome, "summary", {})
    drift = s.get("drift") or {}
    drifted = [name for name, f in (drift.get("features") or {}).items() if f.get("drifted")]
    kinds = sorted({a["kind"] for a in s.get("alerts") or []})
    return (
        f"{s['window']['start']} .. {s['window']['end']}: run {s.get('run_id')} {s.get('status')}, "
        f"{s.get('rows', 0)} rows, drifted: {', '.join(drifted) or 'none'}, "
        f"alerts: {', '.join(kinds) or 'none'}"
    )
