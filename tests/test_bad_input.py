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
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from .conftest import require_tensorflow

tf = require_tensorflow()

import ckptstore  # noqa: E402
from ckptstore import schema as S  # noqa: E402
from ckptstore.errors import (  # noqa: E402
    CkptstoreError,
    InvalidNameError,
    InvalidRefError,
    MetricValueError,
    NoCheckpointFoundError,
    ReadOnlyStoreError,
    RestoreMismatchError,
    SchemaTooNewError,
    UnknownAliasError,
    UnknownRefError,
    UnknownRunError,
)

ROOT = Path(__file__).resolve().parent.parent
CLI_READY = (ROOT / "ckptstore" / "cli.py").exists()
needs_cli = pytest.mark.skipif(not CLI_READY, reason="ckptstore/cli.py has not landed yet")

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
        for t in S.Base.metadata.sorted_tables:
            rows = conn.execute(select(t)).all()
            tables[t.name] = sorted(repr(tuple(r)) for r in rows)
    files = {}
    if store.root is not None and store.files.objects.exists():
        for d, p in store.files.object_digests():
            files[d] = hashlib.sha256(p.read_bytes()).hexdigest()
    return {"tables": tables, "files": files}


def seed_session(b: float = 1.0):
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, name="x")
        v = tf.compat.v1.get_variable("b", initializer=tf.constant(b))
        tf.add(x, v, name="out")
        init = tf.compat.v1.global_variables_initializer()
    sess = tf.compat.v1.Session(graph=g)
    sess.run(init)
    return sess


@pytest.fixture
def populated(store):
    """Run "r" with metrics at steps 1..3, a checkpoint r@1 and the alias "prod" -> r@1."""
    with store.start_run("r", params={"lr": 0.1}, tags={"team": "x"}) as run:
        for step in (1, 2, 3):
            run.log(step, loss=1.0 / step)
        run.save(seed_session(), 1)
    store.tag("r@1", "prod", message="first")
    return store


def fresh_session():
    return tf.compat.v1.Session(graph=tf.Graph())


def every_reader(store, ref, tmp_path):
    """The library calls that take a reference, each as a thunk."""
    return {
        "checkpoint": lambda: store.checkpoint(ref),
        "resolve": lambda: store.resolve(ref),
        "variables": lambda: store.variables(ref),
        "restore": lambda: store.restore(ref, fresh_session()),
        "materialize": lambda: store.materialize(ref, tmp_path / "out"),
        "read_variable": lambda: store.read_variable(ref, "b"),
        "tag": lambda: store.tag(ref, "other"),
    }


# --------------------------------------------------------------------------- unknown things


