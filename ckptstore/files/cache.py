"""A bounded local cache of downloaded objects, shared by the processes of one host.

Layout under the cache directory::

    objects/ab/cdef...              complete, digest-checked objects, mode 0444, never modified
    objects/ab/cdef....sig          the object's stat signature when it was last hashed; mtime = last use
    tmp/<digest>.<pid>.<random>.ckptstore-tmp   downloads in progress
    tmp/<digest>.lock               held (flock) by the one process downloading that object
    cache.lock                      held exclusively while evicting

A download lands in ``tmp/`` and is renamed into ``objects/`` only once its blake3 digest
matches (a crash leaves a tmp file that the next eviction removes). Two processes wanting the
same object wait for each other on its ``.lock`` instead of downloading it twice.

**A cached file is served only while it is the file that was hashed.** Anything with write
access to the cache directory (another tool, a user, bit rot) can change a file after it was
checked, and a size check cannot see that. So after hashing, the object's stat signature
(inode, size, mtime and ctime in ns) goes into its ``.sig`` sidecar, and every use compares
the current signature with it: one ``stat`` and one small read on the hot path. A file whose
signature differs (written, replaced, ``touch``-ed back: ctime cannot be set from user space)
or that has no sidecar is hashed again before it is served, and discarded (then downloaded
again by :meth:`ObjectCache.fill`) when its digest does not match. The object itself is never
touched after it is placed, so that its signature stays put; last use is the sidecar's mtime.

Eviction is least-recently-used by last use, down to the size limit, under ``cache.lock``.
A reader that uses a cached file through its path for a while (a restore hands TensorFlow a
symlink to it) holds a shared ``flock`` on the file (:meth:`ObjectCache.hold`); eviction takes
each candidate's lock exclusively without waiting and skips the ones it cannot get. A reader
that opens the file at once needs no lock (an open file outlives its unlinking) and fetches it
again if it was evicted before the open. So the cache exceeds its limit only by the files
being read right now (and, always, the one just fetched).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import CorruptFileError
from ..liveness import pid_alive
from .digest import digest_file

log = logging.getLogger(__name__)

#: Default size limit of a host's cache: ``$CKPTSTORE_CACHE_SIZE`` (bytes, or with K/M/G/T) overrides.
DEFAULT_LIMIT = 20 << 30
#: Files used more recently than this are not evicted. None of ours need it (readers that keep
#: a path hold a lock; the others open the file and fetch it again if it was evicted first):
#: kept for a reader elsewhere that needs a moment between getting a path and opening it.
IN_USE_S = 0.0
_SUFFIX = ".ckptstore-tmp"
_SIG = ".sig"


def parse_size(text: str) -> int:
    """``"512M"`` -> bytes; plain digits are bytes."""
    t = text.strip().upper().removesuffix("B")
    mult = 1
    for i, unit in enumerate("KMGT", start=1):
        if t.endswith(unit):
            mult, t = 1024**i, t[:-1]
            break
    from ..errors import InvalidOptionError

    try:
        value = float(t) * mult
    except ValueError:
        raise InvalidOptionError(f"not a size: {text!r} (examples: 500M, 20G)") from None
    if not value >= 0 or value == float("inf"):  # also refuses nan
        raise InvalidOptionError(f"not a size: {text!r} (a size is zero or more, e.g. 500M, 20G)")
    return int(value)


class ObjectCache:
    """Digest-checked local copies of remote objects, LRU-bounded (see module docstring)."""

    def __init__(self, root: str | os.PathLike[str], limit: int | None = None) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        if limit is None:
            env = os.environ.get("CKPTSTORE_CACHE_SIZE")
            limit = parse_size(env) if env else DEFAULT_LIMIT
        self.limit = limit
        #: Objects fetched from the remote side by this process (tests and benchmarks read it).
        self.downloads = 0

    def path_of(self, digest: str) -> Path:
        return self.objects / digest[:2] / digest[2:]

    def get(self, digest: str, size: int | None) -> Path | None:
        """The cached file, marked as used, or None if absent or no longer the bytes of
        ``digest`` (of the wrong size, or changed since it was hashed: then it is removed).
        ``size`` None: whatever size the file has, as long as its bytes match the digest."""
        try:
            return self.checked(digest, size)
        except CorruptFileError:
            return None

    def checked(self, digest: str, size: int | None) -> Path | None:
        """As :meth:`get`, but a cached copy found damaged raises :class:`CorruptFileError`
        (after removing it), for ``verify``."""
        p = self.path_of(digest)
        try:
            st = os.stat(p)
        except FileNotFoundError:
            return None
        if size is not None and st.st_size != size:
            self.discard(digest)
            raise CorruptFileError(f"this host's cached copy of stored file {digest[:12]} ({p}) is {st.st_size} bytes, expected {size}: removed, the next read downloads it again")
        sig_path = self._sig_path(digest)
        try:
            recorded = sig_path.read_text()
        except (FileNotFoundError, UnicodeDecodeError):
            recorded = None
        if recorded != _signature(st):
            actual, _ = digest_file(p)
            if actual != digest:
                log.warning("cached copy %s does not match its digest: removed", p)
                self.discard(digest)
                raise CorruptFileError(f"this host's cached copy of stored file {digest[:12]} ({p}) does not match its digest: removed, the next read downloads it again")
            self._record(p, digest, st)
        else:
            with contextlib.suppress(OSError):
                os.utime(sig_path)
        return p

    def _sig_path(self, digest: str) -> Path:
        p = self.path_of(digest)
        return p.with_name(p.name + _SIG)

    def _record(self, path: Path, digest: str, st: os.stat_result | None = None) -> None:
        """Write the signature of the file just hashed (atomically: a reader sees the old one or
        this). Only once the kernel's coarse clock, which stamps file changes, has passed the
        file's ctime: a write in the same clock tick would otherwise leave the signature as it
        was (git's "racily clean" case). That is at most one tick (1-10 ms), usually paid while
        the other files of a save are placed; not reached within 50 ms, nothing is recorded and
        the next use hashes the file again."""
        try:
            st = st if st is not None else os.stat(path)
            deadline = time.monotonic() + 0.05
            while _coarse_now_ns() <= st.st_ctime_ns:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.001)
            sig = self._sig_path(digest)
            self.tmp.mkdir(parents=True, exist_ok=True)
            tmp = self.tmp / f"{digest}-sig.{os.getpid()}.{uuid.uuid4().hex[:8]}{_SUFFIX}"
            tmp.write_text(_signature(st))
            os.replace(tmp, sig)
        except OSError as exc:  # a read-only or full cache: the file is hashed again on next use
            log.debug("cannot record the signature of %s: %s", path, exc)

    def fill(self, digest: str, size: int, fetch: Callable[[Path], None]) -> Path:
        """The cached file, calling ``fetch(tmp_path)`` to download it first if needed. The
        download is digest-checked before it becomes visible: :class:`CorruptFileError` if it
        does not match (the remote object is damaged)."""
        hit = self.get(digest, size)
        if hit is not None:
            return hit
        self.tmp.mkdir(parents=True, exist_ok=True)
        with _flocked(self.tmp / f"{digest}.lock", fcntl.LOCK_EX):
            hit = self.get(digest, size)  # another process fetched it while we waited
            if hit is not None:
                return hit
            tmp = self.tmp / f"{digest}.{os.getpid()}.{uuid.uuid4().hex[:8]}{_SUFFIX}"
            try:
                fetch(tmp)
                self.downloads += 1
                actual, n = digest_file(tmp)
                if actual != digest or n != size:
                    raise CorruptFileError(
                        f"stored file {digest[:12]} is damaged in the object store: "
                        + (f"{n} bytes, expected {size}" if n != size else "its content does not match its digest")
                    )
                self._place(tmp, digest)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        self.evict(keep=digest)
        return self.path_of(digest)

    @contextlib.contextmanager
    def hold(self, digest: str, size: int, fetch: Callable[[Path], None]) -> Iterator[Path]:
        """The cached file (filled as :meth:`fill` does), kept from eviction by a shared lock
        until the block ends: for a reader that hands its path on (TensorFlow via a symlink)."""
        for _ in range(5):
            path = self.fill(digest, size, fetch)
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # evicted between fill and open: fill again
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                try:
                    same = os.fstat(fd).st_ino == os.stat(path).st_ino
                except FileNotFoundError:
                    same = False
                if not same:  # evicted (or replaced) before the lock: fill again
                    continue
                yield path
                return
            finally:
                os.close(fd)
        raise CorruptFileError(f"stored file {digest[:12]} keeps disappearing from the cache {self.root}: is another process evicting it?")

    def adopt(self, path: Path, digest: str) -> None:
        """Move a local file already known to hold ``digest`` (a save's staged file) into the
        cache; a later restore on this host then downloads nothing."""
        self.adopt_many([(path, digest)])

    def adopt_many(self, items: list[tuple[Path, str]]) -> None:
        """:meth:`adopt` for several files, waiting for the clock once (see :meth:`_record`)."""
        placed = []
        for path, digest in items:
            try:
                self._place(path, digest, record=False)
                placed.append(digest)
            except OSError:  # another filesystem: not worth a copy
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        for digest in placed:
            self._record(self.path_of(digest), digest)
        for digest in placed:
            self.evict(keep=digest)

    def _place(self, path: Path, digest: str, *, record: bool = True) -> None:
        dest = self.path_of(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o444)
        # The signature is taken after the rename, which may change ctime; a reader between the
        # two finds no sidecar and hashes the file once more.
        os.replace(path, dest)  # atomic: readers see nothing or the whole checked file
        if record:
            self._record(dest, digest)

    def discard(self, digest: str) -> None:
        for p in (self.path_of(digest), self._sig_path(digest)):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def usage(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def _entries(self) -> Iterator[tuple[Path, int, float]]:
        """(object, size, last use): last use is the later of the object's and its sidecar's mtime."""
        if not self.objects.is_dir():
            return
        for sub in self.objects.iterdir():
            with contextlib.suppress(OSError):
                for f in sub.iterdir():
                    if f.name.endswith(_SIG) or f.name.endswith(_SUFFIX):
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        st = f.stat()
                        used = st.st_mtime
                        with contextlib.suppress(FileNotFoundError):
                            used = max(used, os.stat(f.with_name(f.name + _SIG)).st_mtime)
                        yield f, st.st_size, used

    def evict(self, keep: str | None = None) -> int:
        """Remove least recently used files until the cache is within its limit; returns bytes freed."""
        self.root.mkdir(parents=True, exist_ok=True)
        with _flocked(self.root / "cache.lock", fcntl.LOCK_EX):
            entries = list(self._entries())
            total = sum(n for _, n, _ in entries)
            freed = 0
            now = time.time()
            self._remove_abandoned_tmp(now)
            if total <= self.limit:
                return 0
            keep_path = self.path_of(keep) if keep else None
            for path, n, mtime in sorted(entries, key=lambda e: e[2]):
                if total - freed <= self.limit:
                    break
                if path == keep_path or now - mtime < IN_USE_S:
                    continue
                if _remove_unless_held(path):
                    freed += n
                    with contextlib.suppress(FileNotFoundError):
                        path.with_name(path.name + _SIG).unlink()
            if freed:
                log.info("cache %s: evicted %d bytes", self.root, freed)
            return freed

    def _remove_abandoned_tmp(self, now: float) -> None:
        if not self.tmp.is_dir():
            return
        for f in self.tmp.glob(f"*{_SUFFIX}"):
            with contextlib.suppress(OSError):
                pid = int(f.name.split(".")[1])
                if not pid_alive(pid) or now - f.stat().st_mtime > 24 * 3600:
                    f.unlink()



def settled_signature(path: Path) -> str | None:
    """The stat signature of ``path`` (inode, size, mtime, ctime), taken once the clock that
    stamps file changes has moved past its ctime (see :meth:`ObjectCache._record`), so any later
    write changes it; None if that did not happen within 50 ms."""
    st = os.stat(path)
    deadline = time.monotonic() + 0.05
    while _coarse_now_ns() <= st.st_ctime_ns:
        if time.monotonic() > deadline:
            return None
        time.sleep(0.001)
    return _signature(st)


def current_signature(path: Path) -> str | None:
    """The stat signature of ``path`` now, to compare with a :func:`settled_signature`."""
    try:
        return _signature(os.stat(path))
    except FileNotFoundError:
        return None


def _remove_unless_held(path: Path) -> bool:
    """Unlink ``path`` unless a reader holds its lock (:meth:`ObjectCache.hold`); True if removed."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            return True
        return False
    finally:
        os.close(fd)


def _coarse_now_ns() -> int:
    """The clock the kernel stamps mtime and ctime with (Linux: ``CLOCK_REALTIME_COARSE``)."""
    if _CLOCK_REALTIME_COARSE is not None:
        try:
            return time.clock_gettime_ns(_CLOCK_REALTIME_COARSE)
        except OSError:
            pass
    return time.time_ns()


# linux/time.h (the time module does not name it); other systems number their clocks otherwise.
_CLOCK_REALTIME_COARSE = 5 if sys.platform.startswith("linux") else None


def _signature(st: os.stat_result) -> str:
    # ctime cannot be set back from user space: a write followed by ``touch -d`` still shows.
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


@contextlib.contextmanager
def _flocked(path: Path, mode: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)
