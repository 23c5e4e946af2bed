"""The commit protocol: files and metadata land together, or neither does.

* :func:`commit_files` puts digested staging files into the object area and runs the caller's
  inserts in **one** database transaction together with the ``blobs`` rows. That transaction is
  the commit point of a save or a freeze: before it nothing is visible (every read starts from a
  committed row), after it everything is. A crash before it leaves at most a staging directory
  and objects no row names; ``gc`` removes both.
* :func:`release_unreferenced` deletes objects whose ``blobs`` row is gone, under the area's
  exclusive lock, re-checking the database first, so a concurrent save that re-uses the
  content wins. Deletion is the commit protocol run backwards: rows first, then objects.
* :func:`check_files` verifies stored files before they are read.

The ``faults`` points (``staged`` is the caller's, then ``moving``, ``moved``, ``committed``) let
the crash tests kill a save at each step of this protocol.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection

from .. import retry
from ..errors import ConflictError, CorruptFileError, ObjectStoreError
from ..faults import fault
from ..metadata import intents as I
from ..metadata import pieces as P
from ..metadata import queries as Q
from ..metadata import writes as W
from ..metadata.engine import Database
from ..records import FileInfo
from .area import ObjectArea, StoredFile
from .checking import check_stored
from .digest import digest_file
from .pieces import DataPlan, Extent, confirm, hash_stored, pack_assembled, store_assembled
from .release import release_objects

log = logging.getLogger(__name__)
T = TypeVar("T")
Progress = Callable[[int, int], None] | None


def digest_staged(paths: Sequence[Path]) -> list[tuple[Path, str, int]]:
    """Digest staging files (before taking any lock: hashing is the slow part)."""
    return [(p, *digest_file(p)) for p in paths]


def commit_files(
    db: Database,
    area: ObjectArea,
    staged: Sequence[tuple[Path, str, int]],
    write_rows: Callable[[Connection, list[StoredFile]], T],
    plans: Mapping[str, DataPlan] | None = None,
) -> T:
    """Put ``staged`` files into the area and commit them with the caller's rows, atomically.

    ``plans`` (data file name -> pieces and tensors, ``files.pieces``) lets a data file whose
    pieces are partly stored already be stored as extents over them plus one pack of the rest;
    its per-tensor digests are recorded either way. The caller's rows see the file's whole
    digest and size in both cases.
    """
    if area.shared_across_hosts:
        return commit_shared(db, area, staged, write_rows, plans)
    plans = plans or {}
    with area.writing():
        recorded, assembled, fresh, located, candidates = _reuse_candidates(db, staged, plans)
        # A crc32c match is a candidate only: hash both sides to confirm (under the shared lock,
        # so the stored side cannot be deleted meanwhile). A full training step has none.
        fills = _confirm(area, fresh, candidates, located)
        with db.read() as conn:
            used = P.blob_sizes(conn, {obj for obj, _ in located.values()})
        stored: list[StoredFile] = []
        layouts: dict[str, list[Extent] | None] = {}
        packs: list[StoredFile] = []
        for p, d, n in staged:
            plan = plans.get(p.name)
            if d in assembled:  # the same bytes saved before, assembled: nothing new to store
                p.unlink()
                stored.append(StoredFile(d, n, ""))
                fault("moving")
                continue
            result = store_assembled(area, p, plan, located, {}) if plan is not None and d not in recorded else None
            if result is None:
                stored.append(area.put(p, d, n, recorded.get(d)))
                layouts[d] = None
            else:
                extents, pack = result
                stored.append(StoredFile(d, n, ""))
                layouts[d] = extents
                if pack is not None:
                    packs.append(pack)
            fault("moving")
        fault("moved")
        with db.write() as conn:
            _record_files(conn, [*packs, *stored], layouts, used, area.size_of, fills, staged, plans)
            result_rows = write_rows(conn, stored)
        fault("committed")
        return result_rows


def _reuse_candidates(
    db: Database, staged: Sequence[tuple[Path, str, int]], plans: Mapping[str, DataPlan]
) -> tuple[dict[str, str | None], dict[str, list[Extent]], list[tuple[Path, DataPlan]], dict[str, tuple[str, int]], dict]:
    """(recorded signatures, layouts of files already stored assembled, fresh data files with
    their plans, pieces located by digest, crc32c candidates), read in one transaction."""
    with db.read() as conn:
        recorded = Q.blob_signatures(conn, [d for _, d, _ in staged])
        assembled = P.extents(conn, [d for _, d, _ in staged])
        fresh = [(p, plans[p.name]) for p, d, _ in staged if p.name in plans and d not in recorded and d not in assembled]
        wanted = [pc[2] for _, plan in fresh for pc in plan.pieces if pc[2] is not None]
        located = P.locate_pieces(conn, wanted) if wanted else {}
        weak = [(pc[3], pc[1]) for _, plan in fresh for pc in plan.pieces if pc[2] is None and pc[3] is not None]
        candidates = P.crc_candidates(conn, weak) if weak else {}
    return recorded, assembled, fresh, located, candidates


def _confirm(
    area: ObjectArea, fresh: list[tuple[Path, DataPlan]], candidates: dict, located: dict[str, tuple[str, int]]
) -> list[tuple[str, int, int, str]]:
    """Hash each candidate piece on both sides; a match joins ``located``. Returns the digests
    learnt for stored pieces that had none (to record)."""
    fills: list[tuple[str, int, int, str]] = []
    for p, plan in fresh:
        for pc in plan.pieces:
            if pc[2] is not None or (pc[3], pc[1]) not in candidates:
                continue
            mine = confirm(p, plan, pc[0], pc[1])
            for fd, off, their, obj, oo in candidates[(pc[3], pc[1])]:
                if their is None:
                    try:
                        their = hash_stored(area, obj, oo, pc[1])
                    except (CorruptFileError, OSError):
                        continue  # a damaged or missing object is no source: store the bytes again
                    if their != mine:
                        # Equal crc32c and size but other bytes: far likelier damage on
                        # disk than a collision, so this digest is not recorded as theirs.
                        continue
                    fills.append((fd, off, pc[1], their))
                if their == mine:
                    located[mine] = (obj, oo)
                    break
    return fills


class _Busy(Exception):
    """Rolls back an intent transaction that found a deletion in progress."""


#: A claim of a gc found dead is honoured this long after we first see it dead: a delete request
#: it had already sent when it was killed is answered within that (the server needs no client).
DEAD_CLAIM_SETTLE_S = 3.0
#: While waiting for a live gc, say so again this often.
WAIT_NOTICE_S = 60.0
#: How long a save waits for gc claims on its objects. One claim stops mattering after
#: ``DELETE_WINDOW`` (savers ignore older claims); waiting twice that long bounds the wait even
#: against a gc that claims the same objects again and again. Polls are jittered, at most 1 s apart.
CLAIM_WAIT = retry.Policy(attempts=None, first_delay=0.05, max_delay=1.0, deadline=2 * I.DELETE_WINDOW.total_seconds())


def record_uploads(db: Database, digests: Sequence[str]) -> list[int]:
    """Record that this process is about to upload (or reuse) ``digests``, after waiting for any
    deletion of one of them that is in progress (see docs/architecture.md). A claim whose gc
    died on this host (``Claim.dead``) is dropped instead of waited for; a wait is logged
    (a warning naming the gc, then every minute)."""
    seen_dead: dict[int, float] = {}
    said = [-WAIT_NOTICE_S]

    def once() -> list[int]:
        with db.write() as conn:
            I.take_lock(conn)
            live, gone = [], []
            for c in I.delete_claims(conn, digests, I.DELETE_WINDOW):
                if c.dead():
                    first = seen_dead.setdefault(c.id, time.monotonic())
                    if time.monotonic() - first >= DEAD_CLAIM_SETTLE_S:
                        gone.append(c.id)
                        continue
                live.append(c)
            if live:
                if time.monotonic() - said[0] >= WAIT_NOTICE_S and not all(c.id in seen_dead for c in live):
                    said[0] = time.monotonic()
                    n = len({c.digest for c in live})
                    log.warning("waiting for %s to finish deleting %d object%s this save needs", live[0].describe(), n, "" if n == 1 else "s")
                raise _Busy(live)  # rolls back; the claim's gc ends within DELETE_DEADLINE
            if gone:
                I.remove(conn, gone)
                log.info("dropped %d delete claims of a gc that died on this host", len(gone))
            return I.add(conn, digests, "upload")

    try:
        return retry.call(once, when=lambda exc: isinstance(exc, _Busy), what="recording uploads", policy=CLAIM_WAIT)
    except _Busy as busy:
        raise ConflictError(
            f"a gc kept deleting objects this save needs for {CLAIM_WAIT.deadline:.0f} s "
            f"({busy.args[0][0].describe()}); the save was not committed, try again"
        ) from None


def forget_uploads(db: Database, ids: Sequence[int]) -> None:
    """Best effort after a failed save: gc would drop the intents once their owner is gone."""
    try:
        with db.write() as conn:
            I.remove(conn, ids)
    except Exception as exc:  # noqa: BLE001 - the save's own error is the one to report
        log.debug("could not drop upload intents: %s", exc)


def _record_files(
    conn: Connection,
    files: Sequence[StoredFile],
    layouts: Mapping[str, list[Extent] | None],
    used: Mapping[str, tuple[int, str | None]],
    size_of: Callable[[str], int | None],
    fills: list[tuple[str, int, int, str]],
    staged: Sequence[tuple[Path, str, int]],
    plans: Mapping[str, DataPlan],
) -> None:
    """The rows a commit writes besides the caller's, local or shared area alike: a blob row per
    file (and pack) stored; the row of each object the new extents re-use; the tensors' digests;
    and each assembled file's layout."""
    new = {sf.digest: sf for sf in files}
    for sf in new.values():
        W.record_blob(conn, sf.digest, sf.size, sf.stat_sig or None)
    for obj in {o for ext in layouts.values() if ext for _, _, o, _ in ext} - set(new):
        # Re-create (or, on PostgreSQL, lock) the row of each object re-used: a deletion racing
        # with this save must not leave the new extents pointing at nothing (on a shared area
        # the save's intent kept the object itself; locally the area's lock does).
        size, sig = used.get(obj) or (size_of(obj) or 0, None)
        W.record_blob(conn, obj, size, sig)
    P.fill_digests(conn, fills)
    for p, d, _ in staged:
        plan = plans.get(p.name)
        if plan is not None and d in layouts:
            # For a file stored assembled before, this re-records its layout only if a deletion
            # removed it meanwhile (record_layout never mixes two layouts).
            P.record_layout(conn, d, plan.pieces, plan.tensors, layouts[d])