@pytest.mark.parametrize(
    "ref, error, says",
    [
        ("r@999", UnknownRefError, "its checkpoints are at steps 1"),
        ("r@~0", UnknownRefError, "no checkpoint at or below step 0"),
        ("nope@1", UnknownRunError, "no run named 'nope'"),
        ("nope@latest", UnknownRunError, "no run named 'nope'"),
        ("staging", UnknownAliasError, "no version named 'staging'"),
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
        populated.untag("nope")
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
        populated.tag("r@1", name)
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


@pytest.mark.parametrize("key", ["a\x00b", "k" * 201, ""], ids=["nul", "201-chars", "empty"])
def test_bad_metric_names_fail_at_the_call_not_at_a_later_flush(store, key):
    run = store.start_run("m")
    with pytest.raises(MetricValueError, match="metric name"):
        run.log(1, **{"good": 1.0, key: 2.0})
    run.log(2, good=2.0)
    run.finish()  # the buffer is not blocked by the refused name
    assert [(s.step, s.metrics) for s in store.steps("m")] == [(2, {"good": 2.0})]


def test_unicode_names_round_trip(store, tmp_path):
    name, alias = UNICODE_NAME, "版本-1"
    with store.start_run(name, params={"説明": "ü"}, tags={"チーム": "視覚"}) as run:
        run.log(1, **{"损失": 0.5, "loss": 0.25})
        run.save(seed_session(3.0), 1)
    store.tag(f"{name}@1", alias)
    info = store.get_run(name)
    assert (info.name, info.params, info.tags) == (name, {"説明": "ü"}, {"チーム": "視覚"})
    assert [r.name for r in store.runs(name="训练-*")] == [name]
    assert [r.name for r in store.runs(tags={"チーム": "視覚"})] == [name]
    assert store.steps(name)[0].metrics == {"loss": 0.25, "损失": 0.5}
    assert [(r.run, r.metrics["损失"]) for r in store.at_step(1)] == [(name, 0.5)]
    for ref in (f"{name}@1", f"{name}@latest", f"{name}@~5", alias):
        assert store.checkpoint(ref).run == name
        s2 = fresh_session()
        store.restore(ref, s2)
        assert float(s2.run("out:0", {"x:0": 1.0})) == 4.0
    prefix = store.materialize(alias, tmp_path / "m")
    assert float(tf.train.load_checkpoint(str(prefix)).get_tensor("b")) == 3.0
    assert [v.name for v in store.versions()] == [alias]


def test_names_at_the_length_limit_are_accepted(store):
    name = "n" * S.NAME_MAX
    store.start_run(name).finish()
    assert store.get_run(name).name == name
    with pytest.raises(InvalidNameError, match=f"limit is {S.NAME_MAX}"):
        store.start_run(name + "n")


# --------------------------------------------------------------------------- metric values


def test_nan_and_infinities_are_stored_and_read_back(store):
    with store.start_run("nf") as run:
        run.log(1, a=float("nan"), b=float("inf"), c=float("-inf"), d=np.float32(2.5), e=np.int64(3), f=True)
    m = store.steps("nf")[0].metrics
    assert math.isnan(m["a"]) and m["b"] == math.inf and m["c"] == -math.inf
    assert (m["d"], m["e"], m["f"]) == (2.5, 3.0, 1.0)


@pytest.mark.parametrize("value", ["0.5", "abc", None, [1.0], {"x": 1}, b"1", object()], ids=repr)
def test_non_numeric_metric_values_are_refused_and_nothing_of_the_call_is_kept(store, value):
    run = store.start_run("m")
    run.log(1, ok=1.0)
    run.flush()
    before = snapshot(store)
    with pytest.raises(MetricValueError, match=r"metric 'bad' at step 2") as exc:
        run.log(2, fine=2.0, bad=value)
    assert "\n" not in str(exc.value)
    run.flush()
    assert snapshot(store) == before  # "fine" was not buffered either
    run.log(3, ok=3.0)
    run.finish()
    assert [s.step for s in store.steps("m")] == [1, 3]


@pytest.mark.parametrize("step", [-1, 1.5, "3", None, True, float("nan")], ids=repr)
def test_bad_steps_are_refused(store, step):
    run = store.start_run("m")
    with pytest.raises(MetricValueError, match="step must be a whole number"):
        run.log(step, x=1.0)
    run.finish()
    assert store.steps("m") == []


def test_refusing_non_finite_values_when_asked(store):
    run = store.start_run("strict", nonfinite="raise")
    with pytest.raises(MetricValueError, match="inf"):
        run.log(1, loss=float("inf"))
    with pytest.raises(MetricValueError, match="nan"):
        run.log(1, loss=float("nan"))
    skip = store.start_run("lenient", nonfinite="skip")
    skip.log(1, loss=float("nan"), acc=0.5)
    run.finish()
    skip.finish()
    assert store.steps("strict") == []
    assert store.steps("lenient")[0].metrics == {"acc": 0.5}


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


def test_restoring_a_tf2_checkpoint_into_a_different_object(store):
    class A(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.zeros([3]))

    class B(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.zeros([5]))

    store.start_run("t2").save(A(), 1)
    before = snapshot(store)
    with pytest.raises(RestoreMismatchError):
        store.restore("t2@1", B())
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


# --------------------------------------------------------------------------- schema newer than the code


def _set_revision(uri: str, revision: str) -> None:
    from sqlalchemy import create_engine, text

    url = uri if "://" in uri else f"sqlite:///{Path(uri) / 'store.db'}"
    eng = create_engine(url)
    with eng.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
    eng.dispose()


def test_a_store_from_a_newer_ckptstore_is_refused_untouched(store_uri):
    uri, root = store_uri
    with ckptstore.open_store(uri, root=root) as s:
        with s.start_run("r") as run:
            run.log(1, x=1.0)
    _set_revision(uri, "9999_from_the_future")
    db_file = Path(uri) / "store.db" if "://" not in uri else None
    before = db_file.read_bytes() if db_file else None
    for create in (True, False):
        with pytest.raises(SchemaTooNewError, match="9999_from_the_future.*upgrade ckptstore"):
            ckptstore.open_store(uri, root=root, create=create)
    if db_file:
        assert db_file.read_bytes() == before
        assert not list(db_file.parent.glob("store.db.backup-*"))  # no "upgrade" was attempted
    _set_revision(uri, ckptstore.db.HEAD_REVISION)
    with ckptstore.open_store(uri, root=root) as s:
        assert s.steps("r")[0].metrics == {"x": 1.0}


# --------------------------------------------------------------------------- read-only stores


def _as_plain_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make permission bits apply")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


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


def test_a_read_only_sqlite_store_is_a_clear_error_and_stays_intact(tmp_path_factory):
    import json
    import tempfile

    prefix = _as_plain_user()
    # Not under pytest's tmp dir, whose parents a plain user may not traverse.
    base = Path(tempfile.mkdtemp(prefix="ckptstore-ro-"))
    try:
        os.chmod(base, 0o755)
        store_dir = base / "s"
        _make_small_store(str(store_dir), store_dir)
        subprocess.run(["chmod", "-R", "a-w", str(store_dir)], check=True)
        before = _tree_digest(store_dir)
        for what in ("log", "save"):
            out = subprocess.run([*prefix, sys.executable, "-c", READ_ONLY_CHILD, str(store_dir), "", what],
                                 capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=120)
            assert out.returncode == 0, out.stderr
            res = json.loads(out.stdout)
            assert res["error"][0] == "ReadOnlyStoreError", res
            assert "read-only" in res["error"][1] and str(store_dir) in res["error"][1]
        assert _tree_digest(store_dir) == before
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_a_read_only_file_area_refuses_saves_but_serves_reads(pg_server):
    """PostgreSQL metadata with a file root the user may only read (e.g. a shared archive)."""
    import json
    import tempfile

    prefix = _as_plain_user()
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
            s.read_variable("r@1", "model/w")
            before = snapshot(s)
        out = subprocess.run([*prefix, sys.executable, "-c", READ_ONLY_CHILD, uri, str(root), "save"],
                             capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=120)
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
        assert res["runs"] == ["r"] and res["restored"] == [7.0, 7.0]
        assert res["error"][0] == "ReadOnlyStoreError" and str(root) in res["error"][1], res
        assert _tree_digest(root) == before_files
        with ckptstore.open_store(uri, root=root) as s:
            assert snapshot(s) == before
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------- the command line


def cli(uri: str, root: Path, *args: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "COLUMNS": "200", "CKPTSTORE_ROOT": str(root)}
    env.pop("CKPTSTORE_URI", None)
    return subprocess.run([*(prefix or []), sys.executable, "-m", "ckptstore", "--store", uri, *args],
                          capture_output=True, text=True, env=env, timeout=120)


def assert_one_line_error(out: subprocess.CompletedProcess, *needles: str) -> None:
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    err = out.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err


@needs_cli
def test_cli_bad_input_is_one_line_and_changes_nothing(store_uri, tmp_path):
    uri, root = store_uri
    with ckptstore.open_store(uri, root=root) as s:
        with s.start_run("r") as run:
            run.log(1, loss=0.5)
            run.save(seed_session(), 1)
        before = snapshot(s)
    (tmp_path / "empty").mkdir()
    cases = [
        (("runs", "show", "nope"), "no run named 'nope'"),
        (("steps", "nope"), "no run named 'nope'"),
        (("checkpoints", "nope"), "no run named 'nope'"),
        (("restore", "r@999", "--to", str(tmp_path / "o")), "r@999"),
        (("restore", "staging", "--to", str(tmp_path / "o")), "staging"),
        (("vars", "nope@1"), "nope"),
        (("untag", "nope"), "nope"),
        (("import", str(tmp_path / "empty"), "--run", "imported"), "no TensorFlow checkpoint"),
        (("import", str(tmp_path / "empty"), "--run=a/b"), "must not contain '/'"),
        (("import", str(tmp_path / "empty"), "--run=-a"), "must not start with '-'"),
        (("import", str(tmp_path / "empty"), "--run=" + "x" * 10_000), "limit is"),
        (("tag", "r@1", "a/b"), "'/'"),
        (("verify", "nope"), "nope"),
    ] + [(("restore", ref, "--to", str(tmp_path / "o")), "reference") for ref in ("a@", "@3", "a@-1", "a@~x")]
    for args, says in cases:
        assert_one_line_error(cli(uri, root, *args), says)
    assert not (tmp_path / "o").exists()
    with ckptstore.open_store(uri, root=root) as s:
        assert snapshot(s) == before


@needs_cli
def test_cli_unicode_run_name(store_uri):
    uri, root = store_uri
    with ckptstore.open_store(uri, root=root) as s, s.start_run(UNICODE_NAME) as run:
        run.log(1, loss=0.5)
    out = cli(uri, root, "runs", "list", "--json")
    assert out.returncode == 0, out.stderr
    import json

    assert [r["name"] for r in json.loads(out.stdout)] == [UNICODE_NAME]
    out = cli(uri, root, "steps", UNICODE_NAME, "--json")
    assert out.returncode == 0 and "0.5" in out.stdout, out.stderr


@needs_cli
def test_cli_newer_schema_and_read_only_store_are_one_line(tmp_path):
    import tempfile

    uri = str(tmp_path / "s")
    with ckptstore.open_store(uri) as s:
        s.start_run("r").finish()
    _set_revision(uri, "9999_from_the_future")
    assert_one_line_error(cli(uri, tmp_path / "s", "runs", "list"), "newer than this ckptstore")

    prefix = _as_plain_user()
    base = Path(tempfile.mkdtemp(prefix="ckptstore-ro-"))
    try:
        os.chmod(base, 0o755)
        with ckptstore.open_store(str(base / "s")) as s:
            s.start_run("r").finish()
        subprocess.run(["chmod", "-R", "a-w", str(base / "s")], check=True)
        assert_one_line_error(cli(str(base / "s"), base / "s", "runs", "list", prefix=prefix), "read-only")
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)
