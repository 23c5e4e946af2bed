"""Materializing checkpoints and exports: writes stay inside the target, no inode shared with the store, all or nothing."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.hardening import (
    TMP_SUFFIX,
    big_module,
    one_line,
    read_restored,
    store_state,
    temp_leftovers,
    tmpfs,
    tree,
)
from tests.helpers.processes import run_py
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()

import ckptstore  # noqa: E402
from ckptstore.errors import (  # noqa: E402
    ConflictError,
    DiskFullError,
)

# =========================================================================== 4. writes stay inside the target


@pytest.fixture
def around(tmp_path):
    """(work dir holding the targets, outside dir holding a victim file and directory)."""
    work, outside = tmp_path / "work", tmp_path / "outside"
    work.mkdir()
    (outside / "vdir").mkdir(parents=True)
    (outside / "victim").write_text("precious\n")
    (outside / "vdir" / "inside").write_text("also precious\n")
    return work, outside


def _names(ck):
    index = next(f.file_name for f in ck.files if f.role == "index")
    data = next(f.file_name for f in ck.files if f.role == "data")
    return {"state-file": "checkpoint", "index": index, "data": data}


def _stored_bytes(store, digest: str) -> bytes:
    return store.files.read_bytes(digest)


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
@pytest.mark.parametrize("which", ["state-file", "index", "data"])
def test_materialize_never_follows_a_symlink_planted_at_a_final_name(saved, around, which, dangling):
    store, ck, _ = saved
    work, outside = around
    out = work / "out"
    out.mkdir()
    name = _names(ck)[which]
    pointed = outside / ("not-yet" if dangling else "victim")
    os.symlink(pointed, out / name)
    before_out, before_outside, before_store = tree(out), tree(outside), store_state(store)

    with pytest.raises(ConflictError) as info:
        store.materialize("r@1", out)
    assert name in one_line(info.value)
    assert tree(out) == before_out and tree(outside) == before_outside
    assert temp_leftovers(work) == [] and store_state(store) == before_store

    store.materialize("r@1", out, force=True)
    assert tree(outside) == before_outside  # the victim unchanged, nothing created at "not-yet"
    assert not (out / name).is_symlink() and (out / name).is_file()
    np.testing.assert_array_equal(read_restored(out, "model/w"), np.full([3, 2], 2.0, np.float32))
    assert temp_leftovers(work) == [] and store_state(store) == before_store


@pytest.mark.parametrize("which", ["state-file", "index", "data"])
def test_materialize_never_overwrites_a_users_file_without_force(saved, around, which):
    store, ck, _ = saved
    work, outside = around
    out = work / "out"
    out.mkdir()
    name = _names(ck)[which]
    (out / name).write_text('model_checkpoint_path: "my-own-model"\n' if which == "state-file" else "mine\n")
    (out / "notes.txt").write_text("the user's\n")
    before_out, before_store = tree(out), store_state(store)

    with pytest.raises(ConflictError) as info:
        store.materialize("r@1", out)
    assert name in one_line(info.value)
    assert tree(out) == before_out  # nothing else was written either
    assert temp_leftovers(work) == [] and store_state(store) == before_store

    store.materialize("r@1", out, force=True)
    assert (out / "notes.txt").read_text() == "the user's\n"
    assert tf.train.latest_checkpoint(str(out)) == str(out / ck.prefix)
    np.testing.assert_array_equal(read_restored(out, "model/w"), np.full([3, 2], 2.0, np.float32))
    for f in ck.files:
        assert (out / f.file_name).read_bytes() == _stored_bytes(store, f.digest)
    assert temp_leftovers(work) == [] and store_state(store) == before_store


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
@pytest.mark.parametrize("which", ["pb", "sidecar"])
def test_export_never_follows_a_symlink_planted_at_a_final_name(saved, around, which, dangling):
    store, _, exp = saved
    work, outside = around
    pb = work / "model.pb"
    planted = pb if which == "pb" else work / "model.pb.json"
    os.symlink(outside / ("not-yet" if dangling else "victim"), planted)
    before_work, before_outside, before_store = tree(work), tree(outside), store_state(store)

    with pytest.raises(ConflictError) as info:
        store.export_frozen(exp.ref, pb)
    assert planted.name in one_line(info.value)
    assert tree(work) == before_work and tree(outside) == before_outside
    assert store_state(store) == before_store

    store.export_frozen(exp.ref, pb, force=True)
    assert tree(outside) == before_outside
    for p in (pb, work / "model.pb.json"):
        assert p.is_file() and not p.is_symlink()
    assert pb.read_bytes() == _stored_bytes(store, exp.digest)
    assert json.loads((work / "model.pb.json").read_text())["digest"] == exp.digest
    assert temp_leftovers(work) == []


@pytest.mark.parametrize("which", ["pb", "sidecar"])
def test_export_never_overwrites_an_existing_file_without_force(saved, around, which):
    store, _, exp = saved
    work, _ = around
    pb = work / "model.pb"
    existing = pb if which == "pb" else work / "model.pb.json"
    existing.write_text("the user's own\n")
    before_work, before_store = tree(work), store_state(store)

    with pytest.raises(ConflictError) as info:
        store.export_frozen(exp.ref, pb)
    assert existing.name in one_line(info.value)
    assert tree(work) == before_work and store_state(store) == before_store

    store.export_frozen(exp.ref, pb, force=True)
    assert pb.read_bytes() == _stored_bytes(store, exp.digest)
    assert json.loads((work / "model.pb.json").read_text())["export"] == exp.ref
    assert temp_leftovers(work) == []


def test_symlinks_planted_at_temporary_names_never_lead_outside(saved, around):
    store, ck, exp = saved
    work, outside = around
    # The names an older ckptstore used, and names shaped like today's random ones.
    guesses = ["", ".abc", ".00000000", ".tmp", ".xxxxxxxx", ".a1b2c3d4"]
    for g in guesses:
        os.symlink(outside / "vdir", work / f".out{g}{TMP_SUFFIX}")
        os.symlink(outside / "victim", work / f".model.pb{g}{TMP_SUFFIX}")
        os.symlink(outside / "victim", work / f".model.pb.json{g}{TMP_SUFFIX}")
    (work / "out").mkdir()
    os.symlink(outside / "victim", work / "out" / f".checkpoint{TMP_SUFFIX}")
    before_outside = tree(outside)
    planted = {k: v for k, v in tree(work).items() if v[0] == "link"}

    store.materialize("r@1", work / "out")
    store.materialize("r@1", work / "fresh")  # a target that does not exist yet
    store.export_frozen(exp.ref, work / "model.pb")

    assert tree(outside) == before_outside
    np.testing.assert_array_equal(read_restored(work / "out", "model/w"), np.full([3, 2], 2.0, np.float32))
    np.testing.assert_array_equal(read_restored(work / "fresh", "model/w"), np.full([3, 2], 2.0, np.float32))
    assert (work / "model.pb").read_bytes() == _stored_bytes(store, exp.digest)
    # The planted links are still where they were, pointing where they did: never written through.
    now = tree(work)
    for k, v in planted.items():
        assert now.get(k) == v, k


# =========================================================================== 5. no shared inodes


def test_restored_files_share_no_inode_with_the_store(saved, tmp_path, tiny_model):
    store, ck, _ = saved
    out = tmp_path / "out"
    store.materialize("r@1", out)
    for f in ck.files:
        restored = os.stat(out / f.file_name)
        stored = os.stat(store.files.local_path(f.digest))
        assert restored.st_ino != stored.st_ino, f.file_name
        assert restored.st_nlink == 1, f.file_name
    # A tool that edits a restored file in place leaves the stored checkpoint intact.
    data = out / _names(ck)["data"]
    with open(data, "r+b") as fh:
        fh.write(b"\xff\xff\xff\xff")
    index = out / _names(ck)["index"]
    with open(index, "ab") as fh:
        fh.write(b"appended")
    report = store.verify()
    assert report.ok and report.problems == [], report.problems
    target = tiny_model(0.0, 0.0)
    store.restore("r@1", target, verify="full")
    np.testing.assert_array_equal(target.w.numpy(), np.full([3, 2], 2.0, np.float32))


def test_hard_links_only_on_request(saved, tmp_path):
    store, ck, _ = saved
    out = tmp_path / "out"
    store.materialize("r@1", out, link="hard")
    for f in ck.files:
        assert os.stat(out / f.file_name).st_ino == os.stat(store.files.local_path(f.digest)).st_ino
    # The state file is the restore's own.
    assert os.stat(out / "checkpoint").st_nlink == 1
    doc = ckptstore.Store.materialize.__doc__ or ""
    assert "read-only" in doc


# =========================================================================== 6. all-or-nothing restore


MATERIALIZE_CHILD = textwrap.dedent(
    """
    import sys, ckptstore
    store = ckptstore.open_store(sys.argv[1], create=False)
    store.materialize("r@1", sys.argv[2])
    print("done")
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("target_exists", [False, True], ids=["new-target", "existing-target"])
def test_sigkill_before_the_move_leaves_the_target_as_it_was(saved, tmp_path, target_exists):
    store, ck, _ = saved
    work = tmp_path / "work"
    work.mkdir()
    out = work / "out"
    if target_exists:
        out.mkdir()
        (out / "notes.txt").write_text("the user's\n")
    before_out, before_store = tree(out), store_state(store)

    r = run_py(MATERIALIZE_CHILD, str(store.root), str(out), env={"CKPTSTORE_FAULT": "materialized"}, timeout=120)
    assert r.returncode == -9, (r.returncode, r.stderr[-2000:])
    assert tree(out) == before_out  # absent, or exactly as it was
    leftovers = temp_leftovers(work)
    assert len(leftovers) == 1 and leftovers[0].startswith(".out."), os.listdir(work)
    assert store_state(store) == before_store

    # The retry works (the leftover is not in its way) and vanilla TensorFlow reads the result.
    store.materialize("r@1", out)
    np.testing.assert_array_equal(read_restored(out, "model/w"), np.full([3, 2], 2.0, np.float32))
    if target_exists:
        assert (out / "notes.txt").read_text() == "the user's\n"


