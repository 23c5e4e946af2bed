"""What ``verify``, ``gc`` and ``restore`` read about stored files, written once as SQL text for both drivers.

The store runs these through SQLAlchemy's driver connection (``queries.py`` and ``pieces.py``
wrap them); the CLI runs the same functions on a SQLite store through ``sqlite3``
(``quick_reader.py``), so that ``verify`` and ``gc`` with nothing to do answer without
importing SQLAlchemy (issue 26). Same pattern as :mod:`.reads`. ``offset`` is a keyword in both
databases: the column is always quoted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..records import FileInfo
from .mappers import file_info, json_value
from .reads import Sql

#: One read of a store's database: ``with snapshot() as sql: ...`` (``Database.sql_read`` on
#: the store, one ``sqlite3`` snapshot on the CLI's quick path).
Snapshot = Callable[[], contextlib.AbstractContextManager[Sql]]

#: One write transaction of a store's database, the same way (``Database.sql_write``).
Transaction = Callable[[], contextlib.AbstractContextManager[Sql]]

#: Values of one IN list: far below either database's limit on parameters.
_CHUNK = 500

Extent = tuple[int, int, str, int]  # file offset, size, object digest, object offset


def chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _column_in(sql: Sql, text: str, values: Iterable[Any]) -> set[Any]:
    """The first column of ``text ... IN (values)``, chunked; ``text`` ends where IN goes."""
    values = list(dict.fromkeys(values))
    out: set[Any] = set()
    for chunk in chunks(values):
        out.update(row[0] for row in sql.rows(f"{text} IN ({sql.marks(len(chunk))})", list(chunk)))
    return out


def stored_files(sql: Sql, rid: int | None) -> tuple[list[Any], list[Any]]:
    """What ``verify`` checks: (checkpoint file rows, export rows), of one run or all.

    Checkpoint file rows: id, name (run), step, file_name, digest, size; export rows: id, digest,
    size. An export's size is its object's (the blob's): a SavedModel export's own size is that
    of all its files, while its digest names the manifest; the files of directory exports are
    checked like the export's own object."""
    run_only = f" WHERE c.run_id = {sql.ph}" if rid is not None else ""
    export_only = f" WHERE e.run_id = {sql.ph}" if rid is not None else ""
    args = [rid] if rid is not None else []
    files = sql.rows(
        "SELECT c.id, r.name, c.step, f.file_name, f.digest, f.size FROM checkpoint_files f "
        "JOIN checkpoints c ON c.id = f.checkpoint_id JOIN runs r ON r.id = c.run_id"
        + run_only + " ORDER BY r.name, c.step, f.file_name",
        args,
    )
    exports = sql.rows(f"SELECT e.id, e.digest, b.size FROM exports e JOIN blobs b ON b.digest = e.digest{export_only}", args)
    export_files = sql.rows(
        f"SELECT f.export_id AS id, f.digest, f.size FROM export_files f JOIN exports e ON e.id = f.export_id{export_only}", args
    )
    return list(files), [*exports, *export_files]


def existing_blobs(sql: Sql, digests: Iterable[str] | None = None) -> set[str]:
    """The digests (among ``digests``, or all) that have a ``blobs`` row."""
    if digests is None:
        return {row[0] for row in sql.rows("SELECT digest FROM blobs", [])}
    return _column_in(sql, "SELECT digest FROM blobs WHERE digest", digests)


def referenced_digests(sql: Sql) -> set[str]:
    """Digests that a checkpoint file, an export, an export's file or an assembled file's
    extents reference."""
    found: set[str] = set()
    for text in (
        "SELECT digest FROM checkpoint_files", "SELECT digest FROM exports",
        "SELECT digest FROM export_files", "SELECT object_digest FROM file_extents",
    ):
        found.update(row[0] for row in sql.rows(text, []))
    return found


def existing_checkpoints(sql: Sql, ids: Iterable[int]) -> set[int]:
    return _column_in(sql, "SELECT id FROM checkpoints WHERE id", ids)


def existing_exports(sql: Sql, ids: Iterable[int]) -> set[int]:
    return _column_in(sql, "SELECT id FROM exports WHERE id", ids)


def integrity_problems(sql: Sql) -> list[str]:
    """What the database's own consistency check finds (SQLite's ``PRAGMA integrity_check``,
    with foreign keys); empty when all is well. PostgreSQL keeps its own consistency."""
    if sql.dialect != "sqlite":
        return []
    found = [str(row[0]) for row in sql.rows("PRAGMA integrity_check", [])]
    found = [] if found == ["ok"] else found
    for row in sql.rows("PRAGMA foreign_key_check", []):
        found.append(f"row {row[1]} of table {row[0]} points at a missing row of {row[2]}")
    return found


def extents(sql: Sql, file_digests: Iterable[str]) -> dict[str, list[Extent]]:
    """The layout of every assembled file among ``file_digests`` (files stored whole are absent)."""
    digests = list(dict.fromkeys(file_digests))
    out: dict[str, list[Extent]] = {}
    for chunk in chunks(digests):
        rows = sql.rows(
            'SELECT file_digest, "offset", size, object_digest, object_offset FROM file_extents '
            f'WHERE file_digest IN ({sql.marks(len(chunk))}) ORDER BY file_digest, "offset"',
            list(chunk),
        )
        for file_digest, offset, size, obj, obj_offset in rows:
            out.setdefault(file_digest, []).append((offset, size, obj, obj_offset))
    return out


def blob_sizes(sql: Sql, digests: Iterable[str]) -> dict[str, tuple[int, str | None]]:
    """(size, stat signature) of each recorded blob among ``digests``."""
    digests = list(dict.fromkeys(digests))
    out: dict[str, tuple[int, str | None]] = {}
    for chunk in chunks(digests):
        for digest, size, sig in sql.rows(
            f"SELECT digest, size, stat_sig FROM blobs WHERE digest IN ({sql.marks(len(chunk))})", list(chunk)
        ):
            out[digest] = (size, sig)
    return out


def blob_signatures(sql: Sql, digests: Iterable[str]) -> dict[str, str | None]:
    """The stat signature recorded for each blob among ``digests`` (None: none yet)."""
    return {digest: sig for digest, (_, sig) in blob_sizes(sql, digests).items()}


def nearest_meta(sql: Sql, checkpoint_id: int, step: int) -> FileInfo | None:
    """The .meta of the run's nearest checkpoint at or below ``step``, else the next above."""
    ph = sql.ph
    found = sql.rows(f"SELECT run_id FROM checkpoints WHERE id = {ph}", [checkpoint_id])
    if not found:
        return None
    for cond, order in (("<=", "DESC"), (">", "ASC")):
        row = sql.rows(
            "SELECT f.role, f.file_name, f.size, f.digest FROM checkpoint_files f JOIN checkpoints c ON c.id = f.checkpoint_id "
            f"WHERE c.run_id = {ph} AND f.role = 'meta' AND c.step {cond} {ph} ORDER BY c.step {order} LIMIT 1",
            [found[0][0], step],
        )
        if row:
            return file_info(row[0])
    return None


def unindexed_data_files(sql: Sql) -> int:
    """How many distinct data files of checkpoints are not recorded tensor by tensor
    (``repack``'s work: files saved before tensor-level storage)."""
    return int(sql.rows(
        "SELECT COUNT(DISTINCT f.digest) FROM checkpoint_files f WHERE f.role = 'data' "
        "AND NOT EXISTS (SELECT 1 FROM file_tensors t WHERE t.file_digest = f.digest)", []
    )[0][0])


def export_files(sql: Sql, export_id: int) -> list[tuple[str, int, str]]:
    """(path, size, digest) of each file of a directory export, by path."""
    return [(path, size, digest) for path, size, digest in sql.rows(
        f"SELECT path, size, digest FROM export_files WHERE export_id = {sql.ph} ORDER BY path", [export_id]
    )]


#: A tensor of a data file recorded tensor by tensor: offset, size, blake3 digest, crc32c.
TensorRow = tuple[int, int, str | None, int | None]


def tensors(sql: Sql, file_digests: Iterable[str]) -> dict[str, dict[str, TensorRow]]:
    """{file digest: {tensor name: (offset, size, digest, crc32c)}} for the files recorded tensor by tensor."""
    digests = list(dict.fromkeys(file_digests))
    out: dict[str, dict[str, TensorRow]] = {}
    for chunk in chunks(digests):
        for file_digest, name, offset, size, digest, crc in sql.rows(
            f'SELECT file_digest, name, "offset", size, digest, crc32c FROM file_tensors WHERE file_digest IN ({sql.marks(len(chunk))})',
            list(chunk),
        ):
            out.setdefault(file_digest, {})[name] = (offset, size, digest, crc)
    return out


def variables_of(sql: Sql, checkpoint_ids: Sequence[int]) -> dict[int, list[tuple[str, str, list[int]]]]:
    """{checkpoint id: [(key, dtype, shape)]} in one query (the diff's hot path)."""
    ids = list(checkpoint_ids)
    out: dict[int, list[tuple[str, str, list[int]]]] = {i: [] for i in ids}
    for cid, name, dtype, shape in sql.rows(
        f"SELECT checkpoint_id, name, dtype, shape FROM variables WHERE checkpoint_id IN ({sql.marks(len(ids))})", ids
    ):
        out[cid].append((name, dtype, list(json_value(shape))))
    return out


def readable_names_of(sql: Sql, checkpoint_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """{checkpoint id: {checkpoint key: readable name}} recorded at save."""
    ids = list(checkpoint_ids)
    out: dict[int, dict[str, str]] = {i: {} for i in ids}
    for cid, key, readable in sql.rows(
        f"SELECT checkpoint_id, key, readable FROM variable_names WHERE checkpoint_id IN ({sql.marks(len(ids))})", ids
    ):
        out[cid][key] = readable
    return out
