"""The object area: where the bytes of stored files live, addressed by their digest.

:class:`ObjectArea` is the seam for storage backends. A backend implements a few primitives:
put an object from a local file, read it, tell its size, delete it, list what is there, and give
TensorFlow a local staging directory to write into. Everything above this layer (the commit
protocol, the flows, the facade) speaks digests and these methods, never paths inside the area;
everything they call is declared here (abstract, or derived from the primitives once). Backends
are found by the URL scheme of a store's root in ``files.registry``, never by ``isinstance``.
The contract is tested once for every backend: ``tests/files/area_contract.py``.

The commit protocol (``files.commit``) relies on two more guarantees of every backend:

* ``writing()`` (shared) and ``deleting()`` (exclusive) exclude each other, so an object that a
  save is about to reference is never deleted between its ``put`` and its database commit;
* ``put`` is idempotent: putting the same content twice keeps one object.

Objects are immutable once put. ``local_path`` hands out a local file whose bytes are the
object's, for TensorFlow to read: the local backend's own file, which callers must not change.
"""

from __future__ import annotations

import abc
import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO


@dataclass(frozen=True)
class StoredFile:
    """A file that has been put into the object area."""

    digest: str
    size: int
    #: What ``check`` compares to tell the object unchanged (a stat signature, an ETag); None
    #: where the backend has none.
    stat_sig: str | None