def test_restore_into_a_full_disk_fails_in_one_line_and_leaves_nothing(sqlite_store, tmp_path):
    with sqlite_store.start_run("big") as run:
        run.save(big_module(64 * 1024), 1)  # 256 KiB of data, four times the disk
    before = store_state(sqlite_store)
    with tmpfs(tmp_path / "small", "64k") as mnt:
        with pytest.raises(DiskFullError) as info:
            sqlite_store.materialize("big@1", mnt / "out")
        text = one_line(info.value)
        assert "space" in text and str(mnt) in text, text
        assert os.listdir(mnt) == []
        # An existing target directory is left as it was too.
        (mnt / "keep").mkdir()
        (mnt / "keep" / "notes.txt").write_text("x\n")
        kept = tree(mnt)
        with pytest.raises(DiskFullError):
            sqlite_store.materialize("big@1", mnt / "keep")
        assert tree(mnt) == kept
    assert store_state(sqlite_store) == before


# =========================================================================== found in review
def test_materialize_keeps_an_existing_directory_and_works_across_filesystems(saved, tmp_path):
    store, ck, _ = saved
    mine = tmp_path / "mine"
    mine.mkdir()
    os.chmod(mine, 0o2750)
    before = os.stat(mine)
    store.materialize(ck, mine)
    after = os.stat(mine)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)  # the user's directory, kept
    assert tf.train.latest_checkpoint(str(mine))
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem at /dev/shm")
    elsewhere = Path(tempfile_dir := __import__("tempfile").mkdtemp(dir=shm))
    try:
        (elsewhere / "keep.txt").write_text("x")
        link = tmp_path / "link"
        link.symlink_to(elsewhere)
        store.materialize(ck, link)
        assert (elsewhere / "keep.txt").read_text() == "x" and tf.train.latest_checkpoint(str(link))
        assert not [p for p in elsewhere.iterdir() if p.name.endswith(".ckptstore-tmp")]
    finally:
        __import__("shutil").rmtree(tempfile_dir, ignore_errors=True)
