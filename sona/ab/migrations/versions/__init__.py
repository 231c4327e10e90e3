"""Alembic revision scripts of the A/B store, oldest first."""