class ObjectArea(abc.ABC):
    """Content-addressed, immutable objects plus crash-safe local staging (see module docstring)."""

    # ------------------------------------------------------------------ opening

    @classmethod
    @abc.abstractmethod
    def from_url(cls, url: str, *, fsync: bool = False) -> ObjectArea:
        """The area at ``url`` (``s3://bucket/prefix``; for ``file``, a plain path too), as
        ``files.registry.open_area`` opens it for the scheme this class is registered under.
        Nothing is created or contacted yet. ``fsync``: make each put durable before the
        commit (where the backend has such a choice). A malformed URL is a StoreConfigError."""

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """The root that :meth:`from_url` opens again: what a store records for an area other
        hosts must find from the database alone, and what ``root copy`` compares."""

    @property
    def location(self) -> Any:
        """What ``Store.root`` shows: a local area's directory (a Path), else the URL (or the
        backend's parsed form of it, whose ``str`` is the URL)."""
        return self.url

    # ------------------------------------------------------------------ primitives

    @abc.abstractmethod
    def put(self, path: Path, digest: str, size: int, recorded_sig: str | None = None) -> StoredFile:
        """Store the digested local file ``path`` as object ``digest`` (inside :meth:`writing`).

        The file is consumed (moved or removed). ``recorded_sig`` is the signature the database
        holds for that object: an existing object that no longer matches it is replaced.
        """

    @abc.abstractmethod
    def open(self, digest: str) -> BinaryIO:
        """The object's bytes; :class:`MissingFileError` if it is absent."""

    @abc.abstractmethod
    def size_of(self, digest: str) -> int | None:
        """The object's size in bytes, or None if it is absent."""

    @abc.abstractmethod
    def delete(self, digests: Iterable[str]) -> int:
        """Remove objects (inside :meth:`deleting`, after checking no row names them); returns how many."""

    @abc.abstractmethod
    def listing(self) -> Iterator[tuple[str, int, datetime]]:
        """Every object present, once each: (digest, size, last modified, timezone-aware, by
        the clock of whoever stores the objects). gc of a shared area leaves objects younger
        than its grace period by this time; objects put while the listing runs may be missed."""

    @abc.abstractmethod
    def staging(self, what: str) -> contextlib.AbstractContextManager[Path]:
        """A fresh local directory for TensorFlow to write into, removed afterwards."""

    @abc.abstractmethod
    def stale_staging(self) -> list[str]:
        """Staging directories left by processes that are gone."""

    @abc.abstractmethod
    def remove_staging(self, names: Iterable[str]) -> int:
        """Remove stale staging directories (as returned by :meth:`stale_staging`)."""

    @abc.abstractmethod
    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Held by a save from its first ``put`` until its transaction commits (shared)."""

    @abc.abstractmethod
    def deleting(self) -> contextlib.AbstractContextManager[None]:
        """Held by whoever deletes objects; waits for in-flight saves to commit (exclusive)."""

    @abc.abstractmethod
    def local_path(self, digest: str) -> Path:
        """A local file holding the object's bytes, for TensorFlow to read; never to be changed."""

    @abc.abstractmethod
    def check(self, digest: str, size: int, stat_sig: str | None, *, full: bool, name: str) -> str | None:
        """Raise :class:`MissingFileError` / :class:`CorruptFileError` if the object is absent or
        its bytes are wrong. With ``full=False`` a matching signature stands in for re-hashing.
        Returns the current signature when the object was re-hashed and found intact (for the
        caller to record), else None."""

    @abc.abstractmethod
    def describe(self, digest: str | None = None) -> str:
        """Where the area (or one object) is, for messages."""

    # ------------------------------------------------------------------ derived

    #: True for an area several hosts share without a common lock (S3): deletion is then
    #: coordinated through intents in the database (``files.commit``, ``flows.maintenance``).
    shared_across_hosts: bool = False

    def put_many(
        self,
        items: Sequence[tuple[Path, str, int]],
        recorded: dict[str, str | None] | None = None,
        after_each: Callable[[], None] | None = None,
    ) -> list[StoredFile]:
        """:meth:`put` each (path, digest, size); a backend may do them in parallel."""
        recorded = recorded or {}
        out = []
        for p, d, n in items:
            out.append(self.put(p, d, n, recorded.get(d)))
            if after_each:
                after_each()
        return out

    def held_path(self, digest: str) -> contextlib.AbstractContextManager[Path]:
        """:meth:`local_path`, kept valid until the block ends (a cache does not evict it
        meanwhile): for a path handed on to TensorFlow. The stored file itself here."""
        return contextlib.nullcontext(self.local_path(digest))

    def damaged_copies(self) -> list[tuple[str, str]]:
        """(digest, what was wrong) of this host's local copies (a cache) found damaged and
        removed since the last call: the stored object may be intact, but a damaged copy would
        have been served, so ``verify`` reports it. None for an area without copies."""
        return []

    def close(self) -> None:  # noqa: B027 - an optional hook: most areas hold nothing to release
        """Release clients and threads (nothing for a local directory)."""

    def cache_root(self) -> Path:
        """A local directory for read-only materialized copies (``flows.materialized``); per
        user under the system's temporary directory unless the backend has a better place."""
        import hashlib
        import tempfile

        key = hashlib.sha256(self.describe().encode("utf-8")).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"ckptstore-{os.getuid()}" / key

    def exists(self, digest: str) -> bool:
        return self.size_of(digest) is not None

    def digests(self) -> Iterator[str]:
        """Every object present (:meth:`listing` without sizes and times)."""
        for digest, _, _ in self.listing():
            yield digest

    def copy_in(self, path: Path, digest: str) -> None:
        """Store a copy of the local file ``path`` (left as it is) as object ``digest``, for
        ``root copy``. Derived: a copy in a staging directory, then :meth:`put`."""
        import shutil

        with self.staging("copy") as sdir, self.writing():
            tmp = sdir / digest
            shutil.copyfile(path, tmp)
            self.put(tmp, digest, tmp.stat().st_size)

    def read_range(self, digest: str, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes of the object from ``offset`` (fewer only past its end). Not
        checked against the object's digest: callers check the piece or tensor they read."""
        with self.open(digest) as f:
            f.seek(offset)
            return f.read(size)

    def read_bytes(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def link_to(self, digest: str, dst: str | os.PathLike[str]) -> bool:
        """Make ``dst`` share the object's storage (a hard link) where the backend can; returns
        False where it cannot. A file made so must only be read: writing it changes the object."""
        return False

    def copy_to(self, digest: str, dst: str | os.PathLike[str]) -> None:
        """Write the object's bytes to the new local file ``dst`` (created exclusively)."""
        import shutil

        with self.open(digest) as src, open(dst, "xb") as out:
            shutil.copyfileobj(src, out, 8 << 20)


def file_label(name: str, digest: str) -> str:
    """A stored file as messages name it: ``name (digest prefix)``, or the prefix alone when the
    caller has no file name and passed the prefix as the name (``verify`` does, and prints the
    file's name before the message), so the same id is not shown twice."""
    short = digest[:12]
    return short if name in ("", short) else f"{name} ({short})"
