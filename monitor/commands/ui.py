"""`monitor ui`: serve the dashboard alone (the daemon serves it too, at /ui/)."""

from __future__ import annotations

import click

from monitor.cli import AppContext


@click.command()
@click.option("--host", default=None, help="Overrides [server] host.")
@click.option("--port", default=None, type=int, help="Overrides [server] port.")
@click.pass_obj
def ui(app: AppContext, host: str | None, port: int | None) -> None:
    """Serve the dashboard at http://HOST:PORT/ui/ until interrupted.

    Beyond localhost people sign in with MONITOR_UI_TOKEN (and a name) or as a named
    user of MONITOR_UI_USERS; on localhost a name is still asked before any action.
    """
    import logging

    import uvicorn

    from monitor.store import require_current
    from monitor.ui import create_ui_app

    settings = app.settings()
    host = host or settings.server.host
    port = port or settings.server.port
    engine = app.engine()
    require_current(engine)
    web = create_ui_app(settings, engine, host)
    logging.getLogger(__name__).info("dashboard on http://%s:%d/ui/", host, port)
    click.echo(f"dashboard on http://{host}:{port}/ui/ (Ctrl-C stops)", err=True)
    uvicorn.run(web, host=host, port=port, log_config=None, access_log=False)