def commit_shared(
    db: Database,
    area: ObjectArea,
    staged: Sequence[tuple[Path, str, int]],
    write_rows: Callable[[Connection, list[StoredFile]], T],
    plans: Mapping[str, DataPlan] | None = None,
) -> T:
    """:func:`commit_files` for an area shared across hosts (S3): intents instead of a lock.

    1. One transaction records an ``upload`` intent per file. 2. With ``plans``, the stored
    objects this save may build on (pieces found by digest or crc32c, the layout of a file
    stored assembled before) get intents too, and only then are they checked to be in the
    bucket: from then on gc leaves them alone. 3. Data files that re-use stored pieces become
    extents plus one pack of their new pieces; the pack gets its intent. 4. Whole files and
    packs are uploaded, or found present. 5. The commit transaction drops the intents and
    inserts the rows (re-creating the rows of re-used objects a deletion dropped meanwhile);
    if ``gc`` dropped the intents meanwhile (their owner looked dead), nothing is committed.
    """
    plans = plans or {}
    digests = list(dict.fromkeys(d for _, d, _ in staged))
    ids = record_uploads(db, digests)
    try:
        recorded, assembled, fresh, located, candidates = _reuse_candidates(db, staged, plans) if plans else ({}, {}, [], {}, {})
        if not plans:
            with db.read() as conn:
                recorded = Q.blob_signatures(conn, digests)
        borrowed = (
            {o for ext in assembled.values() for _, _, o, _ in ext}
            | {o for o, _ in located.values()}
            | {c[3] for found in candidates.values() for c in found}
        )
        sizes: dict[str, int | None] = {}
        if borrowed:
            ids += record_uploads(db, sorted(borrowed))
            sizes = _sizes(area, sorted(borrowed))  # after the intents: what is there now stays

        def there(obj: str, end: int) -> bool:
            return (sizes.get(obj) or -1) >= end

        for d, ext in list(assembled.items()):
            if not all(there(o, oo + n) for _, n, o, oo in ext):
                del assembled[d]  # an object it needs is gone or short: store these bytes again
        located = {pd: (o, oo) for pd, (o, oo) in located.items() if there(o, oo)}
        candidates = {k: [c for c in found if there(c[3], c[4])] for k, found in candidates.items()}
        fills = _confirm(area, fresh, candidates, located)
        with db.read() as conn:
            used = P.blob_sizes(conn, {obj for obj, _ in located.values()} | {o for ext in assembled.values() for _, _, o, _ in ext})
        whole: list[tuple[Path, str, int]] = []
        packs: list[tuple[Path, str, int]] = []
        layouts: dict[str, list[Extent] | None] = {}
        for p, d, n in staged:
            plan = plans.get(p.name)
            if d in assembled:  # the same bytes saved before, assembled: nothing new to store
                p.unlink()
                layouts[d] = assembled[d]
                continue
            result = pack_assembled(area, p, plan, located) if plan is not None and d not in recorded else None
            if result is None:
                whole.append((p, d, n))
                layouts[d] = None
            else:
                layouts[d], pack = result
                if pack is not None:
                    packs.append(pack)
        new_packs = [pd for _, pd, _ in packs if pd not in digests and pd not in borrowed]
        if new_packs:
            ids += record_uploads(db, new_packs)
            with db.read() as conn:
                recorded.update(Q.blob_signatures(conn, new_packs))
        put = area.put_many([*whole, *packs], recorded, after_each=lambda: fault("moving"))
        fault("moved")
        by_digest = {sf.digest: sf for sf in put}
        stored = [by_digest[d] if d in by_digest else StoredFile(d, n, "") for _, d, n in staged]
        with db.write() as conn:
            I.take_lock(conn)
            if I.remove(conn, ids) != len(ids):
                raise ObjectStoreError(
                    "this save's uploads outlived their record (gc took its process for dead); "
                    "nothing was committed: save again"
                )
            _record_files(conn, [*put, *stored], layouts, used, sizes.get, fills, staged, plans)
            result_rows = write_rows(conn, stored)
    except BaseException:
        forget_uploads(db, ids)
        raise
    fault("committed")
    return result_rows


