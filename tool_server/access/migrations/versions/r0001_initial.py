"""The schema as first shipped: api_keys and audit_log. Creates only what is missing, so a database that
Toolbridge created before it used Alembic (metadata.create_all) is adopted as it is."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "api_keys" not in existing:
        op.create_table(
            "api_keys",
            sa.Column("id", sa.String(16), primary_key=True),
            sa.Column("name", sa.String(64), nullable=False),
            sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
            sa.Column("scopes", sa.Text, nullable=False),
            sa.Column("rate_limit_per_minute", sa.Float, nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        )
        op.create_index("ix_api_keys_name", "api_keys", ["name"])
    if "audit_log" not in existing:
        op.create_table(
            "audit_log",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("time", sa.DateTime(timezone=True), nullable=False),
            sa.Column("request_id", sa.String(128), nullable=False),
            sa.Column("key_id", sa.String(16), nullable=True),
            sa.Column("key_name", sa.String(64), nullable=True),
            sa.Column("tool", sa.String(128), nullable=False),
            sa.Column("model_version", sa.String(32), nullable=True),
            sa.Column("channel", sa.String(16), nullable=False),
            sa.Column("outcome", sa.String(16), nullable=False),
            sa.Column("status", sa.Integer, nullable=False),
            sa.Column("error", sa.String(64), nullable=True),
            sa.Column("latency_ms", sa.Float, nullable=False),
            sa.Column("input_bytes", sa.Integer, nullable=False),
            sa.Column("input_sha256", sa.String(64), nullable=False),
            sa.Column("inputs", sa.Text, nullable=True),
        )
        op.create_index("ix_audit_log_time", "audit_log", ["time"])
        op.create_index("ix_audit_log_request_id", "audit_log", ["request_id"])
        op.create_index("ix_audit_log_key_name", "audit_log", ["key_name"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("api_keys")
