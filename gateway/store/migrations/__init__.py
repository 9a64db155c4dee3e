"""Alembic migrations (revisions in `versions/`); applied by `gateway.store.migrate`."""
