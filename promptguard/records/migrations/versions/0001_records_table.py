"""The record table, and stores written before migrations existed.

A new store gets the table and its indexes. A store written by an earlier version
(table `promptguard_audit`, created without Alembic, perhaps without the newer
columns) is renamed and gains the columns it lacks; its rows are kept.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from promptguard.records.schema import LEGACY_TABLE, TABLE, records

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    tables = set(sa.inspect(bind).get_table_names())
    if TABLE not in tables and LEGACY_TABLE in tables:
        op.rename_table(LEGACY_TABLE, TABLE)
        tables.add(TABLE)
        for index in (f"{LEGACY_TABLE}_ts", f"{LEGACY_TABLE}_decision"):
            op.execute(f"DROP INDEX IF EXISTS {index}")
    if TABLE not in tables:
        records.create(bind)
        return
    have = {c["name"] for c in sa.inspect(bind).get_columns(TABLE)}
    for column in records.columns:
        if column.name not in have:
            op.add_column(TABLE, sa.Column(column.name, column.type, nullable=True))
    indexes = {i["name"] for i in sa.inspect(bind).get_indexes(TABLE)}
    for index in records.indexes:
        if index.name not in indexes:
            index.create(bind)


def downgrade() -> None:
    op.drop_table(TABLE)
