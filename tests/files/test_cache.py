"""The S3 download cache: nothing planted is served, damage is noticed, signatures, its size limit and its disk."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import ckptstore
from ckptstore.errors import CorruptFileError, DiskFullError, InvalidOptionError
from tests.helpers.hardening import ckpt, ok, one_line_error, plant, shown, tmpfs

# =========================================================================== 1. the S3 cache


def _w(store, ref: str) -> str:  # noqa: ANN001
    names = [v.name for v in store.variables(ref)]
    return next(n for n in names if n.split("/")[-1].startswith("w") or "/w/" in n or n == "w")


def test_a_planted_cache_file_is_never_served(s3store, tiny_model, tmp_path: Path) -> None:  # noqa: ANN001
    with s3store.start_run("r") as run:
        ck = run.save(tiny_model(scale=2.0), 1)
    data = next(f for f in ck.files if f.role == "data")
    cached = s3store.files.cache.path_of(data.digest)
    assert cached.exists()  # the save adopted its staged file
    # Weights of another model, same size: planted over the cached copy.
    with s3store.start_run("other") as run:
        planted = run.save(tiny_model(scale=9.0), 1)
    pdata = next(f for f in planted.files if f.role == "data")
    plant(cached, s3store.files.cache.path_of(pdata.digest).read_bytes())

    target = tiny_model(scale=0.0)
    s3store.restore(ck.ref, target)
    assert np.allclose(target.w.numpy(), 2.0)  # downloaded again, not the planted 9.0
    assert np.allclose(s3store.read_variable(ck.ref, _w(s3store, ck.ref)), 2.0)
    out = s3store.materialize(ck.ref, tmp_path / "out")
    assert Path(str(out) + ".data-00000-of-00001").read_bytes() == cached.read_bytes()


def test_verify_notices_a_damaged_cache_copy(s3store, tiny_model) -> None:  # noqa: ANN001
    with s3store.start_run("r") as run:
        ck = run.save(tiny_model(scale=2.0), 1)
    data = next(f for f in ck.files if f.role == "data")
    cached = s3store.files.cache.path_of(data.digest)
    plant(cached, b"\xff" * os.path.getsize(cached))
    for full in (False, True):
        if full:
            s3store.restore(ck.ref, tiny_model(0.0))  # downloads it again
            plant(cached, b"\x01" * os.path.getsize(cached))
        report = s3store.verify(full=full)
        assert not report.ok
        assert any("cached copy" in p.detail for p in report.problems), report.problems
        # The bad copy is gone; the bucket's copy is intact, so the next verify is clean.
        assert not cached.exists()
        assert s3store.verify(full=full).ok


def test_a_planted_cache_file_is_not_restored_by_the_cli(s3_server, tmp_path: Path, tiny_model) -> None:  # noqa: ANN001
    cache = tmp_path / "cache"
    os.environ["CKPTSTORE_CACHE_DIR"] = str(cache)
    try:
        with ckptstore.open_store(tmp_path / "store", root=f"s3://{s3_server.new_bucket()}/p") as s:
            with s.start_run("r") as run:
                ck = run.save(tiny_model(scale=2.0), 1)
            data = next(f for f in ck.files if f.role == "data")
            cached = s.files.cache.path_of(data.digest)
            good = cached.read_bytes()
    finally:
        del os.environ["CKPTSTORE_CACHE_DIR"]
    plant(cached, b"\x00" * len(good))
    env = {"CKPTSTORE_CACHE_DIR": str(cache)}
    r = ckpt("verify", store=tmp_path / "store", env=env)
    assert r.returncode != 0 and "cached copy" in r.stdout + r.stderr, shown(r)
    plant(cached, b"\x00" * len(good)) if cached.exists() else None
    ok(ckpt("restore", "r@1", "--to", str(tmp_path / "out"), store=tmp_path / "store", env=env))
    restored = next((tmp_path / "out").glob("*.data-*"))
    assert restored.read_bytes() == good


def test_an_old_cache_without_signatures_is_hashed_once(tmp_path: Path) -> None:
    from ckptstore.files.cache import ObjectCache
    from ckptstore.files.digest import digest_file

    src = tmp_path / "f"
    src.write_bytes(b"abc" * 1000)
    d, n = digest_file(src)
    c = ObjectCache(tmp_path / "c", limit=1 << 20)
    p = c.fill(d, n, lambda tmp: shutil.copyfile(src, tmp))
    sig = p.with_name(p.name + ".sig")
    sig.unlink()  # a cache written before signatures existed
    assert c.get(d, n) == p and sig.exists()
    os.chmod(p, 0o644)
    p.write_bytes(b"xyz" * 1000)
    assert c.get(d, n) is None and not p.exists()
    c.fill(d, n, lambda tmp: shutil.copyfile(src, tmp))
    os.chmod(p, 0o644)
    p.write_bytes(b"xyz" * 1000)
    with pytest.raises(CorruptFileError, match="cached copy"):
        c.checked(d, n)


def test_a_change_right_after_caching_is_still_seen(tmp_path: Path) -> None:
    """A write in the same clock tick as the signature would leave mtime and ctime as recorded
    where the kernel stamps coarsely: the signature is recorded only once the tick is over."""
    from ckptstore.files.cache import ObjectCache
    from ckptstore.files.digest import digest_file

    src = tmp_path / "f"
    src.write_bytes(b"abc" * 1000)
    d, n = digest_file(src)
    c = ObjectCache(tmp_path / "c", limit=1 << 20)
    for _ in range(20):
        p = c.fill(d, n, lambda tmp: shutil.copyfile(src, tmp))
        plant(p, b"xyz" * 1000)  # at once, mtime put back
        assert c.get(d, n) is None and not p.exists()


# =========================================================================== 4 and a note: the cache's disk and size


@pytest.mark.parametrize("text", ["-5G", "-1", "nan", "inf", "5X"])
def test_a_negative_or_bogus_cache_size_is_refused(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ckptstore.files.cache import ObjectCache

    monkeypatch.setenv("CKPTSTORE_CACHE_SIZE", text)
    with pytest.raises(InvalidOptionError, match="size"):
        ObjectCache(tmp_path / "c")


def test_a_full_cache_disk_is_named_not_the_network(s3_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from tests.helpers.hardening import big_module

    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "writer-cache"))
    with ckptstore.open_store(tmp_path / "store", root=f"s3://{s3_server.new_bucket()}/p") as s:
        with s.start_run("big") as run:
            run.save(big_module(256 * 1024), 1)  # 1 MiB of data
    with tmpfs(tmp_path / "small", "256k") as mnt:
        monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(mnt))
        with ckptstore.open_store(tmp_path / "store") as s:
            with pytest.raises(DiskFullError) as info:
                s.materialize("big@1", tmp_path / "out")
        text = str(info.value)
        assert "space" in text and str(mnt) in text and "http" not in text, text
        r = ckpt("restore", "big@1", "--to", str(tmp_path / "out2"), store=tmp_path / "store", env={"CKPTSTORE_CACHE_DIR": str(mnt)})
        one_line_error(r, "space", str(mnt))


# =========================================================================== notes: the UI's inputs, undecodable names
def test_the_cache_keeps_to_its_limit_except_for_files_being_read(tmp_path: Path) -> None:
    from ckptstore.files.cache import ObjectCache
    from ckptstore.files.digest import digest_file

    c = ObjectCache(tmp_path / "c", limit=3000)
    files = []
    for i in range(6):
        src = tmp_path / f"f{i}"
        src.write_bytes(bytes([i]) * 1000)
        d, n = digest_file(src)
        files.append((d, n, src))
    d0, n0, s0 = files[0]
    with c.hold(d0, n0, lambda tmp: shutil.copyfile(s0, tmp)) as held:
        for d, n, src in files[1:]:
            c.fill(d, n, lambda tmp, src=src: shutil.copyfile(src, tmp))
            assert c.usage() <= 3000 + 1000  # the limit, plus the one file being read
        assert held.read_bytes() == s0.read_bytes()  # a held file is never evicted
    c.fill(files[-1][0], files[-1][1], lambda tmp: shutil.copyfile(files[-1][2], tmp))
    c.evict()
    assert c.usage() <= 3000


def test_restores_keep_the_s3_cache_within_its_limit(s3_server, tmp_path: Path, tiny_model, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from tests.helpers.hardening import big_module

    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "writer"))
    with ckptstore.open_store(tmp_path / "store", root=f"s3://{s3_server.new_bucket()}/p") as s:
        with s.start_run("big") as run:
            for step in range(1, 5):
                run.save(big_module(64 * 1024, fill=float(step)), step)  # 256 KiB each
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "reader"))
    monkeypatch.setenv("CKPTSTORE_CACHE_SIZE", "600K")
    with ckptstore.open_store(tmp_path / "store") as s:
        for step in range(1, 5):
            target = big_module(64 * 1024, fill=0.0)
            s.restore(f"big@{step}", target)
            assert float(target.w.numpy()[0]) == float(step)
            assert s.files.cache.usage() <= 600 * 1024 + 300 * 1024
        s.files.cache.evict()
        assert s.files.cache.usage() <= 600 * 1024
