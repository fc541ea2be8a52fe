"""Alembic environment for the registry, driven by ml.registry.migrate (no alembic.ini needed).

Online, ml.registry.migrate hands over an open connection in `config.attributes["connection"]`, inside
the transaction (and lock) it took, so checking and upgrading the revision is one atomic step.
Offline (`sql=True`), the dialect comes from `sqlalchemy.url` and SQL is written out instead.
"""

from alembic import context

from ml.registry.schema import Base

config = context.config
target_metadata = Base.metadata

if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    context.configure(connection=config.attributes["connection"], target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
