"""Damage in the file area and in the database: found, named, and never read as good data.

Stored files are read-only (0444); the tests run as any user, so they chmod a file before
writing it, as a careless user or a bad disk would. Every reading path (restore, materialize,
read_variable) must refuse a damaged file with CorruptFileError / MissingFileError naming it,
and ``verify`` must report it with the checkpoint(s) it breaks.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import ckptstore
from tests.helpers.damage import DAMAGE, flip_byte, truncate
from tests.helpers.models import empty_session, run_op
from tests.helpers.processes import assert_one_line_error, run_cli
from tests.helpers.skips import require_tensorflow

require_tensorflow()

from ckptstore.errors import CorruptFileError, MissingFileError, StoreOpenError  # noqa: E402


@pytest.fixture
def saved(store, new_seed_graph):
    """A store holding r@1 (b=1) and r@2 (b=2); both share one meta graph file."""
    g, sess, b = new_seed_graph()
    with g.as_default():
        set_two = b.assign(2.0)  # built before the first save, so both saves share the graph
    with store.start_run("r") as run:
        run.save(sess, 1)
        sess.run(set_two)
        run.save(sess, 2)
    return store


def stored_path(store, ref: str, role: str) -> tuple[Path, str]:
    f = next(f for f in store.checkpoint(ref).files if f.role == role)
    return store.files.path_of(f.digest), f.file_name


def snapshot(store) -> dict:
    """Everything a user could lose: rows per checkpoint and the bytes of every stored file."""
    files = {str(p): p.read_bytes() for _, p in store.files.object_digests()}
    return {"checkpoints": [(c.ref, c.state, [(f.file_name, f.digest) for f in c.files]) for c in store.checkpoints("r")], "files": files}


# --------------------------------------------------------------------------- the file area


@pytest.mark.parametrize("damage", DAMAGE)
def test_verify_names_the_damaged_file_and_its_checkpoint(saved, damage):
    path, name = stored_path(saved, "r@1", "data")
    DAMAGE[damage](path)
    report = saved.verify()
    assert not report.ok
    kind = "missing" if damage == "deleted" else "corrupt"
    assert [(p.kind, p.checkpoint, p.path) for p in report.problems] == [(kind, "r@1", str(path))]
    assert name in report.problems[0].detail
    digest = next(f.digest for f in saved.checkpoint("r@1").files if f.role == "data")
    assert report.problems[0].detail.count(digest[:12]) == 1, report.problems[0].detail  # the id once, not "x (x)"
    # r@2 is untouched and still fully usable.
    assert float(saved.read_variable("r@2", "b")) == 2.0


@pytest.mark.parametrize("damage", DAMAGE)
def test_every_reading_path_refuses_a_damaged_file_by_name(saved, damage, tmp_path):
    path, name = stored_path(saved, "r@1", "data")
    DAMAGE[damage](path)
    error = MissingFileError if damage == "deleted" else CorruptFileError
    with pytest.raises(error, match=name.replace(".", r"\.")):
        saved.restore("r@1", empty_session())
    with pytest.raises(error, match=name.replace(".", r"\.")):
        saved.materialize("r@1", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written
    with pytest.raises(error, match=name.replace(".", r"\.")):
        saved.read_variable("r@1", "b")


def test_restore_refuses_a_damaged_index_file(saved):
    path, name = stored_path(saved, "r@2", "index")
    flip_byte(path, offset=path.stat().st_size // 2)
    with pytest.raises(CorruptFileError, match=name.replace(".", r"\.")):
        saved.restore("r@2", empty_session())


def test_in_place_change_with_the_old_mtime_put_back_is_still_caught(saved):
    """The default restore trusts an unchanged stat signature; ctime cannot be put back."""
    path, name = stored_path(saved, "r@1", "data")
    saved.restore("r@1", empty_session())  # records the signature of the intact file
    st = path.stat()
    flip_byte(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    with pytest.raises(CorruptFileError, match="does not match its digest"):
        saved.restore("r@1", empty_session())


def test_damage_to_a_shared_file_names_every_checkpoint_that_uses_it(saved):
    meta1, _ = stored_path(saved, "r@1", "meta")
    meta2, _ = stored_path(saved, "r@2", "meta")
    assert meta1 == meta2  # same graph, stored once
    flip_byte(meta1, offset=10)
    report = saved.verify()
    assert sorted((p.kind, p.checkpoint) for p in report.problems) == [("corrupt", "r@1"), ("corrupt", "r@2")]
    with pytest.raises(CorruptFileError, match=r"\.meta"):
        saved.restore("r@2", empty_session())  # an empty graph needs the meta graph


def test_verify_of_one_run_checks_only_that_run(saved, new_seed_graph):
    other = saved.start_run("other").save(new_seed_graph(5.0).sess, 1)
    path = saved.files.path_of(next(f for f in other.files if f.role == "data").digest)
    flip_byte(path)
    assert saved.verify("r").ok
    assert [p.checkpoint for p in saved.verify("other").problems] == ["other@1"]


def test_verify_without_rehashing_still_finds_size_changes_and_missing_files(saved):
    data, _ = stored_path(saved, "r@1", "data")
    index, _ = stored_path(saved, "r@2", "index")
    truncate(data)
    index.unlink()
    kinds = sorted((p.kind, p.checkpoint) for p in saved.verify(full=False).problems)
    assert kinds == [("corrupt", "r@1"), ("missing", "r@2")]
    with pytest.raises(MissingFileError):
        saved.restore("r@2", empty_session(), verify=False)


def test_gc_keeps_a_damaged_file_that_a_checkpoint_still_references(saved):
    path, _ = stored_path(saved, "r@1", "data")
    flip_byte(path)
    before = snapshot(saved)
    report = saved.gc()
    assert report.removed_objects == 0 and report.removed_blob_rows == 0
    assert snapshot(saved) == before  # damage is reported, never "cleaned up" silently
    assert not saved.verify().ok


def test_a_repaired_file_verifies_clean_again(saved):
    path, _ = stored_path(saved, "r@1", "data")
    good = path.read_bytes()
    flip_byte(path)
    assert not saved.verify().ok
    os.chmod(path, 0o644)
    path.write_bytes(good)  # e.g. copied back from a backup
    os.chmod(path, 0o444)
    assert saved.verify().problems == []
    s2 = empty_session()
    saved.restore("r@1", s2)
    assert run_op(s2, 0.0, 0.0) == 1.0


def test_an_unexpected_file_in_the_object_area_is_reported_not_fatal(saved):
    stray = saved.files.objects / "ff" / ("0" * 62)
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"left by something else")
    report = saved.verify()
    assert report.ok  # no checkpoint is broken
    assert [(p.kind, p.path) for p in report.problems] == [("unexpected", str(stray))]
    assert saved.gc().removed_objects == 1 and not stray.exists()


# --------------------------------------------------------------------------- the database file


def _make_sqlite_store(path: Path) -> bytes:
    with ckptstore.open_store(str(path)) as s, s.start_run("a") as run:
        for i in range(3000):
            run.log(i, x=1.0, y=2.0)
    return (path / "store.db").read_bytes()


def _damaged_stores(tmp_path: Path) -> dict[str, Path]:
    raw = _make_sqlite_store(tmp_path / "good")
    pages = bytearray(raw)
    for i in range(8192, len(pages), 4096):  # the header survives; table pages do not
        pages[i + 100 : i + 200] = bytes(range(100))
    variants = {
        "not-a-database": b"this is a text file, not a database\n" * 200,
        "bad-header": b"X" * 16 + raw[16:],
        "truncated": raw[:4096],
        "damaged-pages": bytes(pages),
    }
    out = {}
    for name, data in variants.items():
        d = tmp_path / name
        d.mkdir()
        (d / "store.db").write_bytes(data)
        out[name] = d
    return out


def test_a_damaged_or_foreign_sqlite_file_is_a_clear_error(tmp_path):
    for name, d in _damaged_stores(tmp_path).items():
        before = (d / "store.db").read_bytes()
        with pytest.raises(StoreOpenError, match="is not a usable SQLite database") as exc:
            s = ckptstore.open_store(str(d))
            try:
                s.steps("a")  # damage past the first pages shows only when a query reaches it
            finally:
                s.close()
        assert str(d / "store.db") in str(exc.value), name
        assert (d / "store.db").read_bytes() == before, f"{name}: opening must not change the file"


def test_a_sqlite_file_with_other_tables_is_not_taken_for_a_store(tmp_path):
    import sqlite3

    (tmp_path / "s").mkdir()
    con = sqlite3.connect(tmp_path / "s" / "store.db")
    con.execute("CREATE TABLE notes (t TEXT)")
    con.commit()
    con.close()
    with pytest.raises(StoreOpenError, match="not a ckptstore store"):
        ckptstore.open_store(str(tmp_path / "s"))


# --------------------------------------------------------------------------- the command line


@pytest.mark.slow
def test_cli_damaged_database_is_one_line(tmp_path):
    for d in _damaged_stores(tmp_path).values():
        out = run_cli("steps", "a", store=d)
        assert_one_line_error(out, "store.db")


@pytest.mark.slow
def test_cli_verify_and_restore_report_a_damaged_file(tmp_path, seed_session):
    store = ckptstore.open_store(str(tmp_path / "s"))
    ck = store.start_run("r").save(seed_session, 1)
    data = next(f for f in ck.files if f.role == "data")
    flip_byte(store.files.path_of(data.digest))
    store.close()

    out = run_cli("verify", store=tmp_path / "s")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "r@1" in out.stdout + out.stderr and data.file_name in out.stdout + out.stderr

    out = run_cli("restore", "r@1", "--to", str(tmp_path / "out"), store=tmp_path / "s")
    assert_one_line_error(out, data.file_name)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
