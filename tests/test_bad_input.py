"""Bad input gets a clear error of the documented type, and leaves the store exactly as it was.

Every case runs on SQLite and PostgreSQL. Each test takes a snapshot of everything stored (all
table rows and the bytes of every stored file) before the bad call and compares it after. The
command-line cases check the one-line error of ``python -m ckptstore`` (exit status 1, no
traceback).

Read-only stores: the tests run as root, and root ignores permission bits. A child process is
therefore started through ``setpriv`` without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH /
CAP_FOWNER, so the mode bits apply to it as to any user (as a normal user it runs as is).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from tests.helpers.hardening import as_plain_user, read_only_mount
from tests.helpers.models import empty_session, run_op
from tests.helpers.processes import assert_one_line_error, child_env, run_cli, with_deadline
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()

import ckptstore  # noqa: E402
from ckptstore.errors import (  # noqa: E402
    CkptstoreError,
    InvalidNameError,
    InvalidRefError,
    NoCheckpointFoundError,
    RestoreMismatchError,
    UnknownAliasError,
    UnknownRefError,
    UnknownRunError,
)
from ckptstore.metadata import schema as S  # noqa: E402

MALFORMED_REFS = ["a@", "@3", "a@-1", "a@~x", "a@1@2", "a@1.5", "a@~", "export:x", "", "a/b@1"]
BAD_NAMES = {
    "slash": "a/b",
    "dotdot": "..",
    "nul": "a\x00b",
    "leading-dash": "-a",
    "10k-chars": "x" * 10_000,
    "empty": "",
    "blank": "   ",
    "at-sign": "a@b",
}
UNICODE_NAME = "训练-ünï-🚀"


# --------------------------------------------------------------------------- helpers


def snapshot(store: ckptstore.Store) -> dict:
    """Every row of every table plus every stored file's bytes (digested)."""
    from sqlalchemy import select

    tables = {}
    with store.read() as conn:
        for t in S.metadata.sorted_tables:
            rows = conn.execute(select(t)).all()
            tables[t.name] = sorted(repr(tuple(r)) for r in rows)
    files = {}
    if store.root is not None and store.files.objects.exists():
        for d, p in store.files.object_digests():
            files[d] = hashlib.sha256(p.read_bytes()).hexdigest()
    return {"tables": tables, "files": files}


@pytest.fixture
def populated(store, seed_session):
    """Run "r" with metrics at steps 1..3, a checkpoint r@1 and the alias "prod" -> r@1."""
    with store.start_run("r", params={"lr": 0.1}, tags={"team": "x"}) as run:
        for step in (1, 2, 3):
            run.log(step, loss=1.0 / step)
        run.save(seed_session, 1)
    store.set_alias("prod", "r@1", message="first")
    return store


def every_reader(store, ref, tmp_path):
    """The library calls that take a reference, each as a thunk."""
    return {
        "checkpoint": lambda: store.checkpoint(ref),
        "resolve": lambda: store.resolve(ref),
        "variables": lambda: store.variables(ref),
        "restore": lambda: store.restore(ref, empty_session()),
        "materialize": lambda: store.materialize(ref, tmp_path / "out"),
        "read_variable": lambda: store.read_variable(ref, "b"),
        "tag": lambda: store.set_alias("other", ref),
    }


# --------------------------------------------------------------------------- unknown things


@pytest.mark.parametrize(
    "ref, error, says",
    [
        ("r@999", UnknownRefError, "its checkpoints are at steps 1"),
        ("r@~0", UnknownRefError, "no checkpoint at or below step 0"),
        ("nope@1", UnknownRunError, "no run named 'nope'"),
        ("nope@latest", UnknownRunError, "no run named 'nope'"),
        ("staging", UnknownAliasError, "no alias named 'staging'"),
        ("export:42", UnknownRefError, "no export 42"),
    ],
)
def test_unknown_run_step_or_alias_is_a_lookup_error(populated, tmp_path, ref, error, says):
    before = snapshot(populated)
    for call, thunk in every_reader(populated, ref, tmp_path).items():
        if call == "variables" and ref.startswith("export:"):
            continue
        with pytest.raises(error, match=says):
            thunk()
    assert not (tmp_path / "out").exists()
    assert snapshot(populated) == before


