"""Disagreement examples: calls the champion and the shadow version answered differently, kept for admins in
the tool server's database (the audit store), at most N per shadow version (the newest).

Each holds the input's SHA-256 (the same hash as the call's audit record) and both answers; the inputs
themselves only when TOOLBRIDGE_AUDIT_INPUTS allows it, and never for a restricted tool. The table is the
audit store's (same engine), created by the migration `access/migrations/versions/r0003_shadow_disagreements`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = ["read_examples", "shadow_disagreements", "store_examples"]

metadata = sa.MetaData()

shadow_disagreements = sa.Table(
    "shadow_disagreements", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("tool", sa.String(128), nullable=False),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("champion_version", sa.String(32), nullable=False),
    sa.Column("shadow_version", sa.String(32), nullable=False),
    sa.Column("input_sha256", sa.String(64), nullable=False),
    sa.Column("inputs", sa.Text, nullable=True),  # only if TOOLBRIDGE_AUDIT_INPUTS=true, never if restricted
    sa.Column("champion_output", sa.Text, nullable=False),  # JSON
    sa.Column("shadow_output", sa.Text, nullable=False),  # JSON; {"error": ...} when the shadow failed
    sa.Index("ix_shadow_disagreements_version", "model", "shadow_version", "id"),
)


def _of(model: str, shadow_version: str) -> sa.ColumnElement[bool]:
    columns = shadow_disagreements.c
    return sa.and_(columns.model == model, columns.shadow_version == shadow_version)


def store_examples(engine: Engine, rows: Sequence[dict[str, Any]], keep: int) -> None:
    """Insert `rows`, then trim each shadow version they touch to its newest `keep` examples."""
    if not rows:
        return
    with engine.begin() as conn:
        conn.execute(shadow_disagreements.insert(), list(rows))
        for model, version in sorted({(r["model"], r["shadow_version"]) for r in rows}):
            mine = _of(model, version)
            newest = (sa.select(shadow_disagreements.c.id).where(mine)
                      .order_by(shadow_disagreements.c.id.desc()).limit(keep))
            kept = [row[0] for row in conn.execute(newest)]
            conn.execute(shadow_disagreements.delete().where(mine, shadow_disagreements.c.id.not_in(kept)))


def read_examples(engine: Engine, model: str, shadow_version: str, limit: int = 20) -> list[dict[str, Any]]:
    """The newest examples of one shadow version, newest first."""
    query = (sa.select(shadow_disagreements)
             .where(_of(model, shadow_version))
             .order_by(shadow_disagreements.c.id.desc()).limit(limit))
    with engine.connect() as conn:
        rows = list(conn.execute(query))
    examples = []
    for row in rows:
        values = dict(row._mapping)
        moment: datetime = values["time"]
        examples.append({
            "time": (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment).isoformat(),
            "champion_version": values["champion_version"], "input_sha256": values["input_sha256"],
            "inputs": json.loads(values["inputs"]) if values["inputs"] is not None else None,
            "champion_output": json.loads(values["champion_output"]),
            "shadow_output": json.loads(values["shadow_output"])})
    return examples
