"""`monitor alerts`: list alerts and their state."""

from __future__ import annotations

import click

from monitor.cli import AppContext
from monitor.commands._common import echo_json


@click.command()
@click.option("--model", help="Only this model.")
@click.option("--status", type=click.Choice(["live", "open", "acknowledged", "muted", "resolved", "all"]),
              default="live", show_default=True, help="live = every status but resolved.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def alerts(app: AppContext, model: str | None, status: str, as_json: bool) -> None:
    """List alerts, newest first."""
    from monitor.alerts import alert_view
    from monitor.store import transaction
    from monitor.store.runs import list_alerts

    settings = app.settings()
    if model is not None:
        settings.model(model)  # an unknown model is a usage error naming the configured ones
    with transaction(app.engine()) as session:
        rows = list_alerts(session, model=model, status=None if status == "all" else status)
        views = [{**alert_view(a), "last_fired_at": a.last_fired_at.isoformat(),
                  "last_run_id": a.last_run_id} for a in rows]
    if as_json:
        echo_json(views)
        return
    if not views:
        click.echo("no alerts")
        return
    for line in render(views):
        click.echo(line)


def render(views: list[dict]) -> list[str]:
    """The alert table: a header row, one line per alert, and what `fired` counts."""
    head = (f"{'id':>5}  {'status':<12} {'severity':<8} {'model':<16} {'kind':<18} "
            f"{'fired':>5}  {'last fired (UTC)':<19}  what")
    lines = [head]
    for v in views:
        last = str(v.get("last_fired_at") or "")[:19].replace("T", " ")
        lines.append(f"{v['id']:>5}  {v['status']:<12} {v['severity']:<8} {v['model']:<16} "
                     f"{v['kind']:<18} {v['fire_count']:>5}  {last:<19}  {v['title']}")
    lines.append("fired = how many runs raised the alert while it was live (repeats update it, "
                 "they do not open a new one)")
    return lines
