"""Recording checkpoints TensorFlow itself wrote (the drop-ins ``tf1.Saver``, ``tf2.CheckpointManager``).

The drop-ins let TensorFlow write its files where the user asked; this module then records
them in a run, content-addressed and deduplicated, by the same commit as a save
(``checkpoints.commit_checkpoint``: one database transaction is the commit point).

Files enter the staging directory as **hard links** to TensorFlow's files (a copy only when
the store is on another filesystem), so recording a 256 MB checkpoint moves no data: the
object and TensorFlow's file share one inode. That is safe because TensorFlow never rewrites
a checkpoint file in place: it writes ``*.tempstate*`` files and renames them over the old
ones, and it deletes old checkpoints by unlinking, which leaves the store's link alone. The
store makes its objects read-only (``chmod 0444``), which therefore also applies to the
user's files; TensorFlow's renames and unlinks do not need write permission on the file.

A crash before the commit leaves a staging directory ``gc`` removes; TensorFlow's files are
never touched.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from pathlib import Path

from ..errors import from_os_error
from ..metadata import queries as Q
from ..names import check_step
from ..records import CheckpointInfo
from ..tf import formats
from .backend import Backend
from .checkpoints import commit_checkpoint
from .deletion import delete_checkpoints

log = logging.getLogger(__name__)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError as exc:
        # Another filesystem (or one without hard links): a copy costs the bytes once.
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        shutil.copyfile(src, dst)


class StagedPrefix:
    """A checkpoint TensorFlow wrote, linked into a staging directory of its own (cheap: hard
    links) and not yet committed: TensorFlow may delete or overwrite its own files from now on
    without touching these. :meth:`commit` (from any thread) digests what was not digested
    while TensorFlow wrote, commits, and removes the staging directory; :meth:`discard` only
    removes it. One of the two must be called."""

    def __init__(self, backend: Backend, run_id: int, prefix: Path) -> None:
        self.backend = backend
        self.run_id = run_id
        self.source = prefix
        self._stack = contextlib.ExitStack()
        try:
            sdir = self._stack.enter_context(backend.files.staging(f"record-{run_id}"))
            # Both formats name their files alike (CheckpointFormat.files); the format is told
            # from the staged copy, since TensorFlow's reader takes a prefix that is also a
            # directory (Saver.save(sess, "some/dir") writes "some/dir.index") for the directory.
            for f in formats.named(formats.TF1Saver.name).files(prefix):
                _link_or_copy(f, sdir / f.name)
        except OSError as exc:
            self._stack.close()
            raise from_os_error(f"cannot record {prefix}", exc) from None
        except BaseException:
            self._stack.close()
            raise
        self.path = sdir / prefix.name

    def commit(self, run_name: str, step: int, known: dict[str, tuple[str, int]] | None = None) -> CheckpointInfo:
        """Record it as ``run_name@step`` (its prefix name kept); a checkpoint the run has at
        that step is replaced, as a save replaces it. ``known``: {file name: (digest, size)}
        computed while TensorFlow wrote."""
        try:
            step = check_step(step)
            return commit_checkpoint(self.backend, self.run_id, run_name, step, formats.of_prefix(self.path),
                                     self.path, known)
        except OSError as exc:
            raise from_os_error(f"cannot record {self.source} as {run_name}@{step}", exc) from None
        finally:
            self._stack.close()

    def discard(self) -> None:
        self._stack.close()


def record_prefix(
    backend: Backend,
    run_id: int,
    run_name: str,
    prefix: Path,
    step: int,
    known: dict[str, tuple[str, int]] | None = None,
) -> CheckpointInfo:
    """Stage and commit at once (see :class:`StagedPrefix`)."""
    return StagedPrefix(backend, run_id, prefix).commit(run_name, step, known)


def forget_prefix(backend: Backend, run_id: int, step: int, prefix_name: str) -> bool:
    """Delete the run's record of the checkpoint ``prefix_name`` at ``step`` (TensorFlow deleted
    its files); a record of another prefix at that step, or one a version (alias) names, stays.
    Returns whether a record was deleted."""
    with backend.db.read() as conn:
        cid = Q.checkpoint_id_at(conn, run_id, step)
        if cid is None:
            return False
        ck = Q.checkpoint_by_id(conn, cid)
    if ck.prefix != prefix_name:
        return False
    deleted = delete_checkpoints(backend, [cid])
    if not deleted:
        log.info("kept %s: a version names it, although TensorFlow deleted its files", ck.ref)
    return bool(deleted)
