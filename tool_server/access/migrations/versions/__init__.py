"""The revisions: r0001 the tables as they were before migrations (created only where missing, so a state
dir from before Alembic upgrades in place), r0002 what replicas need to share the database."""
