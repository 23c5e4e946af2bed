"""Alembic environment of ckptstore, shipped in the wheel as ``ckptstore.migrations``."""
