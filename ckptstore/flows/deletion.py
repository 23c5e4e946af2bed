"""Deleting checkpoints: by hand, and by a run's retention rule.

**Deletion is the commit protocol run backwards:** metadata first (one transaction, which also
drops the ``blobs`` rows nothing references any more), then, under the object area's exclusive
lock, the objects whose rows are gone (``files.commit.release_unreferenced``). A crash between
the two leaves unreferenced objects, which ``gc`` removes. A checkpoint an alias points at is
never deleted here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .. import retry
from ..files.commit import release_unreferenced
from ..metadata import queries as Q
from ..metadata import writes as W
from ..metadata.mappers import aware
from ..retention import Candidate, Retention, plan
from .backend import Backend

log = logging.getLogger(__name__)


def delete_checkpoints(backend: Backend, ids: Sequence[int]) -> list[int]:
    """Delete checkpoints by id, skipping any an alias points at; returns the ids deleted."""
    if not ids:
        return []

    def once() -> tuple[list[int], list[str]]:
        with backend.db.write() as conn:
            pinned = Q.pinned_checkpoints(conn, ids)
            doomed = [i for i in ids if i not in pinned]
            return doomed, (W.delete_checkpoints(conn, doomed) if doomed else [])

    # PostgreSQL: a concurrent save started referencing a blob we were dropping (foreign key).
    # Its commit makes the blob referenced again; a new transaction recomputes and sees that.
    doomed, freed = retry.call(once, when=retry.is_race, what="delete checkpoints")
    release_unreferenced(backend.db, backend.area, freed)
    return doomed


def apply_retention(backend: Backend, run_id: int) -> list[int]:
    """Apply the run's retention rule; returns the steps deleted."""
    with backend.db.read() as conn:
        data, run_created = Q.run_retention(conn, run_id)
        policy = Retention.from_json(data)
        if not policy.active:
            return []
        rows = Q.checkpoint_rows(conn, run_id)
        pinned = Q.pinned_checkpoints(conn, run_id=run_id)
        metric_at: dict[int, float] = {}
        if policy.keep_best is not None:
            metric_at = Q.metric_values(conn, run_id, policy.keep_best.metric, [r.step for r in rows])
    cands = [
        Candidate(id=r.id, step=r.step, created=aware(r.created_at).timestamp(), kept=r.state == "kept", pinned=r.id in pinned)
        for r in rows
    ]
    p = plan(cands, policy, metric_at, since=run_created.timestamp())
    if p.newly_kept:
        with backend.db.write() as conn:
            W.mark_kept(conn, p.newly_kept)
    by_id = {r.id: r.step for r in rows}
    deleted = delete_checkpoints(backend, p.delete)
    if deleted:
        log.info("retention deleted %d checkpoints of run %d", len(deleted), run_id)
    return sorted(by_id[i] for i in deleted)
