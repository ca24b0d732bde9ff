"""`monitor labels refresh [MODEL]`: revise past windows' realized performance now."""

from __future__ import annotations

import json

import click

from monitor.cli import AppContext


@click.group()
def labels() -> None:
    """Labels that arrived late: revise the performance of past windows."""


@labels.command("refresh")
@click.argument("model", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document per revised window.")
@click.option("--no-deliver", is_flag=True, help="Leave the revisions' notifications in the outbox.")
@click.pass_obj
def refresh(app: AppContext, model: str | None, as_json: bool, no_deliver: bool) -> None:
    """Recompute the realized performance of MODEL's stored windows (every model's
    without MODEL), within `[models.labels] horizon`, whose labelled rows changed since
    their last revision; store a new revision each, and raise or resolve
    performance_drop. What the daemon's `label_refresh` job does on its schedule."""
    from monitor.commands._common import deliver
    from monitor.notify import outbox_channels
    from monitor.revise import refresh_labels

    settings = app.settings()
    if model is not None:
        settings.model(model)  # an unknown model is a config error naming the known ones
    engine = app.engine()
    revised = refresh_labels(settings, engine, model, channels=outbox_channels(settings))
    if not no_deliver:
        deliver(settings, engine, json_on_stdout=as_json)
    if as_json:
        for revision in revised:
            click.echo(json.dumps(revision.to_dict()))
        return
    if not revised:
        click.echo("no window has new labels")
        return
    for r in revised:
        metrics = r.realized or {}
        shown = ", ".join(
            f"{k} {v['current']:.4g}" for k, v in metrics.items() if v.get("current") is not None
        )
        alerts = f", {len(r.alerts)} alert(s) raised" if r.alerts else ""
        resolved = f", {len(r.resolved)} resolved" if r.resolved else ""
        click.echo(
            f"{r.model} {r.start.isoformat()} .. {r.end.isoformat()}: revision {r.revision}, "
            f"{r.labelled_rows} labelled rows ({_share(r.coverage)}){': ' + shown if shown else ''}"
            f"{alerts}{resolved}"
        )


def _share(value: float | None) -> str:
    return "coverage n/a" if value is None else f"{value:.0%} coverage"
