"""Alembic migrations of the run index; run by :meth:`modelmanager.index.RunStore.upgrade`."""
