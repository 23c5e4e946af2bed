"""The local object area: content-addressed, read-only files in a directory, plus crash-safe staging.

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
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from ..errors import CorruptFileError, MissingFileError, ReadOnlyStoreError, StoreConfigError
from .area import ObjectArea, StoredFile, file_label
from .digest import digest_file, stat_signature

log = logging.getLogger(__name__)

#: Suffix of every temporary directory or file ckptstore creates, so that leftovers of a crash
#: are recognisable (and ``gc`` can remove its own).
STAGING_SUFFIX = ".ckptstore-tmp"

# ioctl(dst, FICLONE, src): share the blocks copy-on-write (btrfs, XFS, ...), see ioctl_ficlone(2).
_FICLONE = 0x40049409


class LocalObjectArea(ObjectArea):
    """The objects and staging directories under one local file root."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.staging_root = self.root / "staging"
        self.lock_path = self.root / "objects.lock"
        self.fsync = fsync

    @classmethod
    def from_url(cls, url: str, *, fsync: bool = False) -> LocalObjectArea:
        """A directory: a plain path, or ``file:///abs/path``."""
        return cls(url[len("file://"):] if url.lower().startswith("file://") else url, fsync=fsync)

    @property
    def url(self) -> str:
        return str(self.root)

    @property
    def location(self) -> Path:
        return self.root

    # ------------------------------------------------------------------ paths and locks

    def describe(self, digest: str | None = None) -> str:
        return str(self.path_of(digest)) if digest is not None else str(self.root)

    def ensure(self) -> None:
        try:
            self.objects.mkdir(parents=True, exist_ok=True)
            self.staging_root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreConfigError(
                f"cannot create the file area at {self.root}: {exc.strerror}"
            ) from None

    def cache_root(self) -> Path:
        # Beside objects/, on the same filesystem: materialized copies are hard links to them.
        return self.root / "materialized"

    def path_of(self, digest: str) -> Path:
        """The object's file (a detail of this backend: nothing above the files layer uses it)."""
        return self.objects / digest[:2] / digest[2:]

    def local_path(self, digest: str) -> Path:
        return self.path_of(digest)

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

    def stale_staging(self) -> list[str]:
        """Staging directories whose owning process is gone."""
        if not self.staging_root.is_dir():
            return []
        stale: list[str] = []
        for entry in sorted(self.staging_root.iterdir()):
            lock = entry / ".lock"
            try:
                fd = os.open(lock, os.O_RDWR)
            except FileNotFoundError:
                stale.append(str(entry))  # killed before it could create its lock
                continue
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
            else:
                stale.append(str(entry))
            finally:
                os.close(fd)
        return stale

    # ------------------------------------------------------------------ ingest

    def put(self, path: Path, digest: str, size: int, recorded_sig: str | None = None) -> StoredFile:
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

    def check(self, digest: str, size: int, stat_sig: str | None, *, full: bool, name: str) -> str | None:
        """Raise if the stored bytes of ``digest`` are missing or wrong.

        With ``full=False`` a matching stat signature stands in for re-hashing (see
        ``schema.Blob``). Returns the current stat signature when the file was re-hashed and
        found intact, so the caller can record it; else None.
        """
        path = self.path_of(digest)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise MissingFileError(f"stored file {file_label(name, digest)} is missing from {self.objects}") from None
        if st.st_size != size:
            raise CorruptFileError(
                f"stored file {file_label(name, digest)} is {st.st_size} bytes, expected {size}: "
                "it was truncated or overwritten"
            )
        sig = stat_signature(st)
        if not full and stat_sig == sig:
            return None
        actual, _ = digest_file(path)
        if actual != digest:
            raise CorruptFileError(
                f"stored file {file_label(name, digest)} does not match its digest: "
                "its content was changed on disk"
            )
        return sig if sig != stat_sig else None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path_of(digest), "rb")
        except FileNotFoundError:
            raise MissingFileError(f"stored file {digest[:12]} is missing from {self.objects}") from None

    def size_of(self, digest: str) -> int | None:
        try:
            return os.stat(self.path_of(digest)).st_size
        except FileNotFoundError:
            return None

    def listing(self) -> Iterator[tuple[str, int, datetime]]:
        for digest, path in self.object_digests():
            try:
                st = path.stat()
            except FileNotFoundError:
                continue  # deleted since the directory was read
            yield digest, st.st_size, datetime.fromtimestamp(st.st_mtime, timezone.utc)

    def link_to(self, digest: str, dst: str | os.PathLike[str]) -> bool:
        try:
            os.link(self.path_of(digest), dst)
        except FileNotFoundError:
            raise MissingFileError(f"stored file {digest[:12]} is missing from {self.objects}") from None
        except OSError:
            return False  # another filesystem, or one without hard links
        return True

    def copy_to(self, digest: str, dst: str | os.PathLike[str]) -> None:
        """A private copy at ``dst`` (created exclusively, never through a symlink): a reflink
        where the filesystem shares blocks copy-on-write, else ``copy_file_range`` (in-kernel),
        else a plain copy. Either way, changing ``dst`` never changes the stored object."""
        try:
            sfd = os.open(self.path_of(digest), os.O_RDONLY)
        except FileNotFoundError:
            raise MissingFileError(f"stored file {digest[:12]} is missing from {self.objects}") from None
        try:
            dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            try:
                _copy_fd(sfd, dfd, os.fstat(sfd).st_size)
                if self.fsync:
                    os.fsync(dfd)
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)

    def object_digests(self) -> Iterator[tuple[str, Path]]:
        """Every object file present, as (digest, path)."""
        if not self.objects.is_dir():
            return
        for sub in self.objects.iterdir():
            if not sub.is_dir() or len(sub.name) != 2:
                continue
            for f in sub.iterdir():
                yield sub.name + f.name, f

    def delete(self, digests: Iterable[str]) -> int:
        """Remove object files (call inside :meth:`deleting`, after checking no row names them)."""
        n = 0
        for d in digests:
            try:
                self.path_of(d).unlink()
                n += 1
            except FileNotFoundError:
                pass
        return n

    def remove_staging(self, names: Iterable[str]) -> int:
        n = 0
        for p in names:
            log.info("removing stale staging directory %s", p)
            shutil.rmtree(p, ignore_errors=True)
            n += 1
        return n


def _read_only(where: Path, exc: OSError) -> ReadOnlyStoreError:
    return ReadOnlyStoreError(f"cannot write to the file area at {where}: {exc.strerror} (read-only for this user)")


def _copy_fd(sfd: int, dfd: int, size: int) -> None:
    try:
        fcntl.ioctl(dfd, _FICLONE, sfd)
        return
    except OSError:
        pass  # no reflinks here (ext4, tmpfs, another filesystem)
    done = 0
    try:
        while done < size:
            n = os.copy_file_range(sfd, dfd, size - done, done, done)
            if n == 0:
                break
            done += n
        if done == size:
            return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    os.lseek(sfd, done, os.SEEK_SET)
    os.lseek(dfd, done, os.SEEK_SET)
    with open(sfd, "rb", closefd=False) as src, open(dfd, "wb", closefd=False) as out:
        shutil.copyfileobj(src, out, 8 << 20)


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


