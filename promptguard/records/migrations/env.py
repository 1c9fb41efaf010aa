"""Alembic environment for the record store: run on the connection the store hands over
(`config.attributes["connection"]`), never from an alembic.ini."""

from __future__ import annotations

from alembic import context

from promptguard.records.schema import VERSION_TABLE, metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
