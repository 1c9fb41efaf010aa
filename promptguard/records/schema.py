"""The record table, once, in SQLAlchemy Core: SQLite and PostgreSQL alike. Its history
is in `migrations/` (Alembic); a store is brought to the newest revision when it opens."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

__all__ = ["metadata", "records", "JSONText", "TABLE", "LEGACY_TABLE", "VERSION_TABLE"]

TABLE = "promptguard_records"
LEGACY_TABLE = "promptguard_audit"  # its name before records had a package of their own
# Alembic's bookkeeping, named so that it never meets an application's own `alembic_version`
VERSION_TABLE = "promptguard_records_version"


class JSONText(sa.types.TypeDecorator):
    """A JSON value kept as text (the same column type in both databases, and in stores
    written before this schema)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            return value


metadata = sa.MetaData()

records = sa.Table(
    TABLE, metadata,
    sa.Column("request_id", sa.Text, primary_key=True),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("endpoint", sa.Text, nullable=False),
    sa.Column("decision", sa.Text, nullable=False),
    sa.Column("stage", sa.Text, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("client", sa.Text),
    sa.Column("api_key", sa.Text),
    sa.Column("model", sa.Text),
    sa.Column("stream", sa.Boolean, nullable=False),
    sa.Column("summary", sa.Text),
    sa.Column("findings", JSONText),
    sa.Column("errors", JSONText),
    sa.Column("changes", JSONText),
    sa.Column("checks", JSONText),
    sa.Column("prompt_sha256", sa.Text),
    sa.Column("answer_sha256", sa.Text),
    sa.Column("prompt_text", sa.Text),
    sa.Column("answer_text", sa.Text),
    sa.Column("latency_ms", sa.Double),
    sa.Column("upstream_ms", sa.Double),
    sa.Column("worker", sa.Integer),
    sa.Index(f"{TABLE}_ts", "ts"),
    sa.Index(f"{TABLE}_decision", "decision", "ts"),
)
