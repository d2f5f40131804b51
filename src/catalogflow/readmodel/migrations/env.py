"""Alembic's environment, run by ``store.upgrade`` (no alembic.ini): the caller
hands over an open connection in ``config.attributes["connection"]``."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from catalogflow.readmodel.tables import metadata


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # `alembic -x url=...` from a shell, for writing a new revision by hand.
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("give the database: alembic -x url=sqlite:///read-model.sqlite ...")
    engine = sa.create_engine(url)
    with engine.begin() as own:
        _run(own)


_main()
