"""Hardening (issue 16), the library half: nothing outside the target is touched, no secret is
printed, every failure is one clear ``CkptstoreError`` line, and a refused call changes nothing.

The command-line half is ``tests/test_hardening_cli.py``. Every test compares a state before and
after: the store's rows and the bytes of its objects through the public API
(:func:`tests.helpers.hardening.store_state`), and every entry of the directories around a
target, symlinks with what they point at (:func:`tests.helpers.hardening.tree`).

Permission bits: the tests run as root, which ignores them, so the cases that need them run in
a child without the capabilities that bypass them (``setpriv``, as in ``test_bad_input.py``).
A full disk is a tiny tmpfs (root may mount one; otherwise those tests skip and say why).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import traceback
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest

from tests.helpers.hardening import (
    MALFORMED_URLS,
    SECRET,
    TMP_SUFFIX,
    ab_module,
    as_plain_user,
    big_module,
    fill_up,
    read_restored,
    store_state,
    temp_leftovers,
    tf1_ab,
    tmpfs,
    tree,
)
from tests.helpers.processes import child_env, run_py, with_deadline
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()

import ckptstore  # noqa: E402
from ckptstore.constants import HEAD_REVISION  # noqa: E402
from ckptstore.errors import (  # noqa: E402
    CkptstoreError,
    ConflictError,
    DiskFullError,
    NoCheckpointFoundError,
    RestoreMismatchError,
    StoreOpenError,
    UnknownAliasError,
    UnknownRefError,
    UnknownRunError,
)
from ckptstore.location import redact  # noqa: E402
from ckptstore.tf import state as tfstate  # noqa: E402

HUGE = 2**63  # one past the largest step a BIGINT holds
HUGE_TEXT = "99999999999999999999"


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text and "\r" not in text, repr(text)
    return text


# =========================================================================== 1. store creation


RACE_CHILD = textwrap.dedent(
    """
    import os, sys, time
    import ckptstore, ckptstore.store  # SQLAlchemy too: only the opening itself races
    uri, root, me, go, within = sys.argv[1], sys.argv[2] or None, sys.argv[3], sys.argv[4], float(sys.argv[5])
    open(go + ".ready-" + me, "w").close()
    give_up = time.monotonic() + within
    while not os.path.exists(go):
        if time.monotonic() > give_up:
            sys.exit("child " + me + ": the start signal never came")
        time.sleep(0.0005)
    try:
        with ckptstore.open_store(uri, root=root) as store, store.start_run("w" + me) as run:
            run.log(1, x=float(me))
    except ckptstore.CkptstoreError as exc:
        sys.exit(type(exc).__name__ + ": " + str(exc))
    print("ok")
    """
)


def _open_all_at_once(children, uri: str, root, gate: Path, n: int = 6) -> None:
    """``n`` processes open the same (new) store at one instant and log a metric each."""
    gate.mkdir(parents=True)
    go = gate / "go"
    procs = [children.python(RACE_CHILD, uri, str(root or ""), str(i), str(go), "120", deadline=180) for i in range(n)]
    give_up = time.monotonic() + 120
    while not all((gate / f"go.ready-{i}").exists() for i in range(n)):
        dead = [p for p in procs if p.poll() is not None]
        assert not dead, [p.communicate() for p in dead]
        assert time.monotonic() < give_up, "the children did not get ready"
        time.sleep(0.01)
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        results.append((p.returncode, out.strip(), err.strip()[-800:]))
    failed = [(i, r) for i, r in enumerate(results) if r[0] != 0 or r[1] != "ok"]
    assert not failed, failed


def _one_schema_and_every_run(uri: str, root, n: int = 6) -> None:
    with ckptstore.open_store(uri, root=root, create=False) as s:
        assert s.revision == HEAD_REVISION
        with s.read() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
        assert sorted(r.name for r in s.runs()) == sorted(f"w{i}" for i in range(n))
        for i in range(n):
            assert [(m.step, m.metrics) for m in s.steps(f"w{i}")] == [(1, {"x": float(i)})]
            assert s.get_run(f"w{i}").status == "finished"


@pytest.mark.slow
def test_six_processes_create_one_new_sqlite_store_at_once(tmp_path, children):
    for rnd in range(2):
        loc = tmp_path / f"round{rnd}" / "deep" / "er" / "store"  # no parent exists yet
        _open_all_at_once(children, str(loc), None, tmp_path / f"gate{rnd}")
        _one_schema_and_every_run(str(loc), None)
        assert (loc / "store.db").is_file()


@pytest.mark.slow
@pytest.mark.postgres
def test_six_processes_create_one_new_postgres_store_at_once(pg_server, tmp_path, children):
    uri = pg_server.new_database()
    root = tmp_path / "deep" / "er" / "files"  # the shared file root does not exist yet either
    _open_all_at_once(children, uri, root, tmp_path / "gate")
    _one_schema_and_every_run(uri, root)


# =========================================================================== 2. locations


WEIRD_DIRS = ["weird?dir#x", "pct%41", "user@host:5432", "with space", "file:x?mode=ro", "a?b=c&d#e%20f @g"]


@pytest.mark.parametrize("as_path", [False, True], ids=["str", "Path"])
@pytest.mark.parametrize("name", WEIRD_DIRS)
def test_a_store_directory_named_with_url_characters_is_exactly_that_directory(tmp_path, monkeypatch, name, as_path):
    parent = tmp_path / "parent"
    parent.mkdir()
    monkeypatch.chdir(parent)  # a relative location too: nothing may appear anywhere else in the cwd
    outside = tree(tmp_path)

    loc = parent / name
    with ckptstore.open_store(loc if as_path else str(loc)) as s, s.start_run("r") as run:
        run.log(1, x=1.0)
    assert os.listdir(parent) == [name]
    assert (loc / "store.db").is_file()
    # The run is in that very file (read without ckptstore, which cannot be fooled by its name).
    con = sqlite3.connect(f"file:{quote(str(loc / 'store.db'))}?mode=ro", uri=True)
    try:
        assert [r[0] for r in con.execute("SELECT name FROM runs")] == ["r"]
    finally:
        con.close()

    # Opened again by its relative name, as text and as a Path: the same store, nothing new.
    for again in (name, Path(name)):
        with ckptstore.open_store(again, create=False) as s:
            assert [r.name for r in s.runs()] == ["r"]
    assert os.listdir(parent) == [name]
    after = tree(tmp_path)
    assert {k for k in after if not k.startswith("parent")} == {k for k in outside if not k.startswith("parent")}


# =========================================================================== 3. no secret in any output


REDACTED = [
    "postgresql+psycopg://u:s3cr3t-pw@h:5432/db",
    "postgress://u:s3cr3t-pw@127.0.0.1:1/db",
    "postgresql+pyscopg://u:s3cr3t-pw@127.0.0.1:1/db",
    "postgresql:/u:s3cr3t-pw@h/db",
    "postgresql:u:s3cr3t-pw@h/db",
    "postgresql://u:s3cr3t-pw@h/db?sslmode=bogus",
    "postgresql+psycopg://u@h/db?password=s3cr3t-pw",
    "postgresql+psycopg://u@h/db?sslmode=require&password=s3cr3t-pw&x=1",
    "postgresql+psycopg://u@h/db?PASSWORD=s3cr3t-pw",
    "postgresql+psycopg://u@h/db?sslpassword=s3cr3t-pw",
    "postgresql://u:p@ss-s3cr3t-pw@h/db",  # '@' in the password
    "postgresql://u:s3cr3t-pw/x@h/db",  # '/' in the password
    "postgresql://u:s3cr3t-pw:more@h/db",  # ':' in the password
    "postgresql://u:s3cr3t%2Dpw@h/db",  # percent-encoded
    "postgresql://:s3cr3t-pw@h/db",  # no user name
    "cannot open postgresql://u:s3cr3t-pw@h/db: connection refused",  # inside a sentence
    "'postgresql://u:s3cr3t-pw@h/db'",  # quoted
    "host=h user=u password=s3cr3t-pw dbname=db",  # a libpq keyword string
    "u:s3cr3t-pw@h/db",  # no scheme at all
    "postgresql+psycopg://u:s3cr3t-pw@[::1/db",  # broken IPv6 host
]


@pytest.mark.parametrize("text", REDACTED)
def test_redact_masks_the_password_of_any_location(text):
    masked = redact(text)
    assert "s3cr3t" not in masked, masked
    assert "\n" not in masked
    assert "***" in masked
    # What is left still says where: the host survives.
    assert any(h in masked for h in ("h/db", "h:5432/db", "127.0.0.1", "host=h", "[::1/db")), masked


@pytest.mark.parametrize(
    "text",
    ["/tmp/store", ".ckptstore", "postgresql+psycopg://u@h:5432/db", "sqlite:////tmp/x/store.db",
     "weird?dir#x", "postgresql+psycopg://u@h/db?sslmode=require", "no run named 'r'"],
)
def test_redact_leaves_text_without_a_secret_as_it_is(text):
    assert redact(text) == text




@pytest.mark.parametrize("create", [True, False], ids=["create", "open"])
@pytest.mark.parametrize("url", list(MALFORMED_URLS.values()), ids=list(MALFORMED_URLS))
def test_open_store_never_shows_the_password_of_a_malformed_url(url, create, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CkptstoreError) as info:
        ckptstore.open_store(url, create=create)
    text = one_line(info.value)
    assert SECRET not in text, text
    # Nor in what a traceback would print (chained exceptions included), nor in any log record.
    assert SECRET not in "".join(traceback.format_exception(info.value)), text
    assert SECRET not in caplog.text
    # And no file or directory whose name carries the password was made in the cwd.
    made = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")]
    assert not [m for m in made if "s3cr3t" in m], made


# =========================================================================== 4. writes stay inside the target


@pytest.fixture
def saved(sqlite_store, tiny_model, seed_session):
    """A store with r@1 (the tiny TF2 model, w = 2.0) and export:1 of the seed graph at step 1."""
    run = sqlite_store.start_run("r")
    ck = run.save(tiny_model(2.0, 0.5), 1)
    exp = run.freeze(seed_session, ["op_to_store"], step=1)
    run.finish()
    return sqlite_store, ck, exp


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


# =========================================================================== 7. every failure one line


@pytest.mark.parametrize("backend_name", ["sqlite", pytest.param("postgres", marks=[pytest.mark.slow, pytest.mark.postgres])])
def test_disk_full_during_a_save_is_one_line_and_changes_nothing(backend_name, tmp_path, request, tiny_model):
    with tmpfs(tmp_path / "small", "1m") as mnt:
        if backend_name == "sqlite":
            uri, root = str(mnt / "store"), None
        else:
            uri, root = request.getfixturevalue("pg_server").new_database(), mnt / "files"
        with ckptstore.open_store(uri, root=root) as store:
            run = store.start_run("r")
            run.log(1, loss=1.0)
            run.save(tiny_model(1.0), 1)
            before = store_state(store)
            with pytest.raises(CkptstoreError) as info:
                run.save(big_module(1024 * 1024), 2)  # 4 MiB
            text = one_line(info.value)
            assert isinstance(info.value, DiskFullError), f"{type(info.value).__name__}: {text}"
            assert "space" in text, text
            assert store_state(store) == before  # no checkpoint row, no object, no staging left
            # Once there is room again, saving works.
            run.save(tiny_model(3.0), 3)
            assert [c.step for c in store.checkpoints("r")] == [1, 3]
            run.finish()


def test_disk_full_during_a_metrics_flush_is_one_line_and_keeps_the_values(tmp_path):
    # 6 MB: after the filler goes, the retried flush needs room for 40,000 values, their
    # rollup rows (metadata/rollups.py) and the WAL that commits them.
    with tmpfs(tmp_path / "small", "6m") as mnt:
        with ckptstore.open_store(str(mnt / "store")) as store:
            run = store.start_run("r", flush_every=10**9)
            run.log(0, loss=0.0)
            run.flush()
            filler = fill_up(mnt)
            for step in range(1, 20_001):
                run.log(step, loss=float(step), acc=-float(step))
            with pytest.raises(CkptstoreError) as info:
                run.flush()
            text = one_line(info.value)
            assert isinstance(info.value, DiskFullError), f"{type(info.value).__name__}: {text}"
            filler.unlink()
            run.flush()  # the values were kept for the next attempt
            assert len(store.steps("r")) == 20_001
            run.finish()


PERMISSION_CHILD = textwrap.dedent(
    """
    import json, sys, ckptstore
    store = ckptstore.open_store(sys.argv[1], create=False)
    what, target, ref = sys.argv[2], sys.argv[3], sys.argv[4]
    try:
        if what == "materialize":
            store.materialize(ref, target)
        elif what == "export":
            store.export_frozen(ref, target)
        elif what == "restore":
            import tensorflow as tf
            m = tf.Module(); m.w = tf.Variable(tf.zeros([3, 2])); m.b = tf.Variable(tf.zeros([2]))
            store.restore(ref, m)
        out = {"ok": True}
    except Exception as exc:
        out = {"type": type(exc).__name__, "ours": isinstance(exc, ckptstore.CkptstoreError), "msg": str(exc)}
    print(json.dumps(out))
    """
)


def _as_plain_user(*args: str) -> dict:
    prefix = as_plain_user()
    r = subprocess.run([*prefix, sys.executable, "-c", with_deadline(PERMISSION_CHILD, 170), *args],
                       capture_output=True, text=True, env=child_env(), timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_permission_denied_is_one_line_naming_the_place(saved, tmp_path):
    store, ck, exp = saved
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "notes.txt").write_text("x\n")
    os.chmod(ro, 0o555)
    before = tree(ro)
    try:
        for what, target, ref in (("materialize", ro / "out", ck.ref), ("export", ro / "model.pb", exp.ref)):
            got = _as_plain_user(str(store.root), what, str(target), ref)
            assert got.get("ours") and "permission denied" in got["msg"].lower(), (what, got)
            assert "\n" not in got["msg"] and str(ro) in got["msg"], (what, got)
            assert tree(ro) == before
    finally:
        os.chmod(ro, 0o755)
    # A stored object this user may not read: named, not a raw PermissionError.
    data = next(f for f in ck.files if f.role == "data")
    obj = store.files.local_path(data.digest)
    os.chmod(obj, 0o000)
    try:
        for what, target in (("materialize", tmp_path / "out2"), ("restore", "-")):
            got = _as_plain_user(str(store.root), what, str(target), ck.ref)
            assert got.get("ours"), (what, got)
            named = (data.file_name, data.digest[:12], str(obj), ck.ref)
            assert "\n" not in got["msg"] and any(n in got["msg"] for n in named), (what, got)
        assert not (tmp_path / "out2").exists() and temp_leftovers(tmp_path) == []
    finally:
        os.chmod(obj, 0o444)


@pytest.mark.parametrize(
    "value, as_stored",
    [
        (np.float32(1.5), 1.5),
        (np.int64(7), 7),
        (np.bool_(True), True),
        (np.arange(3), [0, 1, 2]),
        (np.array([[1.5, 2.0], [3.0, 4.0]]), [[1.5, 2.0], [3.0, 4.0]]),
        (np.array(2.5), 2.5),
    ],
    ids=["float32", "int64", "bool", "1d-array", "2d-array", "0d-array"],
)
def test_a_numpy_param_is_stored_as_json_or_refused_by_name(store, value, as_stored):
    before = store_state(store)
    try:
        run = store.start_run("np", params={"weights": value, "lr": 0.1})
    except CkptstoreError as exc:
        text = one_line(exc)
        assert "weights" in text, text
        assert store_state(store) == before  # no run created
        return
    except Exception as exc:  # noqa: BLE001 - the point: nothing but a CkptstoreError
        pytest.fail(f"a numpy param raised {type(exc).__name__}: {exc} (expected stored, or a CkptstoreError naming 'weights')")
    run.finish()
    params = store.get_run("np").params
    assert params == {"weights": as_stored, "lr": 0.1}
    assert type(params["weights"]) is type(as_stored)


def test_a_huge_int_param_round_trips_or_is_refused(store):
    before = store_state(store)
    try:
        store.start_run("big", params={"seed": 2**70}).finish()
    except CkptstoreError as exc:
        assert "seed" in one_line(exc)
        assert store_state(store) == before
        return
    assert store.get_run("big").params == {"seed": 2**70}


def test_steps_out_of_range_are_refused_before_anything_is_written(store, tiny_model):
    run = store.start_run("r")
    run.log(1, loss=1.0)
    run.save(tiny_model(), 1)
    run.flush()
    before = store_state(store)
    for call in (
        lambda: run.log(HUGE, loss=1.0),
        lambda: run.save(tiny_model(), HUGE),
        lambda: store.checkpoint(f"r@{HUGE_TEXT}"),
        lambda: store.resolve(f"export:{HUGE_TEXT}"),
        lambda: store.load_frozen(f"export:{HUGE_TEXT}"),
        lambda: store.restore(f"r@{HUGE_TEXT}", tiny_model()),
    ):
        with pytest.raises(CkptstoreError) as info:
            call()
        one_line(info.value)
    run.flush()
    assert store_state(store) == before
    # Reading past the largest step is no error: there is nothing there.
    assert store.at_step(HUGE) == []
    assert store.steps("r", start=HUGE) == []
    assert [m.step for m in store.steps("r", stop=2**64)] == [1]
    assert [r.run for r in store.at_step(HUGE, nearest=True)] == ["r"]
    run.finish()


def _saver_dir(directory: Path, name: str, step: int, new_seed_graph) -> None:
    """A vanilla Saver directory holding ``name-step`` (and its state file)."""
    g, sess, _ = new_seed_graph()
    with g.as_default():
        saver = tf.compat.v1.train.Saver()
        saver.save(sess, str(directory / name), global_step=step)


def test_an_import_with_a_step_out_of_range_creates_nothing(store, tmp_path, new_seed_graph):
    src = tmp_path / "saver"
    src.mkdir()
    _saver_dir(src, "model.ckpt", 5, new_seed_graph)
    _saver_dir(src, "model.ckpt", 7, new_seed_graph)
    # Step 7's files renamed to a step past 2**63 - 1, and the state file naming it.
    for p in list(src.glob("model.ckpt-7.*")):
        p.rename(src / p.name.replace("model.ckpt-7", f"model.ckpt-{HUGE_TEXT}"))
    (src / "checkpoint").write_text(
        f'model_checkpoint_path: "model.ckpt-{HUGE_TEXT}"\n'
        f'all_model_checkpoint_paths: "model.ckpt-5"\nall_model_checkpoint_paths: "model.ckpt-{HUGE_TEXT}"\n'
    )
    before_src, before = tree(src), store_state(store)
    with pytest.raises(NoCheckpointFoundError) as info:
        store.import_checkpoints(src, run="imported")
    assert HUGE_TEXT in one_line(info.value)
    assert store_state(store) == before  # no run, no objects, no staging
    assert tree(src) == before_src
    # Alone in its directory, too.
    for p in src.glob("model.ckpt-5.*"):
        p.unlink()
    (src / "checkpoint").unlink()
    with pytest.raises(NoCheckpointFoundError):
        store.import_checkpoints(src, run="imported")
    assert store_state(store) == before


# --------------------------------------------------------------------------- deleted by another process


@pytest.fixture
def two_handles(store, store_uri):
    """The test's store, and a second handle on it: another process's view."""
    uri, root = store_uri
    other = ckptstore.open_store(uri, root=root)
    try:
        yield store, other
    finally:
        other.close()


def _mentions(text: str, *names: str) -> bool:
    return any(n in text for n in names)


def test_a_checkpoint_deleted_between_two_calls_is_named(two_handles, tiny_model, tmp_path):
    store, other = two_handles
    run = store.start_run("r")
    ck = run.save(tiny_model(2.0), 1)
    run.finish()
    other.delete_checkpoint(ck.ref)
    other.gc()
    before = store_state(store)
    calls = {
        "restore": lambda: store.restore(ck, tiny_model()),
        "materialize": lambda: store.materialize(ck, tmp_path / "out"),
        "variables": lambda: store.variables(ck),
        "read_variable": lambda: store.read_variable(ck, "model/w"),
        "tag": lambda: store.set_alias("v", ck),
        "checkpoint": lambda: store.checkpoint(ck),
    }
    for what, call in calls.items():
        with pytest.raises(CkptstoreError) as info:
            call()
        assert isinstance(info.value, UnknownRefError) and "r@1" in one_line(info.value), (what, info.value)
    assert not (tmp_path / "out").exists()
    assert store_state(store) == before


@pytest.mark.parametrize("when", ["first-file", "last-file"])
def test_a_checkpoint_deleted_during_materialize_is_named_not_a_raw_os_error(two_handles, tiny_model, tmp_path, when):
    store, other = two_handles
    run = store.start_run("r")
    ck = run.save(tiny_model(2.0), 1)
    run.finish()
    calls = []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        if (when == "first-file" and len(calls) == 1) or (when == "last-file" and done == total):
            other.delete_checkpoint("r@1")
            other.gc()

    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(CkptstoreError) as info:
        store.materialize("r@1", work / "out", progress=progress)
    assert calls, "progress was never called"
    text = one_line(info.value)
    assert _mentions(text, "r@1", *(f.file_name for f in ck.files)), text
    assert os.listdir(work) == []  # no target, no temporary directory


def test_a_run_deleted_while_its_handle_logs_and_saves_is_named(two_handles, tiny_model):
    store, other = two_handles
    run = store.start_run("gone", flush_every=10**9)
    run.log(1, loss=1.0)
    other.delete_run("gone")
    before = store_state(store)
    for what, call in (
        ("flush", run.flush),
        ("save", lambda: run.save(tiny_model(), 2)),
        ("finish", run.finish),
    ):
        with pytest.raises(CkptstoreError) as info:
            call()
        text = one_line(info.value)
        assert isinstance(info.value, UnknownRunError) and "gone" in text, (what, type(info.value).__name__, text)
    assert store_state(store) == before  # nothing written for the deleted run, no orphan object


def test_an_alias_removed_by_another_process_is_named(two_handles, tiny_model, tmp_path):
    store, other = two_handles
    run = store.start_run("r")
    run.save(tiny_model(2.0), 1)
    run.finish()
    store.set_alias("prod", "r@1")
    other.remove_alias("prod")
    for call in (lambda: store.restore("prod", tiny_model()), lambda: store.materialize("prod", tmp_path / "out")):
        with pytest.raises(UnknownAliasError) as info:
            call()
        assert "prod" in one_line(info.value)
    assert not (tmp_path / "out").exists()


# =========================================================================== 8. no partial TF2 restore


@pytest.mark.parametrize(
    "target_kwargs",
    [
        {"a": (9.0, 9.0), "b": (7.0, 7.0, 7.0, 7.0)},  # b has another shape
        {"a": (9.0, 9.0, 9.0, 9.0, 9.0), "b": (7.0, 7.0, 7.0)},  # a has another shape
        {"a": (9.0, 9.0), "b": (7.0, 7.0, 7.0), "b_dtype": "float64"},  # b has another dtype
        {"a": (9.0, 9.0), "b": (7.0, 7.0, 7.0), "extra": True},  # the target has a variable more
    ],
    ids=["b-shape", "a-shape", "b-dtype", "extra-variable"],
)
def test_a_mismatched_tf2_restore_changes_no_variable(sqlite_store, target_kwargs):
    with sqlite_store.start_run("r") as run:
        run.save(ab_module((1.0, 2.0), (1.0, 2.0, 3.0)), 1)
    target = ab_module(**target_kwargs)
    before = {v.name: v.numpy().copy() for v in target.variables}
    with pytest.raises(RestoreMismatchError) as info:
        sqlite_store.restore("r@1", target)
    one_line(info.value)
    after = {v.name: v.numpy() for v in target.variables}
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=f"{name} was changed by a refused restore")


def test_a_mismatched_tf1_restore_changes_no_variable(sqlite_store):
    sess, _, _ = tf1_ab((1.0, 2.0), (1.0, 2.0, 3.0))
    with sqlite_store.start_run("r") as run:
        run.save(sess, 1)
    sess.close()
    target, a, b = tf1_ab((9.0, 9.0), (7.0, 7.0, 7.0, 7.0))
    try:
        with pytest.raises(RestoreMismatchError) as info:
            sqlite_store.restore("r@1", target)
        one_line(info.value)
        va, vb = target.run([a, b])
        np.testing.assert_array_equal(va, [9.0, 9.0])
        np.testing.assert_array_equal(vb, [7.0, 7.0, 7.0, 7.0])
    finally:
        target.close()


# =========================================================================== 9. verify never stops early


def _damaged_store(store, tiny_model):
    """Four checkpoints, and their data files deleted, truncated, flipped and made unreadable;
    plus an unexpected object and a stale staging directory. Returns the unreadable object."""
    from tests.helpers.damage import flip_byte, truncate

    run = store.start_run("r")
    cks = [run.save(tiny_model(float(i)), i) for i in range(1, 6)]
    run.finish()
    data = [next(f for f in ck.files if f.role == "data") for ck in cks]
    assert len({f.digest for f in data}) == 5
    path = [store.files.local_path(f.digest) for f in data]
    path[0].unlink()  # r@1: missing
    truncate(path[1])  # r@2: corrupt
    flip_byte(path[2], 0)  # r@3: corrupt
    os.chmod(path[3], 0o000)  # r@4: unreadable (to a user permission bits bind)
    stray = store.files.objects / "ee" / ("e" * 62)
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"nobody's")
    (store.files.staging_root / f"save-1-999999-0123456789ab{TMP_SUFFIX}").mkdir()
    return path[3]


VERIFY_CHILD = textwrap.dedent(
    """
    import json, sys, ckptstore
    try:
        with ckptstore.open_store(sys.argv[1], create=False) as s:
            r = s.verify()
        print(json.dumps({"ok": r.ok, "problems": [[p.kind, p.checkpoint] for p in r.problems]}))
    except Exception as exc:
        print(json.dumps({"error": type(exc).__name__ + ": " + str(exc)}))
    """
)


@pytest.mark.slow
def test_verify_reports_every_problem_in_one_pass(sqlite_store, tiny_model):
    unreadable = _damaged_store(sqlite_store, tiny_model)
    try:
        found = {(p.kind, p.checkpoint) for p in sqlite_store.verify().problems}
        # As root the 000 file is still readable: every other problem, in one report.
        assert {("missing", "r@1"), ("corrupt", "r@2"), ("corrupt", "r@3")} <= found, found
        assert {k for k, _ in found} >= {"missing", "corrupt", "unexpected", "stale-staging"}, found
        assert ("corrupt", "r@5") not in found and ("missing", "r@5") not in found

        # As a user whom permission bits bind, the unreadable file is one more problem, not the end.
        r = subprocess.run([*as_plain_user(), sys.executable, "-c", with_deadline(VERIFY_CHILD, 170), str(sqlite_store.root)],
                           capture_output=True, text=True, env=child_env(), timeout=180)
        assert r.returncode == 0, r.stderr[-2000:]
        got = json.loads(r.stdout.strip().splitlines()[-1])
        assert "error" not in got, got
        kinds = {tuple(p) for p in got["problems"]}
        assert {("missing", "r@1"), ("corrupt", "r@2"), ("corrupt", "r@3"), ("unreadable", "r@4")} <= kinds, kinds
        assert {k for k, _ in kinds} >= {"missing", "corrupt", "unreadable", "unexpected", "stale-staging"}, kinds
        assert got["ok"] is False
    finally:
        os.chmod(unreadable, 0o444)


def test_a_damaged_database_page_is_reported_or_refused_in_one_line(tmp_path, tiny_model):
    loc = tmp_path / "store"
    with ckptstore.open_store(str(loc)) as s, s.start_run("r", flush_every=10**9) as run:
        for step in range(3000):
            run.log(step, loss=float(step), acc=-float(step))
        run.save(tiny_model(), 3000)
    db = loc / "store.db"
    assert not (loc / "store.db-wal").exists()
    pages = db.stat().st_size // 4096
    assert pages > 20, pages
    with open(db, "r+b") as f:
        f.seek((pages // 2) * 4096)
        f.write(bytes(range(256)) * 16)
    try:
        with ckptstore.open_store(str(loc), create=False) as s:
            report = s.verify()
    except StoreOpenError as exc:
        assert "store.db" in one_line(exc)
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"a damaged database raised {type(exc).__name__}: {exc}")
    assert any(p.kind == "database" for p in report.problems), report.problems
    assert not report.ok


# =========================================================================== 12. the checkpoint state file


PREFIXES = [
    "model.ckpt-1", 'we"ird-1', "it's-2", "back\\slash-3", "new\nline-4", "tab\there-5", "café-é-6",
    "日本-7", "ctl\x01\x7f-8", "trailing\\", '"', "\\\\", "sp ace #hash-9", "\\x41\\101-10",
]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_state_file_render_parse_round_trip_agrees_with_tensorflow(tmp_path, prefix):
    state = tfstate.CheckpointState(prefix, ["older-0", prefix])
    text = tfstate.render(state)
    assert tfstate.parse(text) == state
    assert len(text.splitlines()) == 3  # no raw newline from the name
    # TensorFlow's own reader sees the same names.
    (tmp_path / "checkpoint").write_text(text, encoding="utf-8")
    got = tf.train.get_checkpoint_state(str(tmp_path))
    assert got is not None
    assert got.model_checkpoint_path == os.path.join(str(tmp_path), prefix)
    assert list(got.all_model_checkpoint_paths) == [os.path.join(str(tmp_path), p) for p in ("older-0", prefix)]
    # And ours reads what TensorFlow writes.
    d = tmp_path / "tfwritten"
    d.mkdir()
    full = str(d / prefix)
    tf.compat.v1.train.update_checkpoint_state(str(d), full, [full])
    assert tfstate.parse((d / "checkpoint").read_text(encoding="utf-8")).model_checkpoint_path == full


def test_a_prefix_with_quotes_spaces_and_unicode_restores_for_vanilla_tensorflow(sqlite_store, tmp_path, tiny_model):
    prefix = 'we"ird name-é'
    with sqlite_store.start_run("r") as run:
        ck = run.save(tiny_model(4.0), 1, prefix=prefix)
    assert ck.prefix == prefix + "-1"
    out = tmp_path / "out"
    sqlite_store.materialize("r@1", out)
    assert tf.train.latest_checkpoint(str(out)) == str(out / ck.prefix)
    np.testing.assert_array_equal(read_restored(out, "model/w"), np.full([3, 2], 4.0, np.float32))


def test_a_prefix_with_a_backslash_is_refused_or_round_trips(sqlite_store, tmp_path, tiny_model):
    # TensorFlow itself cannot read a prefix with a backslash back (its reader takes the prefix
    # as a glob pattern), so refusing it up front is fine; accepting it must still write a state
    # file that names it exactly.
    prefix = 'we"ird\\name-é'
    run = sqlite_store.start_run("r")
    before = store_state(sqlite_store)
    try:
        ck = run.save(tiny_model(4.0), 1, prefix=prefix)
    except CkptstoreError as exc:
        assert "prefix" in one_line(exc)
        assert store_state(sqlite_store) == before
        return
    out = tmp_path / "out"
    sqlite_store.materialize(ck, out)
    assert tfstate.parse((out / "checkpoint").read_text(encoding="utf-8")).model_checkpoint_path == ck.prefix
    assert tf.train.get_checkpoint_state(str(out)).model_checkpoint_path == str(out / ck.prefix)


@pytest.mark.parametrize("relative", [False, True], ids=["absolute-paths", "relative-paths"])
def test_import_of_a_saver_directory_with_escaped_names(store, tmp_path, new_seed_graph, relative):
    src = tmp_path / "saver"
    src.mkdir()
    name = 'we"ird\nname-é 日本'
    g, sess, _ = new_seed_graph(b=3.0)
    with g.as_default():
        saver = tf.compat.v1.train.Saver(save_relative_paths=relative)
        saver.save(sess, str(src / name), global_step=5)
    text = (src / "checkpoint").read_text(encoding="utf-8")
    assert '\\"' in text and "\\n" in text  # TensorFlow escaped the quote and the newline
    before_src = tree(src)
    cks = store.import_checkpoints(src, run="imported")
    assert [(c.step, c.prefix) for c in cks] == [(5, name + "-5")]
    assert tree(src) == before_src
    out = tmp_path / "out"
    store.materialize("imported@5", out)
    assert tf.train.latest_checkpoint(str(out)) == str(out / (name + "-5"))
    assert float(read_restored(out, "b")) == 3.0


def test_import_of_a_saver_directory_with_a_backslash_in_a_name(store, tmp_path, new_seed_graph):
    # The state file holds "we\"ird\\name-é-5"; TensorFlow cannot read that prefix back itself.
    src = tmp_path / "saver"
    src.mkdir()
    name = 'we"ird\\name-é'
    g, sess, _ = new_seed_graph(b=3.0)
    with g.as_default():
        tf.compat.v1.train.Saver().save(sess, str(src / name), global_step=5)
    assert "\\\\" in (src / "checkpoint").read_text(encoding="utf-8")
    before_src, before = tree(src), store_state(store)
    try:
        cks = store.import_checkpoints(src, run="imported")
    except NoCheckpointFoundError as exc:
        assert name + "-5" in one_line(exc)
        assert store_state(store) == before and tree(src) == before_src
        return
    assert [(c.step, c.prefix) for c in cks] == [(5, name + "-5")]
    out = tmp_path / "out"
    store.materialize("imported@5", out)
    assert tfstate.parse((out / "checkpoint").read_text(encoding="utf-8")).model_checkpoint_path == name + "-5"


# =========================================================================== 13. errors name the store


def _store_named(store, store_uri, backend):
    uri, _ = store_uri
    if backend == "sqlite":
        return [str(Path(uri).resolve())]
    from sqlalchemy.engine import make_url

    u = make_url(uri)
    return [f"{u.host}:{u.port}/{u.database}"]


def test_errors_about_missing_things_name_the_store(store, store_uri, backend, tmp_path, tiny_model):
    with store.start_run("r") as run:
        run.save(tiny_model(), 1)
    needles = _store_named(store, store_uri, backend)
    calls = {
        "get_run": lambda: store.get_run("nope"),
        "checkpoints": lambda: store.checkpoints("nope"),
        "steps": lambda: store.steps("nope"),
        "checkpoint": lambda: store.checkpoint("nope@1"),
        "step": lambda: store.checkpoint("r@99"),
        "alias": lambda: store.checkpoint("nosuchalias"),
        "restore": lambda: store.restore("nope@1", tiny_model()),
        "materialize": lambda: store.materialize("nope@1", tmp_path / "x"),
        "set_alias": lambda: store.set_alias("v", "nope@1"),
        "aliases": lambda: store.aliases("nope"),
        "export": lambda: store.load_frozen("export:42"),
    }
    for what, call in calls.items():
        with pytest.raises((UnknownRunError, UnknownRefError)) as info:
            call()
        text = one_line(info.value)
        assert any(n in text for n in needles), f"{what}: {text!r} does not name {needles}"
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
@pytest.mark.postgres
def test_errors_name_a_postgres_store_without_its_password(pg_server, tmp_path):
    uri = pg_server.new_database().replace("postgres@", f"postgres:{SECRET}@", 1)
    with ckptstore.open_store(uri, root=tmp_path / "files") as store:
        for call in (lambda: store.get_run("nope"), lambda: store.checkpoint("nope@1"), lambda: store.aliases("nope")):
            with pytest.raises(CkptstoreError) as info:
                call()
            text = one_line(info.value)
            assert SECRET not in text and uri.rsplit("/", 1)[1] in text, text
        assert SECRET not in repr(store)


# =========================================================================== 14. the lazy keras attribute


@pytest.mark.slow
def test_keras_callback_is_an_attribute_of_the_package_in_a_fresh_interpreter():
    r = run_py("import ckptstore\nprint(ckptstore.keras.StoreCallback.__name__)", timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "StoreCallback"


# =========================================================================== 15. records as references


def test_records_the_api_returns_are_accepted_as_references(store, seed_session, tiny_model, tmp_path):
    run = store.start_run("r")
    ck = run.save(tiny_model(2.0, 0.5), 1)
    exp = run.freeze(seed_session, ["op_to_store"], step=1)
    run.finish()

    assert store.set_alias("prod", exp).target == exp.ref
    assert store.set_alias("v", ck).target == ck.ref
    assert store.checkpoint(ck).id == ck.id
    assert store.resolve(exp).id == exp.id
    assert [v.name for v in store.variables(ck)] == [v.name for v in store.variables(ck.ref)]
    assert float(store.load_frozen(exp)(x=5.0, y=5.0)) == 26.0

    target = tiny_model(0.0, 0.0)
    assert store.restore(ck, target).id == ck.id
    np.testing.assert_array_equal(target.w.numpy(), np.full([3, 2], 2.0, np.float32))
    np.testing.assert_array_equal(store.read_variable(ck, "model/w"), np.full([3, 2], 2.0, np.float32))

    prefix = store.materialize(ck, tmp_path / "out")
    assert tf.train.latest_checkpoint(str(tmp_path / "out")) == str(prefix)
    pb = store.export_frozen(exp, tmp_path / "model.pb")
    assert pb.read_bytes() == store.files.read_bytes(exp.digest)
    # A record taken from a listing works the same.
    listed = store.exports("r")[0]
    assert store.load_frozen(listed)(5.0, 5.0) is not None
    assert store.diff_variables(ck, store.checkpoints("r")[0]).changed == []


# =========================================================================== found in review


def test_a_store_dropped_without_close_still_writes_its_buffered_metrics_at_exit(tmp_path):
    code = textwrap.dedent(
        """
        import sys, ckptstore
        def train():  # returns without finish() or close(): store and run are garbage
            store = ckptstore.open_store(sys.argv[1])
            run = store.start_run("r", flush_every=10**9, flush_seconds=10**9)
            for i in range(10):
                run.log(i, loss=0.1)
        train()
        import gc; gc.collect()
        """
    )
    r = run_py(code, str(tmp_path / "s"))
    assert r.returncode == 0, r.stderr
    with ckptstore.open_store(tmp_path / "s", readonly=True) as store:
        assert [s.step for s in store.steps("r")] == list(range(10))


def test_a_variable_reachable_by_two_paths_restores_and_unknown_rank_is_no_error(sqlite_store):
    src = tf.Module()
    src.v = tf.Variable([1.0, 2.0])
    src.u = tf.Variable([1.0, 2.0, 3.0], shape=tf.TensorShape(None))
    ck = sqlite_store.start_run("alias").save(src, 1)
    dst = tf.Module()
    dst.v = tf.Variable([0.0, 0.0])
    dst.alias = dst.v  # the same variable under a second name, as TensorFlow allows
    dst.u = tf.Variable([0.0], shape=tf.TensorShape(None))
    sqlite_store.restore(ck, dst)
    assert dst.v.numpy().tolist() == [1.0, 2.0] and dst.u.numpy().tolist() == [1.0, 2.0, 3.0]


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


@pytest.mark.parametrize("text", [
    "postgresql://bob:/s3cr3t-pw@h/db",
    "postgresql://bob:s3cr3t-pw:more@h/db",
    "x password='s3cr3t-pw and more' y",
    'postgresql://u@h/db?password="s3cr3t-pw x"',
])
def test_redact_masks_passwords_with_slashes_colons_and_quotes(text):
    from ckptstore.location import redact

    assert "s3cr3t" not in redact(text)
