"""Alembic environment: runs on the connection the Database object hands in."""
from alembic import context

from kvmplace.conductor.db import models

config = context.config
target_metadata = models.Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get('connection')
    if connection is None:
        from sqlalchemy import create_engine
        engine = create_engine(config.get_main_option('sqlalchemy.url') or 'sqlite://')
        with engine.begin() as conn:
            context.configure(connection=conn, target_metadata=target_metadata,
                              render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
