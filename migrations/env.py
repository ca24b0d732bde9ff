"""Alembic environment for monitor.

The database comes from the monitor configuration, never from an alembic.ini:
`monitor db upgrade` hands over its engine; run by hand, the URL is read from
$MONITOR_CONFIG (or ./config.toml) with $MONITOR_DATABASE_URL taking precedence.
"""

from __future__ import annotations

from alembic import context

from monitor.store.engine import make_engine
from monitor.store.tables import Base, include_name

config = context.config
target_metadata = Base.metadata


def _engine():
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from monitor.config import load_settings

        url = load_settings().database.url
    return make_engine(url)


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url") or str(_engine().url)
    context.configure(
        url=url,
        target_metadata=target_metadata,
        include_name=include_name,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = _engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_name=include_name,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
