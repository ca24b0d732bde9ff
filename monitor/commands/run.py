"""`monitor run`: the daemon."""

from __future__ import annotations

import click

from monitor.cli import AppContext


@click.command()
@click.pass_obj
def run(app: AppContext) -> None:
    """Run the daemon: scheduled runs, alert delivery, ingest and health endpoints.

    Serves POST /v1/predictions, POST /v1/labels, GET /healthz, GET /metrics (and
    POST /slack/events in Slack HTTP mode) on [server] host:port. Stops gracefully
    on SIGTERM or Ctrl-C. Refuses a database that is not at the head revision, and
    refuses to listen beyond localhost without MONITOR_INGEST_TOKEN.
    """
    from monitor.daemon import Daemon

    settings = app.settings()
    Daemon(settings, app.engine()).run()
