"""Persistence: one schema (SQLAlchemy Core) and Alembic migrations for SQLite and PostgreSQL."""

from gateway.store.store import Store, open_store

__all__ = ["Store", "open_store"]
