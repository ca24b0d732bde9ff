"""`monitor db upgrade|current`: the database schema, through Alembic only."""

from __future__ import annotations

import click

from monitor.cli import AppContext
from monitor.config import mask_url


@click.group()
def db() -> None:
    """Create or upgrade the database schema (Alembic)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@click.pass_obj
def upgrade(app: AppContext, revision: str) -> None:
    """Create every table, or bring an existing database up to date."""
    from monitor.store import migrate

    engine = app.engine(require_current=False)
    before = migrate.current_revision(engine)
    after = migrate.upgrade(engine, revision)
    url = mask_url(str(engine.url))
    if before == after:
        click.echo(f"{url}: already at revision {after}")
    else:
        click.echo(f"{url}: upgraded from {before or 'empty'} to {after}")


@db.command("current")
@click.pass_obj
def current(app: AppContext) -> None:
    """Print the database's revision and whether it is the head. Exits 3 if behind."""
    from monitor.store import migrate

    engine = app.engine(require_current=False)
    rev = migrate.current_revision(engine)
    head = migrate.head_revision()
    state = "(head)" if rev == head else f"(behind: head is {head}; run `monitor db upgrade`)"
    click.echo(f"{mask_url(str(engine.url))}: {rev or 'empty'} {state}")
    if rev != head:
        raise click.exceptions.Exit(3)
