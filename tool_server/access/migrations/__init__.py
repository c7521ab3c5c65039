"""Alembic migrations of the tool server's own database (keys, audit, the key change counter).

Applied at start by `tool_server.access.migrate.upgrade`, one process at a time; each revision works on SQLite
and PostgreSQL. `versions/` holds one module per revision, oldest first by its `down_revision` chain.
"""
