"""Alembic environment: always run programmatically on a connection we hand over.

`gateway.store.migrate` passes a synchronous connection (from `AsyncConnection.run_sync`) in
`config.attributes["connection"]`, so the same code migrates SQLite and PostgreSQL.
"""

from alembic import context

from gateway.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
