"""Alembic environment: the service passes an open connection (``app.identities.database.migrate``).

For ``alembic revision --autogenerate`` by hand: ``-x url=sqlite:///path`` names a database to compare with.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from app.identities.tables import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True)["url"]
    with create_engine(url).connect() as own:
        context.configure(connection=own, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
