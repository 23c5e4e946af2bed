"""The metadata layer: schema, engine and transactions, schema versions, queries, writes, and
the mappers from rows to records.

This package's ``__init__`` imports nothing: ``metadata.quick``, ``quick_reader`` and ``reads``
are what the CLI's read commands use on a SQLite store, without SQLAlchemy.
"""
