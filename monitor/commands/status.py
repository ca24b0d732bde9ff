"""`monitor status`: per model the last run, open alerts, active policies, retrain flag."""

from __future__ import annotations

import json
from typing import Any

import click

from monitor.cli import AppContext


def collect(session: Any, models: list[str], now: Any) -> list[dict[str, Any]]:
    """One plain dict per model: last run, live alerts, active policies, retrain flag."""
    from monitor.policies import active_policies
    from monitor.store import feedback as repo
    from monitor.store.alerts import live_alerts
    from monitor.store.runs import latest_run, models_with_runs

    known = set(models) | set(models_with_runs(session))
    out = []
    for model in sorted(known):
        run = latest_run(session, model)
        alerts = live_alerts(session, model)
        policies = repo.live_policies(session, model, now)
        out.append(
            {
                "model": model,
                "last_run": None
                if run is None
                else {
                    "id": run.id,
                    "status": run.status,
                    "window_start": run.window_start.isoformat(),
                    "window_end": run.window_end.isoformat(),
                    "rows": run.rows,
                    "error": run.error,
                },
                "alerts": [
                    {
                        "id": a.id,
                        "kind": a.kind,
                        "feature": a.feature,
                        "status": a.status,
                        "severity": a.severity,
                        "title": a.title,
                    }
                    for a in alerts
                ],
                "policies": [
                    {
                        "id": p.id,
                        "kind": p.kind,
                        "alert_kind": p.alert_kind,
                        "feature": p.feature,
                        "value": p.value,
                        "until": p.until.isoformat() if p.until else None,
                        "created_by": p.created_by,
                    }
                    for p in policies
                ],
                "retrain_requested": active_policies(session, model, now).retrain_requested,
            }
        )
    return out


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def status(app: AppContext, as_json: bool) -> None:
    """Per model: the last run, windows never computed (gaps), open alerts, active
    policies, and the retrain flag."""
    from monitor import clock
    from monitor.store.engine import transaction

    settings = app.settings()
    from datetime import timedelta

    from monitor.windows import gap_report

    horizon = timedelta(days=settings.scheduler.retention_days)
    with transaction(app.engine()) as session:
        report = collect(session, [m.name for m in settings.models], clock.utcnow())
        configured = {m.name: m for m in settings.models}
        for item in report:
            model = configured.get(item["model"])
            item["gaps"] = gap_report(session, model, horizon) if model is not None else None
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    if not report:
        click.echo("no models configured and no runs recorded")
    for item in report:
        flag = "  RETRAIN REQUESTED" if item["retrain_requested"] else ""
        click.echo(f"{item['model']}{flag}")
        run = item["last_run"]
        click.echo(
            "  last run: none"
            if run is None
            else f"  last run {run['id']}: {run['status']}, "
            f"{run['window_start']} .. {run['window_end']}, "
            f"{run['rows']} rows" + (f", error: {run['error']}" if run["error"] else "")
        )
        gaps = item.get("gaps")
        if gaps:
            spans = ", ".join(f"{s} .. {e}" for s, e in gaps["ranges"][:3])
            click.echo(f"  GAPS: {gaps['missed_windows']} window(s) never computed ({spans})")
            click.echo(f"    compute them with: {gaps['backfill']}")
        click.echo(f"  open alerts: {len(item['alerts'])}")
        for a in item["alerts"]:
            click.echo(f"    #{a['id']} [{a['status']}] {a['severity']} {a['title']}")
        click.echo(f"  active policies: {len(item['policies'])}")
        for p in item["policies"]:
            target = "/".join(x for x in (p["alert_kind"], p["feature"]) if x) or "model"
            click.echo(
                f"    #{p['id']} {p['kind']} {target}"
                + (f" until {p['until']}" if p["until"] else "")
                + f" (by {p['created_by']})"
            )
