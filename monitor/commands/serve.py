"""`monitor serve`: run the HTTP intake alone (the daemon serves the same app)."""

from __future__ import annotations

import click

from monitor.cli import AppContext


@click.command()
@click.option("--host", default=None, help="Overrides [server] host.")
@click.option("--port", default=None, type=int, help="Overrides [server] port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes. Ingest is CPU-bound: use about one per core for throughput.")
@click.pass_obj
def serve(app: AppContext, host: str | None, port: int | None, workers: int) -> None:
    """Serve POST /v1/predictions, POST /v1/labels, GET /healthz and GET /metrics.

    The daemon (`monitor run`) serves the same endpoints; run this next to it (on the
    same database) for ingest-heavy deployments, e.g. with --workers.
    """
    from monitor.server import check_bind
    from monitor.server import serve as run

    settings = app.settings()
    check_bind(settings, host)
    run(settings, app.engine(), host, port, workers)
