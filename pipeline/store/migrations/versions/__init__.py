"""Alembic revisions of the inspection store."""
