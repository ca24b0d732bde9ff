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

    app.settings()
    with transaction(app.engine()) as session:
        rows = list_alerts(session, model=model, status=None if status == "all" else status)
        views = [{**alert_view(a), "last_fired_at": a.last_fired_at.isoformat(),
                  "last_run_id": a.last_run_id} for a in rows]
    if as_json:
        echo_json(views)
        return
    if not views:
        click.echo("no alerts")
    for v in views:
        click.echo(f"{v['id']:>5}  {v['status']:<12} {v['severity']:<8} {v['model']:<16} "
                   f"{v['kind']:<18} x{v['fire_count']:<3} {v['title']}")
