"""`monitor report RUN_ID --out FILE.html`."""

from __future__ import annotations

from pathlib import Path

import click

from monitor.cli import AppContext


@click.command()
@click.argument("run_id", type=int)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the HTML page.",
)
@click.option(
    "--no-evidently", is_flag=True, help="Leave out Evidently's interactive report (smaller, faster)."
)
@click.pass_obj
def report(app: AppContext, run_id: int, out: Path, no_evidently: bool) -> None:
    """Write an HTML report of run RUN_ID: drift, attribution shift, performance,
    charts, the alert and feedback history, and Evidently's drift report."""
    from monitor.report import build_report

    page = build_report(app.settings(), app.engine(), run_id, evidently=not no_evidently)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    click.echo(f"report of run {run_id} written to {out} ({len(page) // 1024} KiB)")
