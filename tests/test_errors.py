"""Every failure is one line naming what failed and where (disk full, permissions, out-of-range numbers, things deleted meanwhile), and errors name the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.hardening import (
    HUGE,
    HUGE_TEXT,
    SECRET,
    as_plain_user,
    big_module,
    fill_up,
    one_line,
    store_state,
    temp_leftovers,
    tmpfs,
    tree,
)
from tests.helpers.processes import child_env, run_py, with_deadline
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()

import ckptstore  # noqa: E402
from ckptstore.errors import (  # noqa: E402
    CkptstoreError,
    DiskFullError,
    NoCheckpointFoundError,
    UnknownAliasError,
    UnknownRefError,
    UnknownRunError,
)

# =========================================================================== 4. writes stay inside the target


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
