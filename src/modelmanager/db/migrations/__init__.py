"""Alembic migrations of the run index; run by :meth:`modelmanager.db.RunStore.upgrade`."""
