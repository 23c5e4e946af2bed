"""A toy in-memory object area, added purely by docs/architecture.md's "Adding an object-area
backend" steps, passes the area contract and runs a store: the steps are complete and the
flows call nothing a backend is not told to implement.

Step 1: subclass ObjectArea and implement its abstract methods (below). Step 2: register the
scheme (the ``registered`` fixture). Step 3: run the contract (``TestMemoryArea``) and a store
on it (``test_a_store_saves_restores_verifies_and_collects_on_the_memory_area``).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, ClassVar

import blake3
import pytest

from ckptstore.errors import CorruptFileError, MissingFileError, StoreConfigError
from ckptstore.files.area import ObjectArea, StoredFile, file_label
from ckptstore.files.registry import AREAS, open_area, register_area
from tests.files.area_contract import AreaContract

# --------------------------------------------------------------------------- step 1: the class


class _SharedExclusive:
    """Many holders of ``shared``, or one of ``exclusive`` (threads of this process)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive and self._shared == 0)
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class MemoryObjectArea(ObjectArea):
    """Objects in this process's memory under a name (``memory://NAME``); staging and the local
    copies TensorFlow reads in a temporary directory."""

    #: name -> digest -> (bytes, when put): every area of one name sees the same objects.
    _spaces: ClassVar[dict[str, dict[str, tuple[bytes, datetime]]]] = {}
    _locks: ClassVar[dict[str, _SharedExclusive]] = {}
    _live_staging: ClassVar[set[str]] = set()
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str) -> None:
        self.name = name
        with self._guard:
            self.objects = self._spaces.setdefault(name, {})
            self.lock = self._locks.setdefault(name, _SharedExclusive())
        self.local = Path(tempfile.gettempdir()) / f"ckptstore-memory-{os.getuid()}-{os.getpid()}" / name

    @classmethod
    def from_url(cls, url: str, *, fsync: bool = False) -> MemoryObjectArea:
        name = url.partition("://")[2].strip("/")
        if not name or "/" in name:
            raise StoreConfigError(f"{url!r} is not a memory://NAME root")
        return cls(name)

    @property
    def url(self) -> str:
        return f"memory://{self.name}"

    def put(self, path: Path, digest: str, size: int, recorded_sig: str | None = None) -> StoredFile:
        data = Path(path).read_bytes()
        with self._guard:
            # Whole bytes replace whole bytes under the lock: never visible half-put.
            if self.objects.get(digest, (b"",))[0] != data:
                self.objects[digest] = (data, datetime.now(timezone.utc))
        Path(path).unlink()
        return StoredFile(digest, size, None)

    def _bytes(self, digest: str) -> bytes:
        with self._guard:
            found = self.objects.get(digest)
        if found is None:
            raise MissingFileError(f"stored file {digest[:12]} is missing from {self.url}")
        return found[0]

    def open(self, digest: str) -> BinaryIO:
        return io.BytesIO(self._bytes(digest))

    def size_of(self, digest: str) -> int | None:
        with self._guard:
            found = self.objects.get(digest)
        return len(found[0]) if found is not None else None

    def delete(self, digests: Iterable[str]) -> int:
        n = 0
        with self._guard:
            for d in digests:
                n += self.objects.pop(d, None) is not None
        for d in digests:
            with contextlib.suppress(FileNotFoundError):
                (self.local / "copies" / d).unlink()
        return n

    def listing(self) -> Iterator[tuple[str, int, datetime]]:
        with self._guard:
            items = [(d, len(b), t) for d, (b, t) in self.objects.items()]
        yield from items

    @contextlib.contextmanager
    def staging(self, what: str) -> Iterator[Path]:
        path = self.local / "staging" / f"{what}-{uuid.uuid4().hex[:12]}"
        path.mkdir(parents=True)
        with self._guard:
            self._live_staging.add(str(path))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            with self._guard:
                self._live_staging.discard(str(path))

    def stale_staging(self) -> list[str]:
        root = self.local / "staging"
        with self._guard:
            live = set(self._live_staging)
        return sorted(str(p) for p in root.iterdir() if str(p) not in live) if root.is_dir() else []

    def remove_staging(self, names: Iterable[str]) -> int:
        n = 0
        for name in names:
            shutil.rmtree(name, ignore_errors=True)
            n += 1
        return n

    def writing(self) -> contextlib.AbstractContextManager[None]:
        return self.lock.shared()

    def deleting(self) -> contextlib.AbstractContextManager[None]:
        return self.lock.exclusive()

    def local_path(self, digest: str) -> Path:
        path = self.local / "copies" / digest
        if not path.exists():
            data = self._bytes(digest)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{digest}.{uuid.uuid4().hex}")
            tmp.write_bytes(data)
            os.chmod(tmp, 0o444)
            os.replace(tmp, path)
        return path

    def check(self, digest: str, size: int, stat_sig: str | None, *, full: bool, name: str) -> str | None:
        try:
            data = self._bytes(digest)
        except MissingFileError:
            raise MissingFileError(f"stored file {file_label(name, digest)} is missing from {self.url}") from None
        if len(data) != size:
            raise CorruptFileError(f"stored file {file_label(name, digest)} is {len(data)} bytes, expected {size}")
        if full and blake3.blake3(data).hexdigest() != digest:
            raise CorruptFileError(f"stored file {file_label(name, digest)} does not match its digest")
        return None

    def describe(self, digest: str | None = None) -> str:
        return f"{self.url}/{digest}" if digest is not None else self.url


# --------------------------------------------------------------------------- step 2: register


@pytest.fixture
def registered() -> Iterator[str]:
    """A fresh memory space per test, registered for the test only."""
    register_area("memory", MemoryObjectArea)
    name = f"t{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        AREAS.unregister("memory")
        MemoryObjectArea._spaces.pop(name, None)
        shutil.rmtree(Path(tempfile.gettempdir()) / f"ckptstore-memory-{os.getuid()}-{os.getpid()}" / name, ignore_errors=True)


# --------------------------------------------------------------------------- step 3: the contract, and a store


class TestMemoryArea(AreaContract):
    @pytest.fixture
    def area(self, registered: str) -> ObjectArea:
        return open_area(f"memory://{registered}")


def test_an_unregistered_scheme_is_one_clear_error(tmp_path: Path) -> None:
    import ckptstore

    with pytest.raises(StoreConfigError, match="no object-area backend for nosuch:// roots"):
        ckptstore.open_store(tmp_path / "store", root="nosuch://x")


def test_a_store_saves_restores_verifies_and_collects_on_the_memory_area(registered: str, tmp_path: Path, tiny_model) -> None:
    import ckptstore

    root = f"memory://{registered}"
    with ckptstore.open_store(tmp_path / "store", root=root) as store:
        assert isinstance(store.files, MemoryObjectArea)
        with store.start_run("toy") as run:
            run.save(tiny_model(scale=2.0), step=1)
            run.save(tiny_model(scale=3.0), step=2)
        model = tiny_model()
        store.restore("toy@1", model)
        assert float(model.w.numpy()[0, 0]) == 2.0
        assert store.verify().problems == []
        before = set(store.files.digests())
        store.delete_checkpoint("toy@1")
        store.gc()
        after = set(store.files.digests())
        assert after and after < before
    # The root is recorded: the store opens its memory area again from the database alone.
    with ckptstore.open_store(tmp_path / "store") as again:
        assert again.files.url == root
        model = tiny_model()
        again.restore("toy@2", model)
        assert float(model.w.numpy()[0, 0]) == 3.0
