"""`monitor demo`: the whole loop on embedded data (what `make demo` runs)."""

from __future__ import annotations

import click

from monitor.cli import AppContext


@click.command()
@click.option("--keep", is_flag=True, help="Keep the previous demo output instead of starting fresh.")
@click.pass_obj
def demo(app: AppContext, keep: bool) -> None:
    """Train a model on bundled data, baseline it, replay six hours of traffic with a
    shift injected part-way, run the monitoring cycles, print the alerts, a `why`
    answer and the report path. Uses the first model of the configuration (the
    repository's config.toml is set up for it) and writes where it points."""
    from monitor.demo import run_demo

    settings = app.settings()
    if not settings.models:
        raise click.UsageError("the configuration has no [[models]]; use the repository's config.toml")
    run_demo(settings, echo=click.echo, fresh=not keep)
