"""`monitor serve`: run the HTTP intake alone (the daemon serves the same app)."""

from __future__ import annotations

import click

from monitor.cli import AppContext


@click.command()
@click.option("--host", default=None, help="Overrides [server] host.")
@click.option("--port", default=None, type=int, help="Overrides [server] port.")
@click.pass_obj
def serve(app: AppContext, host: str | None, port: int | None) -> None:
    """Serve POST /v1/predictions, POST /v1/labels and GET /healthz."""
    from monitor.server import check_bind
    from monitor.server import serve as run

    settings = app.settings()
    check_bind(settings, host)
    run(settings, app.engine(), host, port)
