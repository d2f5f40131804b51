"""Alembic migrations of the read model (tables.py); one revision per change."""
