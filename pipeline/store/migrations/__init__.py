"""Alembic migrations of the inspection store (run by pipeline.store.db.upgrade)."""
