"""Alembic migrations of the corrections store (applied by emnist_draw.store.upgrade)."""
