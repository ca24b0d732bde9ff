"""`monitor performance MODEL [--json]`: per window, realized and estimated performance."""

from __future__ import annotations

import json
from typing import Any

import click

from monitor.cli import AppContext


@click.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document per window (JSON lines).")
@click.pass_obj
def performance(app: AppContext, model: str, as_json: bool) -> None:
    """Per stored window of MODEL, oldest first: realized metrics (with their revision
    and the labelled share of the window) and estimated metrics (assuming no concept
    drift)."""
    from monitor.store.engine import transaction
    from monitor.store.revisions import model_performance

    app.settings().model(model)
    with transaction(app.engine()) as session:
        windows = [window_document(run, rev) for run, rev in model_performance(session, model)]
    if as_json:
        for doc in windows:
            click.echo(json.dumps(doc))
        return
    if not windows:
        click.echo(f"no computed window for {model}")
        return
    click.echo(f"{'window start':<26} {'rev':>3} {'labelled':>9} {'coverage':>8}  realized | estimated")
    for doc in windows:
        click.echo(
            f"{doc['window']['start']:<26} {_text(doc['revision']):>3} {doc['labelled_rows']:>9} "
            f"{_pct(doc['coverage']):>8}  {_metrics(doc['realized'], 'current')} | "
            f"{_metrics((doc['estimated'] or {}).get('metrics'), 'value')}"
        )
    click.echo("estimated = CBPE/DLE from inputs and scores alone, assuming no concept drift")


def window_document(run: Any, revision: Any) -> dict[str, Any]:
    """One window's line: its latest revision's realized metrics and the run's estimate."""
    perf = (run.summary or {}).get("performance") or {}
    stored = revision.metrics if revision is not None else {}
    return {
        "run_id": run.id,
        "window": {"start": run.window_start.isoformat(), "end": run.window_end.isoformat()},
        "revision": revision.revision if revision is not None else None,
        "revised_at": revision.computed_at.isoformat() if revision is not None else None,
        "labelled_rows": revision.labelled_rows if revision is not None else perf.get("labelled_rows", 0),
        "coverage": revision.coverage if revision is not None else None,
        "realized": stored.get("realized") if revision is not None else perf.get("realized"),
        "calibration": stored.get("calibration") if revision is not None else perf.get("calibration"),
        "estimated": perf.get("estimated"),
    }


def _metrics(metrics: dict[str, Any] | None, key: str) -> str:
    if not metrics:
        return "-"
    shown = [
        f"{name} {m[key]:.3f}" for name, m in metrics.items()
        if name in ("accuracy", "roc_auc", "mae", "rmse") and m.get(key) is not None
    ]
    return ", ".join(shown) or "-"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _text(value: Any) -> str:
    return "-" if value is None else str(value)
