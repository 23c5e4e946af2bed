"""Deleting a run: its rows in one transaction, then the objects nothing references any more.

Written over SQL text (:mod:`~ckptstore.metadata.deletes`, :mod:`~ckptstore.files.release`) so
that ``Store.delete_run`` and the CLI's quick path (``runs delete`` on a SQLite store, through
``sqlite3``) run the very same steps; nothing here imports SQLAlchemy.
"""

from __future__ import annotations

from ..files.area import ObjectArea
from ..files.release import release_objects
from ..metadata import deletes
from ..metadata.file_reads import Snapshot, Transaction

__all__ = ["delete_run"]


def delete_run(write: Transaction, read: Snapshot, area: ObjectArea | None, name: str) -> int:
    """Delete the run ``name`` with its metrics, checkpoints and exports (refused while an alias
    points at one of them), then release the objects whose rows went; returns the number of
    checkpoints deleted. ``write()``/``read()`` open a transaction / a read of the database."""
    with write() as sql:
        done = deletes.delete_run(sql, name)
    release_objects(read, area, done.freed)
    return done.checkpoints
