"""Deleting a run and dropping the ``blobs`` rows nothing references, as SQL text both drivers run.

The store runs these inside its write transactions through SQLAlchemy's driver connection
(``writes.drop_orphan_blobs`` wraps :func:`drop_orphan_blobs` for every deletion: checkpoints,
retention, gc); the CLI runs :func:`delete_run` on a SQLite store through ``sqlite3``
(``quick_writer.py``), so that ``runs delete`` need not import SQLAlchemy (issue 26). Same
pattern as :mod:`.reads`. Rows of a run (metrics, checkpoints, their files and variables,
exports) go with it by ``ON DELETE CASCADE``: SQLite connections run with foreign keys on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from ..errors import ConflictError
from .file_reads import chunks
from .reads import Sql, run_id

__all__ = ["RunDeletion", "delete_run", "drop_orphan_blobs"]


def _execute(sql: Sql, text: str, args: list[object]) -> None:
    if sql.execute is None:
        raise TypeError("deletes need a connection that writes (Sql.execute)")
    sql.execute(text, list(args))


def _firsts(sql: Sql, text: str, args: list[object]) -> set[str]:
    return {row[0] for row in sql.rows(text, list(args))}


class RunDeletion(NamedTuple):
    """What deleting a run removed: its checkpoints (a count) and the digests whose ``blobs``
    rows went with it (their objects are the caller's to release)."""

    checkpoints: int
    freed: list[str]


def delete_run(sql: Sql, name: str) -> RunDeletion:
    """Delete the run ``name`` with everything of it; refused while an alias points at one of
    its checkpoints or exports."""
    rid = run_id(sql, name)
    ph = sql.ph
    pinned = sorted(_firsts(
        sql,
        "SELECT a.name FROM aliases a LEFT JOIN checkpoints c ON c.id = a.checkpoint_id "
        f"LEFT JOIN exports e ON e.id = a.export_id WHERE c.run_id = {ph} OR e.run_id = {ph}",
        [rid, rid],
    ))
    if pinned:
        raise ConflictError(
            f"run {name!r} has the aliases {', '.join(pinned)}; "
            "remove them (ckptstore unalias NAME) before deleting the run"
        )
    n = int(sql.rows(f"SELECT COUNT(*) FROM checkpoints WHERE run_id = {ph}", [rid])[0][0])
    digests = _firsts(
        sql, f"SELECT f.digest FROM checkpoint_files f JOIN checkpoints c ON c.id = f.checkpoint_id WHERE c.run_id = {ph}", [rid]
    )
    digests |= _firsts(sql, f"SELECT digest FROM exports WHERE run_id = {ph}", [rid])
    digests |= _firsts(sql, f"SELECT f.digest FROM export_files f JOIN exports e ON e.id = f.export_id WHERE e.run_id = {ph}", [rid])
    _execute(sql, f"DELETE FROM runs WHERE id = {ph}", [rid])
    return RunDeletion(n, drop_orphan_blobs(sql, sorted(digests)))


def drop_orphan_blobs(sql: Sql, digests: Iterable[str]) -> list[str]:
    """Delete the ``blobs`` rows among ``digests`` that nothing references any more; returns
    their digests.

    An assembled data file references the objects its extents use (``file_extents``): once its
    own row goes, those objects are checked in turn, so the result can name more digests than
    were passed in.
    """
    todo = list(dict.fromkeys(digests))
    gone: list[str] = []
    seen: set[str] = set()
    while todo:
        seen.update(todo)
        nxt: list[str] = []
        for chunk in chunks(todo):
            args = list(chunk)
            marks = sql.marks(len(chunk))
            still: set[str] = set()
            for text in (
                f"SELECT digest FROM checkpoint_files WHERE digest IN ({marks})",
                f"SELECT digest FROM exports WHERE digest IN ({marks})",
                f"SELECT digest FROM export_files WHERE digest IN ({marks})",
                f"SELECT object_digest FROM file_extents WHERE object_digest IN ({marks})",
            ):
                still |= _firsts(sql, text, args)
            orphans = [d for d in chunk if d not in still]
            if orphans:
                nxt.extend(_forget_files(sql, orphans))
                _execute(sql, f"DELETE FROM blobs WHERE digest IN ({sql.marks(len(orphans))})", orphans)
                gone.extend(orphans)
        todo = [d for d in dict.fromkeys(nxt) if d not in seen]
    return gone


def _forget_files(sql: Sql, file_digests: list[str]) -> list[str]:
    """Delete the layout rows of files whose ``blobs`` rows are going; returns the objects
    their extents used (candidates to become orphans in turn)."""
    marks = sql.marks(len(file_digests))
    used = _firsts(sql, f"SELECT object_digest FROM file_extents WHERE file_digest IN ({marks})", list(file_digests))
    for table in ("file_extents", "file_pieces", "file_tensors"):
        _execute(sql, f"DELETE FROM {table} WHERE file_digest IN ({marks})", list(file_digests))
    return sorted(used)
