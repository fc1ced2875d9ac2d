"""Alembic revisions of the run index, oldest first."""
