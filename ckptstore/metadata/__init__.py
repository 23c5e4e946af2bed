"""The metadata layer: schema, engine and transactions, schema versions, queries, writes, and
the mappers from rows to records.

This package's ``__init__`` imports nothing: ``metadata.quick`` and ``metadata.runs_query`` are
read by the CLI's fast path without SQLAlchemy.
"""
