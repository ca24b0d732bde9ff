"""`monitor baseline MODEL`: compute and store a new versioned baseline."""

from __future__ import annotations

from pathlib import Path

import click

from monitor.cli import AppContext


@click.command()
@click.argument("model")
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV or Parquet with the feature columns. [default: models.baseline.data]")
@click.option("--by", "created_by", default="cli", show_default=True, help="Who made it (audit trail).")
@click.pass_obj
def baseline(app: AppContext, model: str, data: Path | None, created_by: str) -> None:
    """Compute and store a new baseline for MODEL and make it the active one.

    The baseline keeps a bounded reference sample, per-feature statistics, the
    model's predictions and attributions on it, global importance, and the
    performance on it when the data has the label column.
    """
    from tqdm import tqdm

    from monitor.baseline import build_baseline

    settings = app.settings()
    engine = app.engine()
    steps = ["loading model", "predicting", "explaining", "statistics", "storing"]
    with tqdm(total=len(steps), desc=f"baseline {model}", unit="step",
              disable=None, file=click.get_text_stream("stderr")) as bar:
        def progress(message: str) -> None:
            bar.set_postfix_str(message)
            if message != steps[0] or bar.n:
                bar.update(1)

        summary = build_baseline(settings, engine, model, data, created_by=created_by, progress=progress)
        bar.update(bar.total - bar.n)
    click.echo(f"baseline v{summary.version} of {model} is active: {summary.rows} rows from {summary.source}")
    click.echo(f"attributions: {summary.attribution_method}")
    for note in summary.notes:
        click.echo(f"warning: {note}", err=True)
    if summary.importance:
        known = {k: v for k, v in summary.importance.items() if v is not None}
        top = sorted(known.items(), key=lambda kv: -kv[1])[:5]
        if top:
            click.echo("most important features: " + ", ".join(f"{k} ({v:.3g})" for k, v in top))
        unknown = sorted(set(summary.importance) - set(known))
        if unknown:
            click.echo(f"warning: no importance could be computed for {unknown}: attribution drift "
                       "ignores them", err=True)
    if summary.performance:
        click.echo("performance: " + ", ".join(
            f"{k} {v:.4g}" for k, v in summary.performance.items() if isinstance(v, int | float)))
