"""Alembic environment: the URL comes from the caller (`tenantry migrate`) or from Settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from tenantry.config import Settings
from tenantry.kit.db import make_engine
from tenantry.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url") or Settings().resolved_database_url()
    engine = make_engine(url, pool=False)
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


run_migrations_online()
