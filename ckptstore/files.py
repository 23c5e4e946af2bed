"""The file area: content-addressed, read-only blobs plus crash-safe staging.

Layout under the store's file root::

    objects/ab/cdef...     one file per distinct content, named by its blake3 digest, mode 0444
    staging/<what>-<pid>-<random>.ckptstore-tmp/   where TensorFlow writes a save in progress
    objects.lock           coordinates writers (shared) with deleters (exclusive)

**The commit point is the database transaction.** A save lets TensorFlow write into a staging
directory, digests the files there, moves them into ``objects/`` and then commits the rows that
reference them. A crash before the commit leaves at most a staging directory and blobs that no
row references; readers never see them, because every read starts from a committed row. ``gc``
removes both: a staging directory whose owner is gone (its lock file is no longer locked), and
any object that no ``blobs`` row names.

A deleter unlinks an object only while holding ``objects.lock`` exclusively and only after
checking that no row names it; a writer holds the lock shared from the moment it decides an
object already exists (or moves one in) until its transaction has committed. So an object that a
concurrent save is about to reference is never deleted under it. ``flock`` locks vanish with
their process, so a killed writer never blocks ``gc``. (They need a local filesystem: NFS file
roots should run ``gc`` from one host.)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import blake3

from .errors import CorruptFileError, MissingFileError, ReadOnlyStoreError, StoreConfigError

log = logging.getLogger(__name__)

STAGING_SUFFIX = ".ckptstore-tmp"
_CHUNK = 8 << 20
# Below this, threads cost more than they save.
_THREADED_MIN = 16 << 20


@dataclass(frozen=True)
class StoredFile:
    """A file that has been moved into the object area."""

    digest: str
    size: int
    stat_sig: str


def digest_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """Return (blake3 hex digest, size) of a file, never holding it in memory whole.

    Large files are memory-mapped and hashed by blake3 on every core (``update_mmap``): no
    copy through a user-space buffer, 4x faster than reading here (256 MB: 45 ms instead of
    190 ms); the kernel pages the mapping in and out, so memory stays bounded. Small files
    are read through a fixed buffer, where a mapping costs more than it saves.
    """
    size = os.stat(path).st_size
    if size >= _THREADED_MIN:
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        hasher.update_mmap(os.fspath(path))
        return hasher.hexdigest(), size
    hasher = blake3.blake3(max_threads=1)
    buf = bytearray(min(_CHUNK, max(size, 1)))
    view = memoryview(buf)
    total = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            hasher.update(view[:n])
            total += n
    return hasher.hexdigest(), total


def stat_signature(st: os.stat_result) -> str:
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


class FileArea:
    """The blobs and staging directories under one file root."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.staging_root = self.root / "staging"
        self.lock_path = self.root / "objects.lock"
        self.fsync = fsync

    # ------------------------------------------------------------------ paths and locks

    def ensure(self) -> None:
        try:
            self.objects.mkdir(parents=True, exist_ok=True)
            self.staging_root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreConfigError(
                f"cannot create the file area at {self.root}: {exc.strerror}"
            ) from None

    def path_of(self, digest: str) -> Path:
        return self.objects / digest[:2] / digest[2:]

    @contextlib.contextmanager
    def _flock(self, mode: int) -> Iterator[None]:
        self.ensure()
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError as exc:
            raise _read_only(self.lock_path, exc) from None
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Held by a save from its first object move until its transaction commits."""
        return self._flock(fcntl.LOCK_SH)

    def deleting(self) -> contextlib.AbstractContextManager[None]:
        """Held by whoever unlinks objects; waits for in-flight saves to commit."""
        return self._flock(fcntl.LOCK_EX)

    # ------------------------------------------------------------------ staging

    @contextlib.contextmanager
    def staging(self, what: str) -> Iterator[Path]:
        """A fresh staging directory, locked while it lives and removed afterwards.

        The lock tells ``gc`` the directory's owner is alive; a crash releases it.
        """
        self.ensure()
        path = self.staging_root / f"{what}-{os.getpid()}-{uuid.uuid4().hex[:12]}{STAGING_SUFFIX}"
        # Between mkdir and flock the directory looks abandoned (no lock, or an unlocked one);
        # holding the object lock shared meanwhile keeps gc (exclusive) from removing it then.
        with self.writing():
            try:
                path.mkdir()
            except PermissionError as exc:
                raise _read_only(self.staging_root, exc) from None
            fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            os.close(fd)

    def stale_staging(self) -> list[Path]:
        """Staging directories whose owning process is gone."""
        if not self.staging_root.is_dir():
            return []
        stale = []
        for entry in sorted(self.staging_root.iterdir()):
            lock = entry / ".lock"
            try:
                fd = os.open(lock, os.O_RDWR)
            except FileNotFoundError:
                stale.append(entry)  # killed before it could create its lock
                continue
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
            else:
                stale.append(entry)
            finally:
                os.close(fd)
        return stale

    # ------------------------------------------------------------------ ingest

    def ingest(self, path: Path, digest: str, size: int, recorded_sig: Optional[str] = None) -> StoredFile:
        """Move a digested staging file into the object area (call inside :meth:`writing`).

        If the content is already stored, the staging copy is dropped: the same bytes are kept
        once however many checkpoints reference them. ``recorded_sig`` is the stat signature the
        database holds for that object: an existing object whose size or signature differs may
        have been damaged since, so the fresh copy (just digested, known good) replaces it
        rather than a new checkpoint pointing at bad bytes.
        """
        dest = self.path_of(digest)
        if self.fsync:
            _fsync_file(path)
        try:
            st = os.stat(dest)
            if st.st_size != size or stat_signature(st) != recorded_sig:
                # A changed signature may be harmless (a hard link from materialize touches
                # ctime; no row at all is an object left by a crashed save): replacing costs a
                # rename, while keeping a damaged object would cost the checkpoint.
                log.log(
                    logging.WARNING if st.st_size != size else logging.DEBUG,
                    "replacing stored file %s with a fresh copy of the same content", digest[:12],
                )
                raise FileNotFoundError
        except FileNotFoundError:
            try:
                dest.parent.mkdir(exist_ok=True)
                os.chmod(path, 0o444)
                os.replace(path, dest)
            except PermissionError as exc:
                raise _read_only(dest.parent, exc) from None
            if self.fsync:
                _fsync_dir(dest.parent)
            st = os.stat(dest)
        else:
            path.unlink()
        return StoredFile(digest, size, stat_signature(st))

    # ------------------------------------------------------------------ reading and checking

    def check(self, digest: str, size: int, stat_sig: Optional[str], *, full: bool, name: str) -> Optional[str]:
        """Raise if the stored bytes of ``digest`` are missing or wrong.

        With ``full=False`` a matching stat signature stands in for re-hashing (see
        ``schema.Blob``). Returns the current stat signature when the file was re-hashed and
        found intact, so the caller can record it; else None.
        """
        path = self.path_of(digest)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise MissingFileError(f"stored file {name} ({digest[:12]}) is missing from {self.objects}") from None
        if st.st_size != size:
            raise CorruptFileError(
                f"stored file {name} ({digest[:12]}) is {st.st_size} bytes, expected {size}: "
                "it was truncated or overwritten"
            )
        sig = stat_signature(st)
        if not full and stat_sig == sig:
            return None
        actual, _ = digest_file(path)
        if actual != digest:
            raise CorruptFileError(
                f"stored file {name} ({digest[:12]}) does not match its digest: "
                "its content was changed on disk"
            )
        return sig if sig != stat_sig else None

    def object_digests(self) -> Iterator[tuple[str, Path]]:
        """Every object file present, as (digest, path)."""
        if not self.objects.is_dir():
            return
        for sub in self.objects.iterdir():
            if not sub.is_dir() or len(sub.name) != 2:
                continue
            for f in sub.iterdir():
                yield sub.name + f.name, f

    def unlink_objects(self, digests: Iterable[str]) -> int:
        """Remove object files (call inside :meth:`deleting`, after checking no row names them)."""
        n = 0
        for d in digests:
            try:
                self.path_of(d).unlink()
                n += 1
            except FileNotFoundError:
                pass
        return n

    def remove_staging(self, paths: Iterable[Path]) -> int:
        n = 0
        for p in paths:
            log.info("removing stale staging directory %s", p)
            shutil.rmtree(p, ignore_errors=True)
            n += 1
        return n


def _read_only(where: Path, exc: OSError) -> ReadOnlyStoreError:
    return ReadOnlyStoreError(f"cannot write to the file area at {where}: {exc.strerror} (read-only for this user)")


def place_file(src: Path, dst: Path, *, link: str = "hard") -> None:
    """Put a stored object at ``dst``: a hard link where possible, else a copy.

    ``link="symlink"`` is for short-lived restore directories: a hard link changes the object's
    ctime and would cost the next restore a full re-hash.
    """
    if link == "symlink":
        os.symlink(src, dst)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DigestFollower:
    """Hash a checkpoint's data file *while TensorFlow writes it*.

    TensorFlow writes ``<prefix>.data-00000-of-00001.tempstate<N>`` front to back and renames
    it when done. This thread opens that file as soon as it appears and hashes what has been
    written so far, so when ``save`` returns only the tail is left: digesting overlaps the write
    instead of following it (a 256 MB save costs ~5 ms more instead of ~45 ms).

    The result is only used if the file it followed *is* the final data file (same inode, same
    size); otherwise the caller digests the final file normally. Call :meth:`finish` after the
    save returned.
    """

    def __init__(self, directory: Path, stem: str) -> None:
        import threading

        self.directory = directory
        self.stem = stem + ".data-"
        self._done = threading.Event()
        self._result: Optional[tuple[int, int, str]] = None
        self._thread = threading.Thread(target=self._run, name="ckptstore-digest", daemon=True)
        self._thread.start()

    def _find(self) -> Optional[int]:
        try:
            with os.scandir(self.directory) as it:
                for e in it:
                    if e.name.startswith(self.stem) and ".tempstate" in e.name:
                        try:
                            return os.open(e.path, os.O_RDONLY)
                        except FileNotFoundError:
                            return None
        except FileNotFoundError:
            pass
        return None

    def _run(self) -> None:
        import time

        fd = None
        while fd is None:
            if self._done.is_set():
                return
            fd = self._find()
            if fd is None:
                time.sleep(0.001)
        try:
            hasher = blake3.blake3(max_threads=1)
            buf = bytearray(_CHUNK)
            view = memoryview(buf)
            total = 0
            with open(fd, "rb", buffering=0, closefd=False) as f:
                while True:
                    n = f.readinto(buf)
                    if n:
                        hasher.update(view[:n])
                        total += n
                        continue
                    if self._done.is_set():
                        # The writer is finished: one last read drains what it wrote meanwhile.
                        n = f.readinto(buf)
                        if n:
                            hasher.update(view[:n])
                            total += n
                            continue
                        break
                    time.sleep(0.0005)
            self._result = (os.fstat(fd).st_ino, total, hasher.hexdigest())
        finally:
            os.close(fd)

    def finish(self) -> dict[str, tuple[str, int]]:
        """Stop following; return {file name: (digest, size)} for the file it could vouch for."""
        self._done.set()
        self._thread.join()
        if self._result is None:
            return {}
        ino, size, digest = self._result
        for p in self.directory.glob(self.stem + "*"):
            if ".tempstate" in p.name:
                continue
            st = os.stat(p)
            if st.st_ino == ino and st.st_size == size:
                return {p.name: (digest, size)}
        return {}
