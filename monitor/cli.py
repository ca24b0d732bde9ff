"""The `monitor` command line.

Commands live in `monitor/commands/` and are imported only when invoked (or when
their help is shown), so `monitor --help` never imports TensorFlow or Evidently.
Every command honours the global ``--config PATH`` (default ./config.toml, or
$MONITOR_CONFIG).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import click

from monitor import __version__
from monitor.errors import MonitorError

# name -> (module:attribute, one-line help shown by `monitor --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("monitor.commands.config_cmd:config", "Check and print the configuration."),
    "db": ("monitor.commands.db:db", "Create or upgrade the database schema (Alembic)."),
    "baseline": ("monitor.commands.baseline:baseline", "Compute and store a model's baseline."),
    "once": ("monitor.commands.once:once", "Run one model once for one window."),
    "backfill": ("monitor.commands.backfill:backfill", "Compute every window of a time range."),
    "run": ("monitor.commands.run:run", "Run the daemon (scheduler, ingest, alerts)."),
    "why": ("monitor.commands.why:why", "Explain the model's decision for one request."),
    "report": ("monitor.commands.report:report", "Write an HTML report of a run."),
    "alerts": ("monitor.commands.alerts:alerts", "List alerts."),
    "alert": ("monitor.commands.alert_cmd:alert", "Answer an alert: ack, expected, false-alarm, retrain."),
    "demo": ("monitor.commands.demo:demo", "Train a model, replay traffic with drift, show it all."),
    "ingest": ("monitor.commands.ingest:ingest", "Load prediction files into the log."),
    "serve": ("monitor.commands.serve:serve", "Serve the HTTP intake alone."),
    "policy": ("monitor.commands.policy:policy", "List or revoke policies set from feedback."),
    "status": ("monitor.commands.status:status", "Per model: last run, open alerts, policies."),
    "labels": ("monitor.commands.labels:labels", "Revise past windows' performance as labels arrive."),
    "performance": (
        "monitor.commands.performance:performance",
        "Per window: realized (revised) and estimated performance.",
    ),
    "card": ("monitor.commands.card:card", "Print or write a model's living model card."),
    "ui": ("monitor.commands.ui:ui", "Serve the dashboard (web UI) alone."),
}

log = logging.getLogger(__name__)


@dataclass
class AppContext:
    """What every command gets: the config path, and settings/engine loaded on demand."""

    config_path: str | None
    log_level: str | None
    _settings: Any = field(default=None, repr=False)
    _engine: Any = field(default=None, repr=False)

    def settings(self) -> Any:
        if self._settings is None:
            from monitor import logs
            from monitor.config import load_settings

            self._settings = load_settings(self.config_path)
            cfg = self._settings.logging
            logs.configure(self.log_level or cfg.level, cfg.format)
            token = self._settings.secrets.ingest_token
            logs.register_secret(token.get_secret_value() if token else None)
        return self._settings

    def engine(self, *, require_current: bool = True) -> Any:
        """The database engine; refuses a schema that is not at head unless told not to."""
        if self._engine is None:
            from monitor.store import make_engine

            settings = self.settings()
            self._engine = make_engine(settings.database.url, echo=settings.database.echo)
        if require_current:
            from monitor.store import require_current as check

            check(self._engine)
        return self._engine


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target[0].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # the short help comes from the registry, so listing imports nothing
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    envvar="MONITOR_CONFIG",
    type=click.Path(dir_okay=False),
    default=None,
    help="Configuration file. [default: ./config.toml, or $MONITOR_CONFIG]",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default=None,
    help="Overrides [logging] level from the configuration.",
)
@click.version_option(__version__, prog_name="monitor")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, log_level: str | None) -> None:
    """Keep TensorFlow models in production transparent and trustworthy.

    monitor samples the predictions a model served, explains them with feature
    attributions, measures drift against a baseline, stores every result, and
    alerts people in Slack, whose answers change what it does next.

    Quick start: `make demo`. Configuration reference: README.md.
    """
    ctx.obj = AppContext(config_path, log_level.upper() if log_level else None)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the CLI and turns MonitorErrors into a message and an exit code."""
    # TensorFlow's C++ start-up banner is noise for operators (set the variable to see it)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        code = cli.main(args=argv, prog_name="monitor", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except MonitorError as err:
        for line in str(err).splitlines() or [type(err).__name__]:
            click.echo(f"error: {line}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    # without standalone mode click returns the code of a `raise Exit(n)`
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
