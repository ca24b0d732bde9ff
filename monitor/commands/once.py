"""`monitor once MODEL`: one monitoring run for one window."""

from __future__ import annotations

from datetime import datetime

import click

from monitor.cli import AppContext
from monitor.commands._common import IsoTime, deliver, echo_json


@click.command()
@click.argument("model")
@click.option("--start", type=IsoTime(), help="Window start (ISO-8601, UTC if no offset).")
@click.option("--end", type=IsoTime(), help="Window end (exclusive).")
@click.option("--json", "as_json", is_flag=True, help="Print the run as one JSON document on stdout.")
@click.option("--force", is_flag=True, help="Compute again and replace a stored run of this window.")
@click.option("--no-deliver", is_flag=True, help="Leave the run's notifications in the outbox.")
@click.pass_obj
def once(
    app: AppContext,
    model: str,
    start: datetime | None,
    end: datetime | None,
    as_json: bool,
    force: bool,
    no_deliver: bool,
) -> None:
    """Run MODEL once for one window (default: the last complete window).

    Reads the window from the model's source, validates and quarantines bad rows,
    samples, measures drift, explains the sampled rows, checks performance when
    labels exist, raises alerts, and stores it all in one transaction. Running a
    window again returns the stored run (same run_id) unless --force. A window that
    has not ended yet is refused (exit 2, nothing stored): its later rows would never
    be judged. Exits 1 when the run failed (it is recorded, with a run_failed alert).
    """
    from monitor.cycle import RunFailed, run_once
    from monitor.errors import ConfigError
    from monitor.notify import outbox_channels

    settings = app.settings()
    engine = app.engine()
    if (start is None) != (end is None):
        raise ConfigError(["--start and --end go together (or leave both out for the last complete window)"])
    try:
        outcome = run_once(
            settings, engine, model, start, end, force=force, wait=True, channels=outbox_channels(settings)
        )
    except RunFailed as err:
        _deliver(settings, engine, as_json, no_deliver)
        if as_json:
            echo_json(err.outcome.summary)
        raise
    _deliver(settings, engine, as_json, no_deliver)
    if as_json:
        echo_json(outcome.summary)
        return
    _print(outcome)


def _deliver(settings, engine, as_json: bool, skip: bool) -> None:
    if not skip:
        deliver(settings, engine, json_on_stdout=as_json)


def _print(outcome) -> None:
    s = outcome.summary
    reused = " (stored run, use --force to compute again)" if outcome.reused else ""
    click.echo(
        f"run {outcome.run_id} {s['model']} {s['window']['start']} .. {s['window']['end']}: "
        f"{outcome.status}{reused}"
    )
    click.echo(f"  {s['rows']} rows, {s['sampled']} sampled, {s['quarantined']} quarantined")
    drift = s.get("drift")
    if drift:
        drifted = [n for n, f in drift["features"].items() if f["drifted"]]
        click.echo(
            f"  drift: {len(drifted)}/{len(drift['features'])} features"
            f"{' (dataset drift)' if drift['dataset_drift'] else ''}: {', '.join(drifted) or '-'}"
        )
    attribution = s.get("attribution")
    if attribution and attribution.get("ndcg") is not None:
        click.echo(
            f"  attribution ({attribution['method']}): nDCG {attribution['ndcg']:.3f}"
            f"{' (drifted)' if attribution['drifted'] else ''}"
        )
    for alert in s.get("alerts", []):
        click.echo(
            f"  alert {alert['id']}: {alert['severity']} {alert['kind']} {', '.join(alert['features'])}"
        )
