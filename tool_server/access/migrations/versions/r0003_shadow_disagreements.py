"""Shadow traffic's disagreement examples (tool_server/shadow/examples.py): calls a shadow version answered
differently from the champion, the newest few per shadow version, for admins."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "shadow_disagreements",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tool", sa.String(128), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("champion_version", sa.String(32), nullable=False),
        sa.Column("shadow_version", sa.String(32), nullable=False),
        sa.Column("input_sha256", sa.String(64), nullable=False),
        sa.Column("inputs", sa.Text, nullable=True),
        sa.Column("champion_output", sa.Text, nullable=False),
        sa.Column("shadow_output", sa.Text, nullable=False),
    )
    op.create_index("ix_shadow_disagreements_version", "shadow_disagreements",
                    ["model", "shadow_version", "id"])


def downgrade() -> None:
    op.drop_index("ix_shadow_disagreements_version", "shadow_disagreements")
    op.drop_table("shadow_disagreements")
