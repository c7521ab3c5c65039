"""What replicas sharing one database need: a key change counter each replica polls (its key cache reloads
when it moves), and a record id per audit row, unique, so a batch retried after a lost commit acknowledgement
is written once."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    state = op.create_table(
        "access_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("key_version", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(state, [{"id": 1, "key_version": 1}])
    op.add_column("audit_log", sa.Column("record_id", sa.String(32), nullable=True))  # null on older rows
    op.create_index("ux_audit_log_record_id", "audit_log", ["record_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_audit_log_record_id", "audit_log")
    op.drop_column("audit_log", "record_id")
    op.drop_table("access_state")
