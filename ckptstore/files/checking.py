"""Checking a checkpoint's or export's stored files before they are read, over SQL text.

The store checks through SQLAlchemy (``commit.check_files``, which also records the stat
signatures of files it had to re-hash); the CLI's ``restore`` checks through ``sqlite3`` on
its quick path (issue 26: a restore in 0.3 s), with the same function. Nothing here imports
SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import CorruptFileError, MissingFileError
from ..metadata import file_reads as F
from ..metadata.file_reads import Snapshot
from ..records import FileInfo
from .area import ObjectArea, file_label

Progress = Callable[[int, int], None] | None

__all__ = ["Progress", "check_stored"]


def check_stored(
    snapshot: Snapshot, area: ObjectArea, files: Sequence[FileInfo], verify: bool | str, progress: Progress = None
) -> dict[str, str]:
    """Raise :class:`CorruptFileError` / :class:`MissingFileError` naming the first bad file;
    return the stat signatures of the objects re-hashed and found intact (the caller may
    record them, so that the next check trusts them).

    ``verify``: ``True``/``"auto"`` trusts an unchanged stat signature (see ``schema.Blob``),
    ``"full"`` always re-hashes, ``False`` only checks presence and size. ``progress(done,
    total)`` is called in bytes after each file. A file assembled from pieces is checked
    through the objects holding them (and again as a whole when it is rebuilt).
    """
    todo: list[tuple[str, int, str]] = []  # digest, size, name for messages
    with snapshot() as sql:  # one read: this runs before every restore
        layouts = F.extents(sql, [f.digest for f in files])
        objects = {o for f in files for _, _, o, _ in layouts.get(f.digest, ())}
        info = F.blob_sizes(sql, objects) if objects else {}
        seen: set[str] = set()
        for f in files:
            if f.digest not in layouts:
                todo.append((f.digest, f.size, f.file_name))
                continue
            for _, _, obj, _ in layouts[f.digest]:
                if obj not in seen:
                    seen.add(obj)
                    todo.append((obj, info.get(obj, (0, None))[0], f"{f.file_name} (piece {obj[:12]})"))
        sigs = F.blob_signatures(sql, [d for d, _, _ in todo]) if verify is not False else {}
    if verify is False:
        for digest, size_expected, name in todo:
            size = area.size_of(digest)
            if size is None:
                raise MissingFileError(f"stored file {file_label(name, digest)} is missing")
            if size != size_expected:
                raise CorruptFileError(f"stored file {file_label(name, digest)} is {size} bytes, expected {size_expected}")
        return {}
    full = verify == "full"
    refreshed = {}
    total = sum(n for _, n, _ in todo)
    done = 0
    for digest, size, name in todo:
        new_sig = area.check(digest, size, sigs.get(digest), full=full, name=name)
        if new_sig is not None:
            refreshed[digest] = new_sig
        done += size
        if progress is not None:
            progress(done, total)
    return refreshed
