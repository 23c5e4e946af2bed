"""Alembic environment: runs migrations on the connection ckptstore hands in.

``ckptstore.metadata.versions`` passes an open connection in ``config.attributes["connection"]`` so that the
upgrade runs inside the caller's lock; the ``alembic`` command line (``-x url=...`` or the
``sqlalchemy.url`` option) gets an engine of its own. ``render_as_batch`` lets SQLite alter
tables by copying them, so later revisions can change columns and constraints on both backends.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from ckptstore.metadata.schema import metadata

config = context.config
target_metadata = metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