def _sizes(area: ObjectArea, digests: Sequence[str]) -> dict[str, int | None]:
    """The size of each object in the area (None: absent), several requests at a time."""
    from concurrent.futures import ThreadPoolExecutor

    if len(digests) < 2:
        return {d: area.size_of(d) for d in digests}
    with ThreadPoolExecutor(min(8, len(digests))) as pool:
        return dict(zip(digests, pool.map(area.size_of, digests)))


def release_unreferenced(db: Database, area: ObjectArea | None, digests: Iterable[str]) -> int:
    """Delete the objects among ``digests`` that no ``blobs`` row names any more (see
    :func:`.release.release_objects`)."""
    return release_objects(db.sql_read, area, digests)


def check_files(
    db: Database,
    area: ObjectArea,
    files: Sequence[FileInfo],
    verify: bool | str,
    progress: Progress = None,
) -> None:
    """Raise :class:`CorruptFileError` / :class:`MissingFileError` naming the first bad file
    (see :func:`~.checking.check_stored`), then record the signatures of the objects it
    re-hashed intact."""
    refreshed = check_stored(db.sql_read, area, files, verify, progress)
    if refreshed:
        record_signatures(db, refreshed)


def record_signatures(db: Database, sigs: dict[str, str]) -> None:
    """Remember signatures of files just re-hashed intact; best effort (the store may be read-only)."""
    try:
        with db.write() as conn:
            W.set_blob_signatures(conn, sigs)
    except Exception as exc:  # noqa: BLE001 - an optimisation only
        log.debug("could not record stat signatures: %s", exc)