def test_unknown_run_in_queries_and_deletes(populated):
    before = snapshot(populated)
    for call in (
        lambda: populated.get_run("nope"),
        lambda: populated.steps("nope"),
        lambda: populated.checkpoints("nope"),
        lambda: populated.delete_run("nope"),
        lambda: populated.set_status("nope", "finished"),
        lambda: populated.verify("nope"),
        lambda: populated.run("nope"),
    ):
        with pytest.raises(UnknownRunError, match="nope"):
            call()
    with pytest.raises(UnknownAliasError):
        populated.remove_alias("nope")
    with pytest.raises(UnknownRefError, match="no variable 'w'"):
        populated.read_variable("r@1", "w")
    assert snapshot(populated) == before


# --------------------------------------------------------------------------- malformed references


@pytest.mark.parametrize("ref", MALFORMED_REFS)
def test_malformed_reference_is_refused_everywhere(populated, tmp_path, ref):
    before = snapshot(populated)
    for call, thunk in every_reader(populated, ref, tmp_path).items():
        with pytest.raises(InvalidRefError, match="reference") as exc:
            thunk()
        assert "\n" not in str(exc.value), call
    assert snapshot(populated) == before


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_bad_run_and_alias_names_are_refused_and_create_nothing(populated, tmp_path, name):
    before = snapshot(populated)
    with pytest.raises(InvalidNameError) as exc:
        populated.start_run(name)
    assert len(str(exc.value)) < 200 and "\n" not in str(exc.value)  # 10k chars are not echoed back
    with pytest.raises((InvalidNameError, InvalidRefError)):
        populated.set_alias(name, "r@1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidNameError):
        populated.import_checkpoints(tmp_path / "empty", run=name)
    assert snapshot(populated) == before


@pytest.mark.parametrize("tags", [{"a\x00b": "v"}, {"k": "v\x00"}, {"x" * 10_000: "v"}, {"": "v"}], ids=["nul-key", "nul-value", "10k-key", "empty-key"])
def test_bad_tags_are_refused_and_create_nothing(populated, tags):
    before = snapshot(populated)
    with pytest.raises(ValueError, match="tag"):
        populated.start_run("tagged", tags=tags)
    with pytest.raises(ValueError, match="tag"):
        populated.start_run("r", tags=tags)  # resuming an existing run changes nothing either
    assert snapshot(populated) == before


def test_unicode_names_round_trip(store, tmp_path, new_seed_graph):
    name, alias = UNICODE_NAME, "版本-1"
    with store.start_run(name, params={"説明": "ü"}, tags={"チーム": "視覚"}) as run:
        run.log(1, **{"损失": 0.5, "loss": 0.25})
        run.save(new_seed_graph(3.0).sess, 1)
    store.set_alias(alias, f"{name}@1")
    info = store.get_run(name)
    assert (info.name, info.params, info.tags) == (name, {"説明": "ü"}, {"チーム": "視覚"})
    assert [r.name for r in store.runs(name="训练-*")] == [name]
    assert [r.name for r in store.runs(tags={"チーム": "視覚"})] == [name]
    assert store.steps(name)[0].metrics == {"loss": 0.25, "损失": 0.5}
    assert [(r.run, r.metrics["损失"]) for r in store.at_step(1)] == [(name, 0.5)]
    for ref in (f"{name}@1", f"{name}@latest", f"{name}@~5", alias):
        assert store.checkpoint(ref).run == name
        s2 = empty_session()
        store.restore(ref, s2)
        assert run_op(s2, 1.0, 1.0) == 4.0
    prefix = store.materialize(alias, tmp_path / "m")
    assert float(tf.train.load_checkpoint(str(prefix)).get_tensor("b")) == 3.0
    assert [v.name for v in store.aliases()] == [alias]


def test_names_at_the_length_limit_are_accepted(store):
    name = "n" * S.NAME_MAX
    store.start_run(name).finish()
    assert store.get_run(name).name == name
    with pytest.raises(InvalidNameError, match=f"limit is {S.NAME_MAX}"):
        store.start_run(name + "n")


# --------------------------------------------------------------------------- restore and import


def test_restoring_into_a_graph_whose_variables_do_not_match(populated):
    before = snapshot(populated)
    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.get_variable("w", shape=[4])
    with pytest.raises(RestoreMismatchError, match="w"):
        populated.restore("r@1", tf.compat.v1.Session(graph=g))
    g2 = tf.Graph()
    with g2.as_default():
        tf.compat.v1.get_variable("b", shape=[2, 2])
    with pytest.raises(RestoreMismatchError, match="shape"):
        populated.restore("r@1", tf.compat.v1.Session(graph=g2))
    m = tf.Module()
    m.w = tf.Variable(1.0)
    with pytest.raises(CkptstoreError, match="tf1-saver checkpoint"):
        populated.restore("r@1", tf.train.Checkpoint(model=m))
    assert snapshot(populated) == before


def test_restoring_a_tf2_checkpoint_into_a_different_object(store, tiny_model):
    class WrongShape(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.zeros([5]))
            self.b = tf.Variable(tf.zeros([2]))

    class OtherVariables(tf.Module):
        def __init__(self):
            super().__init__()
            self.q = tf.Variable(1.0)

    store.start_run("t2").save(tiny_model(), 1)
    before = snapshot(store)
    for target in (WrongShape(), OtherVariables()):
        with pytest.raises(RestoreMismatchError):
            store.restore("t2@1", tf.train.Checkpoint(model=target))
    assert snapshot(store) == before


def test_importing_a_directory_without_a_checkpoint(populated, tmp_path):
    before = snapshot(populated)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no checkpoint here")
    half = tmp_path / "half"  # an index whose data shard never got written
    half.mkdir()
    (half / "model.ckpt-5.index").write_bytes(b"\0" * 16)
    (half / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-5"\n')
    (tmp_path / "file").write_text("x")
    for d, says in ((empty, "no TensorFlow checkpoint"), (half, "no TensorFlow checkpoint"),
                    (tmp_path / "file", "not a directory"), (tmp_path / "missing", "not a directory")):
        with pytest.raises(NoCheckpointFoundError, match=says):
            populated.import_checkpoints(d, run="imported")
    assert snapshot(populated) == before


# --------------------------------------------------------------------------- read-only stores


def _tree_digest(path: Path) -> dict[str, str]:
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(path))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


READ_ONLY_CHILD = textwrap.dedent(
    """
    import json, sys, ckptstore
    uri, root, what = sys.argv[1], sys.argv[2] or None, sys.argv[3]
    out = {}
    try:
        store = ckptstore.open_store(uri, root=root)
        out["runs"] = [r.name for r in store.runs()]
        if what == "save":
            import tensorflow as tf
            m = tf.Module(); m.w = tf.Variable(tf.ones([2]))
            tgt = tf.Module(); tgt.w = tf.Variable(tf.zeros([2]))
            store.restore("r@1", tgt)
            out["restored"] = tgt.w.numpy().tolist()
            store.run("r").save(m, 2)
        else:
            run = store.run("r"); run.log(9, x=1.0); run.flush()
        out["wrote"] = True
    except ckptstore.CkptstoreError as exc:
        out["error"] = [type(exc).__name__, str(exc)]
    print(json.dumps(out))
    """
)


def _make_small_store(uri: str, root: Path) -> None:
    m = tf.Module()
    m.w = tf.Variable(tf.fill([2], 7.0))
    with ckptstore.open_store(uri, root=root) as s, s.start_run("r") as run:
        run.log(1, x=1.0)
        run.save(m, 1)


@pytest.mark.slow
def test_a_read_only_sqlite_store_is_a_clear_error_and_stays_intact():
    prefix = as_plain_user()
    # Not under pytest's tmp dir, whose parents a plain user may not traverse.
    base = Path(tempfile.mkdtemp(prefix="ckptstore-ro-"))
    try:
        os.chmod(base, 0o755)
        store_dir = base / "s"
        _make_small_store(str(store_dir), store_dir)
        subprocess.run(["chmod", "-R", "a-w", str(store_dir)], check=True)
        before = _tree_digest(store_dir)
        for what in ("log", "save"):
            out = subprocess.run([*prefix, sys.executable, "-c", with_deadline(READ_ONLY_CHILD, 130), str(store_dir), "", what],
                                 capture_output=True, text=True, env=child_env(), timeout=120)
            assert out.returncode == 0, out.stderr
            res = json.loads(out.stdout)
            assert res["error"][0] == "ReadOnlyStoreError", res
            assert "read-only" in res["error"][1] and str(store_dir) in res["error"][1]
        assert _tree_digest(store_dir) == before
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_a_read_only_file_area_refuses_saves_but_serves_reads(pg_server):
    """PostgreSQL metadata with a file root the user may only read (e.g. a shared archive)."""
    prefix = as_plain_user()
    base = Path(tempfile.mkdtemp(prefix="ckptstore-ro-"))
    try:
        os.chmod(base, 0o755)
        uri, root = pg_server.new_database(), base / "files"
        _make_small_store(uri, root)
        subprocess.run(["chmod", "-R", "a-w", str(root)], check=True)
        before_files = _tree_digest(root)
        with ckptstore.open_store(uri, root=root) as s:
            # chmod changed the files' ctime; the child's restore would re-hash them and record
            # their new stat signatures (a cache, not data): record them now instead.
            # (read_variable reads one tensor's bytes only: materialize checks every file.)
            s.materialize("r@1", base / "seen")
            before = snapshot(s)
        out = subprocess.run([*prefix, sys.executable, "-c", with_deadline(READ_ONLY_CHILD, 130), uri, str(root), "save"],
                             capture_output=True, text=True, env=child_env(), timeout=120)
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
        assert res["runs"] == ["r"] and res["restored"] == [7.0, 7.0]
        assert res["error"][0] == "ReadOnlyStoreError" and str(root) in res["error"][1], res
        assert _tree_digest(root) == before_files
        with ckptstore.open_store(uri, root=root) as s:
            after = snapshot(s)
            assert {k: v for k, v in after["tables"].items() if before["tables"].get(k) != v} == {}
            assert after == before
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------- the command line


@pytest.mark.slow
def test_cli_bad_input_is_one_line_and_changes_nothing(store_uri, tmp_path, seed_session):
    uri, root = store_uri
    with ckptstore.open_store(uri, root=root) as s:
        with s.start_run("r") as run:
            run.log(1, loss=0.5)
            run.save(seed_session, 1)
        before = snapshot(s)
    (tmp_path / "empty").mkdir()
    cases = [
        (("runs", "show", "nope"), "no run named 'nope'"),
        (("steps", "nope"), "no run named 'nope'"),
        (("checkpoints", "nope"), "no run named 'nope'"),
        (("restore", "r@999", "--to", str(tmp_path / "o")), "r@999"),
        (("restore", "staging", "--to", str(tmp_path / "o")), "staging"),
        (("vars", "nope@1"), "nope"),
        (("unalias", "nope"), "nope"),
        (("import", str(tmp_path / "empty"), "--run", "imported"), "no TensorFlow checkpoint"),
        (("import", str(tmp_path / "empty"), "--run=a/b"), "must not contain '/'"),
        (("import", str(tmp_path / "empty"), "--run=-a"), "must not start with '-'"),
        (("import", str(tmp_path / "empty"), "--run=" + "x" * 10_000), "limit is"),
        (("alias", "a/b", "r@1"), "'/'"),
        (("verify", "nope"), "nope"),
    ] + [(("restore", ref, "--to", str(tmp_path / "o")), "reference") for ref in ("a@", "@3", "a@-1", "a@~x")]
    for args, says in cases:
        assert_one_line_error(run_cli(*args, store=uri, root=root), says)
    assert not (tmp_path / "o").exists()
    with ckptstore.open_store(uri, root=root) as s:
        assert snapshot(s) == before


@pytest.mark.slow
def test_cli_unicode_run_name(store_uri):
    uri, root = store_uri
    with ckptstore.open_store(uri, root=root) as s, s.start_run(UNICODE_NAME) as run:
        run.log(1, loss=0.5)
    out = run_cli("runs", "list", "--json", store=uri, root=root)
    assert out.returncode == 0, out.stderr
    assert [r["name"] for r in json.loads(out.stdout)] == [UNICODE_NAME]
    out = run_cli("steps", UNICODE_NAME, "--json", store=uri, root=root)
    assert out.returncode == 0 and "0.5" in out.stdout, out.stderr


def _set_revision(uri: str, revision: str) -> None:
    from sqlalchemy import create_engine, text

    url = uri if "://" in uri else f"sqlite:///{Path(uri) / 'store.db'}"
    eng = create_engine(url)
    with eng.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
    eng.dispose()


@pytest.mark.slow
def test_cli_newer_schema_and_read_only_store_are_one_line(tmp_path):
    uri = str(tmp_path / "s")
    with ckptstore.open_store(uri) as s:
        s.start_run("r").finish()
    _set_revision(uri, "9999_from_the_future")
    assert_one_line_error(run_cli("runs", "list", store=uri, root=tmp_path / "s"), "newer than this ckptstore")

    prefix = as_plain_user()
    base = Path(tempfile.mkdtemp(prefix="ckptstore-ro-"))
    try:
        os.chmod(base, 0o755)
        with ckptstore.open_store(str(base / "s")) as s:
            s.start_run("r").finish()
        subprocess.run(["chmod", "-R", "a-w", str(base / "s")], check=True)
        before = _tree_digest(base / "s")
        # Reading commands work on a read-only store; one that writes is refused in one line.
        out = run_cli("runs", "list", "--json", store=base / "s", root=base / "s", prefix=prefix)
        assert out.returncode == 0 and [r["name"] for r in json.loads(out.stdout)] == ["r"], out.stderr
        out = run_cli("runs", "delete", "r", "--yes", store=base / "s", root=base / "s", prefix=prefix)
        assert_one_line_error(out, "read-only")
        assert _tree_digest(base / "s") == before
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_cli_writes_on_a_read_only_filesystem_say_so_and_reads_work(tmp_path):
    """A store on a read-only mount: SQLite says only "unable to open database file"; a write
    says the filesystem is read-only, a read answers, and nothing changes."""
    src = tmp_path / "src"
    with ckptstore.open_store(str(src)) as s:
        s.start_run("r").finish()
    before = _tree_digest(src)
    with read_only_mount(src, tmp_path / "ro") as ro:
        for args in (["alias", "x", "r@latest"], ["unalias", "x"], ["runs", "delete", "r", "--yes"]):
            out = run_cli(*args, store=ro)
            assert_one_line_error(out, "is on a read-only filesystem")
            assert "unable to open" in out.stderr and str(ro) in out.stderr
        out = run_cli("runs", "list", "--json", store=ro)
        assert out.returncode == 0 and [r["name"] for r in json.loads(out.stdout)] == ["r"], out.stderr
    assert _tree_digest(src) == before
