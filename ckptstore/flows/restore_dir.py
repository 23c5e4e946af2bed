"""A checkpoint written out as a plain TensorFlow checkpoint directory (``restore --to DIR``),
over SQL text.

The store runs it through SQLAlchemy (``checkpoints.materialize``, the cache of
``materialized.py``); the CLI's ``restore`` runs the very same function on a SQLite store
through ``sqlite3`` (issue 26: every command that does not load TensorFlow in 0.3 s, and
writing files needs none). Nothing here imports SQLAlchemy or TensorFlow.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import CkptstoreError, ConflictError, UnknownRefError, from_os_error
from ..faults import fault
from ..files import pieces
from ..files.area import ObjectArea
from ..files.checking import Progress, check_stored
from ..files.digest import digest_file
from ..files.local import STAGING_SUFFIX
from ..metadata import file_reads as F
from ..metadata.file_reads import Snapshot
from ..records import CheckpointInfo, FileInfo
from ..tf.state import STATE_FILE, CheckpointState, render

__all__ = ["still_there", "with_meta", "write_checkpoint_dir"]

# Read once: os.umask can only be read by setting it, which would race with other threads.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def write_checkpoint_dir(
    snapshot: Snapshot,
    area: ObjectArea,
    ck: CheckpointInfo,
    to_dir: str | os.PathLike[str],
    *,
    uses_meta_graph: bool,
    verify: bool | str = True,
    link: str = "copy",
    force: bool = False,
    progress: Progress = None,
    record: Callable[[dict[str, str]], None] | None = None,
) -> Path:
    """Write ``ck`` as a plain TensorFlow checkpoint directory that vanilla TF reads; returns
    the prefix. ``snapshot()`` opens one read of the store's database.

    The files get their original names next to a ``checkpoint`` state file naming this
    checkpoint, so ``tf.train.latest_checkpoint(to_dir)`` and ``Saver.restore`` accept the
    directory; a format that ``uses_meta_graph`` also gets the run's nearest ``.meta`` when this
    save left it out. ``link="copy"`` (the default) writes private copies (reflinks where the
    filesystem shares blocks copy-on-write); ``link="hard"`` hard-links the stored objects where
    it can, which is faster but only for read-only use: editing such a file in place would damage
    the stored checkpoint. An existing file of the same name (including a ``checkpoint`` state
    file) is a :class:`ConflictError` unless ``force``; a file that already holds exactly the
    bytes to be written (an earlier restore) is left as it is. ``progress(done, total)`` reports
    the bytes checked; ``record(signatures)`` may keep the stat signatures of the objects that
    had to be re-hashed (the store records them where it may write).
    """
    placed = with_meta(snapshot, ck, uses_meta_graph)
    with still_there(snapshot, ck):
        refreshed = check_stored(snapshot, area, [f for f, _ in placed], verify, progress)
    if refreshed and record is not None:
        record(refreshed)
    out = Path(to_dir)
    if out.exists() and not out.is_dir():
        raise ConflictError(f"{out} is a file; a restore writes a directory: choose a directory")
    state_text = render(CheckpointState(ck.prefix, [ck.prefix]))
    todo: list[tuple[FileInfo | None, str]] = []
    relink: set[str] = set()  # files with the right bytes to replace by private copies
    for f, name in [*placed, (None, STATE_FILE)]:  # every conflict before the first file is written
        dst = out / name
        if not (dst.exists() or dst.is_symlink()):
            todo.append((f, name))
            continue
        if not dst.is_symlink() and dst.is_file() and _same_content(dst, f, state_text):
            if link == "copy" and f is not None and os.stat(dst).st_nlink > 1:
                # The same bytes, but linked elsewhere (an earlier --link hard shares the stored
                # object's inode): a copy restore promises files that are the user's own.
                todo.append((f, name))
                relink.add(name)
            continue
        if not force:
            what = "a checkpoint state file" if f is None else "a file"
            raise ConflictError(f"{dst} already exists ({what} this restore would replace); choose an empty directory or pass force (--force)")
        if dst.is_dir() and not dst.is_symlink():
            raise ConflictError(f"{dst} is a directory; a restore will not replace it")
        todo.append((f, name))
    if out.is_symlink() and not out.is_dir():
        raise ConflictError(f"{out} is a symlink to nowhere; choose another directory")
    fresh = not (out.exists() or out.is_symlink())
    try:
        # Beside the target, on its filesystem: a new target is then moved into place by one
        # rename. An existing target on another filesystem than its parent (a mount point, a
        # symlink to elsewhere) gets it inside, so that each file's move stays a rename.
        if fresh:
            out.parent.mkdir(parents=True, exist_ok=True)
        beside = fresh or os.stat(out).st_dev == os.stat(out.parent).st_dev
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=STAGING_SUFFIX, dir=out.parent if beside else out))
    except OSError as exc:
        raise from_os_error(f"cannot create {out}", exc) from None
    with snapshot() as sql:
        layouts = F.extents(sql, [f.digest for f, _ in todo if f is not None])
    try:
        with still_there(snapshot, ck):
            for f, name in todo:
                dst = tmp / name
                if f is None:
                    with open(dst, "x", encoding="utf-8") as fh:
                        fh.write(state_text)
                elif f.digest in layouts:
                    pieces.assemble(area, layouts[f.digest], f.digest, f.size, dst, check=verify is not False)
                elif link == "copy" or not area.link_to(f.digest, dst):
                    area.copy_to(f.digest, dst)
        fault("materialized")
        _move_into_place(tmp, out, [name for _, name in todo], force, fresh, relink)
    except OSError as exc:
        raise from_os_error(f"cannot write {out}", exc) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / ck.prefix


def with_meta(snapshot: Snapshot, ck: CheckpointInfo, uses_meta_graph: bool) -> list[tuple[FileInfo, str]]:
    """(stored file, name to give it) for every file of ``ck``, plus the run's nearest meta graph
    under this checkpoint's prefix when the format uses one and this save left it out
    (``Saver.save(..., write_meta_graph=False)``): what users do by hand with ``import_meta_graph``."""
    placed = [(f, f.file_name) for f in ck.files]
    if uses_meta_graph and not any(f.role == "meta" for f in ck.files):
        with snapshot() as sql:
            meta = F.nearest_meta(sql, ck.id, ck.step)
        if meta is not None:
            placed.append((meta, ck.prefix + ".meta"))
    return placed


@contextlib.contextmanager
def still_there(snapshot: Snapshot, ck: CheckpointInfo) -> Iterator[None]:
    """Report a checkpoint deleted by another process meanwhile as such, not as whatever error
    its vanished files caused (a missing file, a graph that "does not fit")."""
    try:
        yield
    except (OSError, CkptstoreError) as exc:
        with snapshot() as sql:
            gone = not F.existing_checkpoints(sql, [ck.id])
        if gone:
            raise UnknownRefError(f"checkpoint {ck.ref} was deleted by another process while it was being read") from None
        if isinstance(exc, OSError) and not isinstance(exc, (FileNotFoundError, PermissionError)):
            raise  # a full disk at the destination: the caller names it
        if isinstance(exc, OSError):
            raise from_os_error(f"cannot read {ck.ref}", exc) from None
        raise


def _same_content(path: Path, f: FileInfo | None, state_text: str) -> bool:
    try:
        if f is None:
            return path.read_text(encoding="utf-8") == state_text
        return path.stat().st_size == f.size and digest_file(path)[0] == f.digest
    except (OSError, UnicodeDecodeError):
        return False


def _move_into_place(tmp: Path, out: Path, names: list[str], force: bool, fresh: bool, relink: set[str] | None = None) -> None:
    """Move the finished files from ``tmp`` into ``out``: all at once where ``out`` did not exist
    (one rename), else one by one with the state file last, never through a symlink and, without
    ``force``, never over an existing entry (and then undone if one appears meanwhile) but those
    of ``relink``: files that hold the right bytes but share them (hard links), replaced."""
    if fresh:
        # mkdtemp made it 0700; the restored directory gets the permissions any new one would.
        os.chmod(tmp, 0o777 & ~_UMASK)
        try:
            os.rename(tmp, out)
            return
        except FileExistsError:
            raise ConflictError(f"{out} appeared while restoring; nothing was replaced") from None
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY:
                raise
            raise ConflictError(f"{out} appeared while restoring; nothing was replaced") from None
    placed: list[Path] = []
    for name in sorted(names, key=lambda n: n == STATE_FILE):
        src, dst = tmp / name, out / name
        if force or name in (relink or ()):
            os.replace(src, dst)  # replaces a symlink itself, never its target
            continue
        try:
            os.link(src, dst, follow_symlinks=False)  # EEXIST for anything there, links included
        except FileExistsError:
            for p in placed:
                p.unlink(missing_ok=True)
            raise ConflictError(f"{dst} appeared while restoring; nothing was replaced") from None
        placed.append(dst)
        os.unlink(src)
