"""The contract every object area keeps: what the commit protocol and the flows rely on.

Subclass :class:`AreaContract` in a ``test_*.py`` module with an ``area`` fixture that returns a
fresh, empty area of the backend under test (as fsspec's ``tests/abstract`` classes are
subclassed per implementation): ``test_area_contract.py`` does so for the local directory and
S3 on moto, ``test_memory_area.py`` for a toy area added by docs/architecture.md's steps. The
contract is the docstrings of ``ckptstore.files.area.ObjectArea``; each test names the clause it
checks. Nothing here knows a backend's layout: only the declared methods are called.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import blake3
import pytest

from ckptstore.errors import CorruptFileError, MissingFileError
from ckptstore.files.area import ObjectArea, StoredFile
from ckptstore.files.registry import AREAS, open_area, scheme_of

ABSENT = "0" * 64


def blob(tmp_path: Path, data: bytes, name: str | None = None) -> tuple[Path, str, int]:
    """A local file holding ``data``, as a save stages one: (path, digest, size)."""
    digest = blake3.blake3(data).hexdigest()
    path = tmp_path / (name or f"{digest[:16]}-{time.monotonic_ns()}")
    path.write_bytes(data)
    return path, digest, len(data)


class AreaContract:
    """Every test takes ``area`` (a fresh, empty area) and ``tmp_path`` (local files to put)."""

    @pytest.fixture
    def area(self, tmp_path: Path) -> ObjectArea:
        raise NotImplementedError("a contract subclass provides a fresh, empty area")

    def put(self, area: ObjectArea, tmp_path: Path, data: bytes) -> str:
        path, digest, size = blob(tmp_path, data)
        with area.writing():
            stored = area.put(path, digest, size)
        assert isinstance(stored, StoredFile) and (stored.digest, stored.size) == (digest, size)
        return digest

    # ------------------------------------------------------------------ opening

    def test_registered_under_its_scheme_and_reopened_from_its_url(self, area: ObjectArea, tmp_path: Path) -> None:
        """from_url / url: the registry opens the same area again from what a store records."""
        digest = self.put(area, tmp_path, b"reopen me")
        assert AREAS.get(scheme_of(area.url)) is type(area)
        again = open_area(area.url)
        try:
            assert type(again) is type(area) and again.url == area.url
            assert again.read_bytes(digest) == b"reopen me"
        finally:
            again.close()
        assert isinstance(area.describe(), str) and isinstance(area.describe(digest), str)

    # ------------------------------------------------------------------ objects

    def test_put_stores_the_bytes_and_consumes_the_file(self, area: ObjectArea, tmp_path: Path) -> None:
        """put: the object then exists with its size and bytes; the local file is consumed."""
        data = os.urandom(3000)
        path, digest, size = blob(tmp_path, data)
        with area.writing():
            area.put(path, digest, size)
        assert not path.exists()
        assert area.exists(digest) and area.size_of(digest) == size
        assert area.read_bytes(digest) == data
        with area.open(digest) as f:
            assert f.read() == data
        assert area.read_range(digest, 100, 50) == data[100:150]
        assert area.read_range(digest, size - 10, 50) == data[-10:]  # fewer only past the end
        assert Path(area.local_path(digest)).read_bytes() == data
        with area.held_path(digest) as held:
            assert Path(held).read_bytes() == data

    def test_put_is_idempotent(self, area: ObjectArea, tmp_path: Path) -> None:
        """put: the same content twice keeps one object."""
        first = self.put(area, tmp_path, b"same bytes")
        second = self.put(area, tmp_path, b"same bytes")
        assert first == second
        assert [d for d, _, _ in area.listing()].count(first) == 1

    def test_concurrent_puts_of_one_digest_leave_one_whole_object(self, area: ObjectArea, tmp_path: Path) -> None:
        """put is atomic: racing puts of the same content never expose a partial object."""
        data = os.urandom(1 << 20)
        items = [blob(tmp_path, data, f"racer-{i}") for i in range(4)]
        errors: list[BaseException] = []

        def go(item: tuple[Path, str, int]) -> None:
            try:
                with area.writing():
                    area.put(*item)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=go, args=(it,)) for it in items]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        digest = items[0][1]
        assert area.read_bytes(digest) == data
        assert [d for d, _, _ in area.listing()] == [digest]

    def test_put_many_returns_one_stored_file_per_item_in_order(self, area: ObjectArea, tmp_path: Path) -> None:
        """put_many: like put for each item (a backend may do them in parallel)."""
        items = [blob(tmp_path, f"item {i}".encode()) for i in range(3)]
        items.append(blob(tmp_path, b"item 0", "dup"))  # the same content twice in one call
        calls = []
        with area.writing():
            stored = area.put_many(items, {}, after_each=lambda: calls.append(1))
        assert [(s.digest, s.size) for s in stored] == [(d, n) for _, d, n in items]
        assert len(calls) <= len(items)
        assert sorted(area.digests()) == sorted({d for _, d, _ in items})

    def test_absent_objects(self, area: ObjectArea) -> None:
        """open / size_of / exists / check of an object that is not there."""
        assert area.size_of(ABSENT) is None and not area.exists(ABSENT)
        with pytest.raises(MissingFileError):
            area.open(ABSENT)
        with pytest.raises(MissingFileError):
            area.read_bytes(ABSENT)
        with pytest.raises(MissingFileError):
            area.check(ABSENT, 1, None, full=False, name="absent")
        with pytest.raises(MissingFileError):
            area.check(ABSENT, 1, None, full=True, name="absent")

    def test_listing_gives_size_and_an_aware_time_once_per_object(self, area: ObjectArea, tmp_path: Path) -> None:
        """listing: (digest, size, last modified, timezone-aware) of every object, once."""
        assert list(area.listing()) == []
        before = datetime.now(timezone.utc) - timedelta(minutes=5)  # server clocks may differ a little
        a = self.put(area, tmp_path, b"a" * 10)
        b = self.put(area, tmp_path, b"b" * 20)
        listed = {d: (n, t) for d, n, t in area.listing()}
        assert set(listed) == {a, b}
        assert listed[a][0] == 10 and listed[b][0] == 20
        for _, when in listed.values():
            assert when.tzinfo is not None and before < when < datetime.now(timezone.utc) + timedelta(minutes=5)
        assert sorted(area.digests()) == sorted([a, b])

    def test_delete_removes_and_ignores_absent_objects(self, area: ObjectArea, tmp_path: Path) -> None:
        """delete: the objects are gone; absent ones are no error."""
        keep = self.put(area, tmp_path, b"keep")
        doomed = self.put(area, tmp_path, b"doomed")
        with area.deleting():
            n = area.delete([doomed, ABSENT])
        assert 1 <= n <= 2  # a backend that cannot tell may count the absent one
        assert not area.exists(doomed) and area.exists(keep)
        assert [d for d, _, _ in area.listing()] == [keep]

    def test_check_tells_intact_from_wrong_size(self, area: ObjectArea, tmp_path: Path) -> None:
        """check: an intact object passes (a signature to record, or None); a size other than
        the recorded one is CorruptFileError, with or without ``full``."""
        digest = self.put(area, tmp_path, b"checked bytes")
        for full in (False, True):
            sig = area.check(digest, len(b"checked bytes"), None, full=full, name="f")
            assert sig is None or isinstance(sig, str)
            with pytest.raises(CorruptFileError):
                area.check(digest, len(b"checked bytes") + 1, None, full=full, name="f")

    def test_check_names_a_file_once(self, area: ObjectArea, tmp_path: Path) -> None:
        """check's errors name the file as ``name (id)``, or by its id alone when the caller
        passes the id as the name (``verify`` prints the file's name beside the message)."""
        digest = self.put(area, tmp_path, b"named bytes")
        for d, size, exc in ((digest, 99, CorruptFileError), (ABSENT, 1, MissingFileError)):
            for name, shown in (("model.ckpt-1.index", f"model.ckpt-1.index ({d[:12]})"), (d[:12], d[:12])):
                with pytest.raises(exc) as raised:
                    area.check(d, size, None, full=True, name=name)
                message = str(raised.value)
                assert f"stored file {shown} " in message and message.count(d[:12]) == 1, message

    def test_copy_to_makes_a_private_copy_and_never_overwrites(self, area: ObjectArea, tmp_path: Path) -> None:
        """copy_to: a new file with the bytes; changing it does not change the object."""
        digest = self.put(area, tmp_path, b"original")
        dst = tmp_path / "copy"
        area.copy_to(digest, dst)
        assert dst.read_bytes() == b"original"
        with pytest.raises(FileExistsError):
            area.copy_to(digest, dst)
        os.chmod(dst, 0o644)
        dst.write_bytes(b"changed")
        assert area.read_bytes(digest) == b"original"
        linked = tmp_path / "link"
        if area.link_to(digest, linked):
            assert linked.read_bytes() == b"original"

    def test_copy_in_leaves_the_source(self, area: ObjectArea, tmp_path: Path) -> None:
        """copy_in (root copy): the object is stored and the local file stays as it was."""
        path, digest, _ = blob(tmp_path, b"copied in")
        area.copy_in(path, digest)
        assert path.read_bytes() == b"copied in" and area.read_bytes(digest) == b"copied in"

    # ------------------------------------------------------------------ staging

    def test_staging_is_a_fresh_local_directory_removed_afterwards(self, area: ObjectArea) -> None:
        """staging: a local, writable, empty-of-our-files directory; gone after the block; a live
        one is never stale."""
        with area.staging("save-1") as sdir, area.staging("save-1") as other:
            assert sdir != other and Path(sdir).is_dir()
            (Path(sdir) / "model.ckpt-1.index").write_bytes(b"x")
            stale = area.stale_staging()
            assert str(sdir) not in stale and str(other) not in stale
        assert not Path(sdir).exists()
        assert area.remove_staging(area.stale_staging()) >= 0

    # ------------------------------------------------------------------ locks

    def test_deleting_waits_for_writing_unless_shared_across_hosts(self, area: ObjectArea) -> None:
        """writing (shared) and deleting (exclusive) exclude each other, so an object a save is
        about to reference is never deleted under it; two writers do not exclude each other."""
        if area.shared_across_hosts:
            with area.writing(), area.deleting():
                pass  # no-ops: intents in the database coordinate instead
            return
        entered = threading.Event()
        other_writer_in, release = threading.Event(), threading.Event()

        def delete() -> None:
            with area.deleting():
                entered.set()

        def write() -> None:
            with area.writing():
                other_writer_in.set()
                release.wait(10)

        with area.writing():
            w = threading.Thread(target=write)
            w.start()
            assert other_writer_in.wait(10)  # writers share
            release.set()
            w.join(10)
            t = threading.Thread(target=delete)
            t.start()
            assert not entered.wait(0.3)
        t.join(10)
        assert entered.is_set()
