"""Releasing the objects whose ``blobs`` rows are gone: the last step of every deletion.

Deletion is the commit protocol run backwards: metadata first (one transaction, which drops
the ``blobs`` rows nothing references any more), then, under the object area's exclusive lock,
the objects whose rows are gone. A crash between the two leaves unreferenced objects, which
``gc`` removes. Over SQL text (:mod:`~ckptstore.metadata.file_reads`), so that the store
(``files.commit.release_unreferenced``) and the CLI's quick path (``runs delete``) run the same
code; nothing here imports SQLAlchemy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..metadata.file_reads import Snapshot, existing_blobs
from .area import ObjectArea

log = logging.getLogger(__name__)

__all__ = ["release_objects"]


def release_objects(snapshot: Snapshot, area: ObjectArea | None, digests: Iterable[str]) -> int:
    """Delete the objects among ``digests`` that no ``blobs`` row names any more (read in a new
    ``snapshot()`` under the area's lock: a save that committed a row for one since keeps it)."""
    digests = list(dict.fromkeys(digests))
    # In an area shared across hosts only gc deletes, past its grace period (see commit_shared).
    if not digests or area is None or area.shared_across_hosts:
        return 0
    with area.deleting():
        with snapshot() as sql:
            alive = existing_blobs(sql, digests)
        n = area.delete(d for d in digests if d not in alive)
    if n:
        log.info("removed %d stored files no longer referenced", n)
    return n
