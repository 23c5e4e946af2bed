"""The command line, end to end: every command and error path through a real ``python -m ckptstore``.

One store with real TensorFlow checkpoints, an export and a named version is built once per
module through the library; tests that change a store work on a copy of it. Output is parsed
back from ``--json``, and the state a command leaves is checked through the library.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ckptstore

TF_CHECK = """
import runpy, sys
sys.argv = ["ckptstore", *sys.argv[1:]]
try:
    runpy.run_module("ckptstore", run_name="__main__", alter_sys=True)
finally:
    sys.stderr.write("\\nIMPORTED " + " ".join(m for m in ("tensorflow", "keras", "matplotlib") if m in sys.modules) + "\\n")
"""

# Runs the CLI with one library call replaced by one that raises EXC (Python source).
RAISES = """
import runpy, sys
import sqlalchemy.exc
from ckptstore.store import Store
def boom(self, *args, **kwargs):
    raise {exc}
Store.{method} = boom
sys.argv = ["ckptstore", *sys.argv[1:]]
runpy.run_module("ckptstore", run_name="__main__", alter_sys=True)
"""

NO_MATPLOTLIB = """
import runpy, sys
sys.modules["matplotlib"] = None  # as if it were not installed
sys.argv = ["ckptstore", *sys.argv[1:]]
runpy.run_module("ckptstore", run_name="__main__", alter_sys=True)
"""


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CKPTSTORE_URI", "CKPTSTORE_ROOT")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.update(extra or {})
    return env


def cli(*args: str, store: str | Path | None = None, env: dict[str, str] | None = None,
        cwd: str | Path | None = None, code: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ckptstore [--store STORE] ARGS`` (or ``code`` with those arguments)."""
    head = [sys.executable, "-m", "ckptstore"] if code is None else [sys.executable, "-c", code]
    opts = ["--store", str(store)] if store is not None else []
    return subprocess.run(
        [*head, *opts, *args], capture_output=True, text=True, env=_env(env), cwd=cwd,
        stdin=subprocess.DEVNULL, timeout=300,
    )


def ok(*args: str, **kw) -> str:
    r = cli(*args, **kw)
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r.stdout


def as_json(*args: str, **kw):
    return json.loads(ok(*args, "--json", **kw))


def fails(*args: str, **kw) -> str:
    """Run a command that must fail as a user error: exit 1, one 'error:' line, no traceback."""
    r = cli(*args, **kw)
    assert r.returncode == 1, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def bad_usage(*args: str, **kw) -> str:
    """Run a command that must be refused as bad usage: exit 2, no traceback; the message, flattened."""
    r = cli(*args, **kw)
    assert r.returncode == 2, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert "Traceback" not in r.stderr
    # Click may draw the message in a box over several lines.
    return " ".join(r.stderr.replace("\u2502", " ").split())


def on_terminal(*args: str, store: str | Path) -> tuple[int, str]:
    """Run ``python -m ckptstore`` with stdout and stderr on a pseudo-terminal; (status, output)."""
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ckptstore", "--store", str(store), *args], stdin=subprocess.DEVNULL,
        stdout=slave, stderr=slave, env=_env({"TERM": "xterm-256color", "COLUMNS": "120"}),
    )
    os.close(slave)
    out = b""
    try:
        while select.select([master], [], [], 300)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
    return proc.wait(timeout=300), out.decode(errors="replace")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tf():
    import tensorflow as tf

    return tf


def _net(tf, width: int, extra: bool = False):
    net = tf.Module()
    net.w = tf.Variable(tf.reshape(tf.range(3 * width, dtype=tf.float32), [3, width]))
    net.b = tf.Variable(tf.ones([width]))
    if extra:
        net.v = tf.Variable([0.5])
    return net


@pytest.fixture(scope="module")
def built(tmp_path_factory, tf) -> Path:
    """A store with runs 'mlp' (checkpoints 10, 20, 30; export:1 at 30; 'prod' -> mlp@20),
    'mlp-wide' (one checkpoint with wider and extra variables), 'broken' (failed, metrics only)."""
    path = tmp_path_factory.mktemp("cli") / "store"
    store = ckptstore.open_store(path)
    net = _net(tf, 2)
    with store.start_run("mlp", params={"lr": 0.1}, tags={"team": "vision"}) as run:
        for step in range(1, 31):
            run.log(step, loss=1.0 / step, acc=step / 30)
            if step % 10 == 0:
                net.b.assign_add(tf.ones([2]))
                run.save(net, step)
        serve = tf.function(lambda x: tf.matmul(x, net.w) + net.b,
                            input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        run.freeze(serve, step=30)
    with store.start_run("mlp-wide", tags={"team": "nlp"}) as run:
        run.log(10, loss=0.5)
        run.save(_net(tf, 4, extra=True), 10)
    try:
        with store.start_run("broken") as run:
            run.log(5, loss=float("nan"))
            raise RuntimeError("diverged")
    except RuntimeError:
        pass
    store.tag("mlp@20", "prod", message="first release")
    store.close()
    return path


@pytest.fixture
def fresh(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built store, for tests that change it."""
    dst = tmp_path / "store"
    shutil.copytree(built, dst, symlinks=True)
    return dst


@pytest.fixture(scope="module")
def vanilla_dir(tmp_path_factory, tf) -> Path:
    """A directory written by plain tf.compat.v1.train.Saver at steps 100 and 200."""
    d = tmp_path_factory.mktemp("vanilla")
    with tf.Graph().as_default() as g:
        v = tf.compat.v1.get_variable("v", initializer=tf.constant([1.0, 2.0]))
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=g) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for step in (100, 200):
                sess.run(v.assign_add([1.0, 1.0]))
                saver.save(sess, str(d / "model.ckpt"), global_step=step)
    return d


# --------------------------------------------------------------------------- basics


def test_help_lists_every_command():
    out = ok("--help")
    for name in ("runs", "steps", "at", "checkpoints", "vars", "restore", "tag", "untag", "versions",
                 "exports", "export", "import", "verify", "gc", "db", "demo", "plot"):
        assert name in out
    assert "list" in ok("runs", "--help") and "upgrade" in ok("db", "--help")


def test_version_flag():
    assert ok("--version").strip() == f"ckptstore {ckptstore.__version__}"


def test_bad_usage_exits_2_without_traceback(built):
    for args in (["runs", "list", "--bogus"], ["at", "notastep"], ["runs", "list", "--tag", "novalue"],
                 ["restore", "mlp@10"], ["no-such-command"]):
        r = cli(*args, store=built)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr
        # one line, like every other error, pointing at the help
        [line] = r.stderr.strip().splitlines()
        assert line.startswith("error: ") and line.endswith("--help')"), line


def test_numbers_beyond_64_bits_are_bad_usage(built):
    too_big = "less than or equal to 9223372036854775807"
    assert f"Invalid value for 'STEP': Input should be {too_big}" in bad_usage("at", "9223372036854775808", store=built)
    assert f"'--from': Input should be {too_big}" in bad_usage("steps", "mlp", "--from", "9" * 23, store=built)
    assert f"'--to': Input should be {too_big}" in bad_usage("steps", "mlp", "--to", "9" * 23, store=built)
    assert "'--from': Input should be greater than or equal to 0" in bad_usage("steps", "mlp", "--from", "-1", store=built)
    assert "Invalid value for '--to'" in bad_usage("steps", "mlp", "--to", "9" * 5000, store=built)
    # the largest step there can be is a valid question
    assert "no run has step 9223372036854775807" in ok("at", "9223372036854775807", store=built)
    assert "in that range" in ok("steps", "mlp", "--from", "9223372036854775807", store=built)


def test_huge_references_are_one_line_errors(built, tmp_path):
    fails("export", "export:9223372036854775808", "--to", str(tmp_path / "f.pb"), store=built)
    fails("export", "export:" + "9" * 30, "--to", str(tmp_path / "f.pb"), store=built)
    fails("restore", "mlp@9223372036854775808", "--to", str(tmp_path / "r"), store=built)
    assert list(tmp_path.iterdir()) == []


def test_unexpected_errors_are_one_line_exit_1(fresh):
    dropped = 'sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))'
    code = RAISES.format(exc=dropped, method="tag")
    line = fails("tag", "mlp@10", "best", store=fresh, code=code)
    assert line.startswith("error: OperationalError: ") and "server closed the connection unexpectedly" in line
    assert "[SQL:" not in line and "CKPTSTORE_DEBUG=1" in line
    line = fails("steps", "mlp", store=fresh, code=RAISES.format(exc='OverflowError("int too big")', method="steps"))
    assert line.startswith("error: OverflowError: int too big")
    r = cli("tag", "mlp@10", "best", store=fresh, code=code, env={"CKPTSTORE_DEBUG": "1"})
    assert r.returncode == 1 and "Traceback" in r.stderr and "OperationalError" in r.stderr
    with ckptstore.open_store(fresh, create=False) as store:
        assert [a.name for a in store.versions()] == ["prod"]


# --------------------------------------------------------------------------- runs


RUN_KEYS = {"id", "name", "status", "params", "tags", "created_at", "ended_at", "last_step", "checkpoints", "retention"}


def test_runs_list_table_and_json(built):
    out = ok("runs", "list", store=built)
    assert out.splitlines()[0].split()[:2] == ["name", "status"]
    assert {"mlp", "mlp-wide", "broken"} <= {line.split()[0] for line in out.splitlines()[1:]}
    runs = as_json("runs", "list", store=built)
    assert [r["name"] for r in runs] == ["mlp", "mlp-wide", "broken"]
    assert all(set(r) == RUN_KEYS for r in runs)
    mlp = runs[0]
    assert mlp["status"] == "finished" and mlp["last_step"] == 30 and mlp["checkpoints"] == 3
    assert mlp["tags"] == {"team": "vision"} and mlp["params"] == {"lr": 0.1}


def test_runs_list_filters(built):
    names = lambda *a: [r["name"] for r in as_json("runs", "list", *a, store=built)]  # noqa: E731
    assert names("--status", "failed") == ["broken"]
    assert names("--tag", "team=nlp") == ["mlp-wide"]
    assert names("--name", "mlp*") == ["mlp", "mlp-wide"]
    assert names("--tag", "team=vision", "--status", "finished") == ["mlp"]
    assert names("--name", "zzz*") == []
    assert "no runs match" in ok("runs", "list", "--name", "zzz*", store=built)
    assert "'bogus' is not one of 'running', 'finished', 'failed'" in bad_usage("runs", "list", "--status", "bogus", store=built)


def test_store_comes_from_the_environment(built, tmp_path):
    runs = json.loads(ok("runs", "list", "--json", env={"CKPTSTORE_URI": str(built)}))
    assert len(runs) == 3
    # --store wins over the environment
    assert "no store at" in fails("runs", "list", store=tmp_path / "none", env={"CKPTSTORE_URI": str(built)})


def test_runs_show(built):
    info = as_json("runs", "show", "mlp", store=built)
    assert set(info) == RUN_KEYS | {"metrics"}
    assert info["metrics"] == ["acc", "loss"] and info["checkpoints"] == 3
    out = ok("runs", "show", "broken", store=built)
    assert "failed" in out and "loss" in out


def test_runs_delete_asks_refuses_pinned_and_deletes(fresh):
    assert "--yes" in fails("runs", "delete", "mlp-wide", store=fresh)
    assert "prod" in fails("runs", "delete", "mlp", "--yes", store=fresh)  # an alias pins mlp@20
    assert "deleted run mlp-wide (1 checkpoint)" in ok("runs", "delete", "mlp-wide", "--yes", store=fresh)
    with ckptstore.open_store(fresh, create=False) as store:
        assert [r.name for r in store.runs()] == ["mlp", "broken"]
        assert store.verify().ok
    assert "no run named 'mlp-wide'" in fails("runs", "delete", "mlp-wide", "--yes", store=fresh)


# --------------------------------------------------------------------------- metrics


def test_steps(built):
    rows = as_json("steps", "mlp", store=built)
    assert [r["step"] for r in rows] == list(range(1, 31))
    assert set(rows[0]) == {"step", "wall_time", "metrics"} and rows[1]["metrics"] == {"acc": 2 / 30, "loss": 0.5}
    rows = as_json("steps", "mlp", "--from", "5", "--to", "7", "--metric", "loss", store=built)
    assert [(r["step"], list(r["metrics"])) for r in rows] == [(5, ["loss"]), (6, ["loss"]), (7, ["loss"])]
    assert as_json("steps", "broken", store=built)[0]["metrics"] == {"loss": "nan"}
    out = ok("steps", "mlp", "--to", "2", store=built)
    assert out.split() == ["step", "acc", "loss", "1", "0.0333333", "1", "2", "0.0666667", "0.5"]


def test_at_step(built):
    rows = as_json("at", "10", store=built)
    assert {r["run"]: r["checkpoint_step"] for r in rows} == {"mlp": 10, "mlp-wide": 10}
    assert set(rows[0]) == {"run", "step", "metrics", "checkpoint_step"}
    rows = as_json("at", "25", "--nearest", "--metric", "loss", store=built)
    assert {r["run"]: (r["step"], r["checkpoint_step"], r["metrics"]) for r in rows} == {
        "mlp": (25, 20, {"loss": 1 / 25}), "mlp-wide": (10, 10, {"loss": 0.5}), "broken": (5, None, {"loss": "nan"}),
    }
    assert "try --nearest" in ok("at", "1000", store=built)


# --------------------------------------------------------------------------- checkpoints and variables


def test_checkpoints(built):
    cks = as_json("checkpoints", "mlp", store=built)
    assert [c["step"] for c in cks] == [10, 20, 30]
    assert {"ref", "pinned", "aliases", "files", "total_bytes", "state", "format"} <= set(cks[0])
    assert [(c["ref"], c["pinned"], c["aliases"]) for c in cks] == [
        ("mlp@10", False, []), ("mlp@20", True, ["prod"]), ("mlp@30", False, []),
    ]
    assert sum(f["size"] for f in cks[0]["files"]) == cks[0]["total_bytes"]
    table = ok("checkpoints", "mlp", store=built)
    assert "pinned" in table and "prod" in table
    assert "has no checkpoints" in ok("checkpoints", "broken", store=built)


def test_vars_and_diff(built):
    names = {v["name"]: v for v in as_json("vars", "prod", store=built)}
    w = next(v for n, v in names.items() if "/w/" in n)
    assert w["dtype"] == "float32" and w["shape"] == [3, 2]
    diff = as_json("vars", "mlp@latest", "--diff", "mlp-wide@10", store=built)
    assert set(diff) == {"added", "removed", "changed", "unchanged"}
    assert [v["shape"] for v in diff["added"]] == [[1]] and diff["removed"] == []
    assert sorted(c["after"]["shape"] for c in diff["changed"]) == [[3, 4], [4]]
    out = ok("vars", "mlp@10", "--diff", "mlp-wide@10", store=built)
    assert "1 added, 0 removed, 2 changed" in out
    assert "names export 1, not a checkpoint" in fails("vars", "export:1", store=built)


def test_restore_writes_a_directory_plain_tensorflow_reads(built, tmp_path, tf):
    out = ok("restore", "prod", "--to", str(tmp_path / "r"), store=built)
    assert "restored prod to" in out
    prefix = tf.train.latest_checkpoint(str(tmp_path / "r"))
    assert prefix and prefix.endswith("-20")
    reader = tf.train.load_checkpoint(prefix)
    key = next(k for k in reader.get_variable_to_shape_map() if "/b/" in k)
    np.testing.assert_array_equal(reader.get_tensor(key), [3.0, 3.0])  # 1 + two increments by step 20
    assert "restored prod" in ok("restore", "prod", "--to", str(tmp_path / "r"), store=built)  # again: same files
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model.ckpt-10.index").write_text("someone else's")
    assert "already exists" in fails("restore", "mlp@10", "--to", str(tmp_path / "other"), store=built)


# --------------------------------------------------------------------------- named versions


def test_tag_move_untag_and_versions(fresh):
    assert ok("tag", "mlp@latest", "best", "-m", "good", store=fresh).strip() == "best -> mlp@30"
    assert ok("tag", "mlp@~15", "best", store=fresh).strip() == "best -> mlp@10 (was mlp@30)"
    [best] = as_json("versions", "best", store=fresh)
    assert set(best) == {"name", "target", "kind", "message", "updated_at", "history"}
    assert best["target"] == "mlp@10" and best["kind"] == "checkpoint"
    assert [(e["action"], e["old_target"], e["new_target"]) for e in best["history"]] == [
        ("move", "mlp@30", "mlp@10"), ("tag", None, "mlp@30"),
    ]
    assert ok("tag", "export:1", "served", store=fresh).strip() == "served -> export:1"
    assert {a["name"]: a["kind"] for a in as_json("versions", store=fresh)} == {
        "best": "checkpoint", "prod": "checkpoint", "served": "export",
    }
    assert "history (newest first)" in ok("versions", "best", store=fresh)
    assert ok("untag", "best", "-m", "retired", store=fresh).strip() == "untagged best (was mlp@10)"
    [gone] = as_json("versions", "best", store=fresh)
    assert gone["kind"] == "untagged" and gone["history"][0]["message"] == "retired"
    with ckptstore.open_store(fresh, create=False) as store:
        assert [a.name for a in store.versions()] == ["prod", "served"]
        assert store.resolve("served").id == 1


def test_versions_empty_store(tmp_path):
    ckptstore.open_store(tmp_path / "s").close()
    assert "no named versions yet" in ok("versions", store=tmp_path / "s")
    assert as_json("versions", store=tmp_path / "s") == []


# --------------------------------------------------------------------------- exports


def test_exports_and_export(built, tmp_path):
    [e] = as_json("exports", store=built)
    assert e["ref"] == "export:1" and e["run"] == "mlp" and e["step"] == 30 and e["kind"] == "tf2-function"
    assert e["inputs"][0]["name"] == "x" and e["checkpoint_id"] is not None
    assert as_json("exports", "mlp-wide", store=built) == []
    assert "no exports in run mlp-wide" in ok("exports", "mlp-wide", store=built)
    out = ok("export", "mlp@30", "--to", str(tmp_path / "deploy" / "model.pb"), store=built)
    assert "model.pb" in out
    pb = tmp_path / "deploy" / "model.pb"
    side = json.loads((tmp_path / "deploy" / "model.pb.json").read_text())
    assert pb.stat().st_size == e["size"] and side["digest"] == e["digest"]
    assert side["lineage"] == {"run": "mlp", "step": 30, "checkpoint": "mlp@30"}
    assert "no export at step 10" in fails("export", "mlp@10", "--to", str(tmp_path / "x.pb"), store=built)


def test_export_to_a_directory(built, tmp_path):
    out = ok("export", "export:1", "--to", str(tmp_path / "new") + "/", store=built)
    pb = tmp_path / "new" / "export-1.pb"
    assert out.strip().startswith(f"wrote {pb} (") and out.strip().endswith(f"and {pb}.json")
    assert json.loads((tmp_path / "new" / "export-1.pb.json").read_text())["export"] == "export:1"
    (tmp_path / "existing").mkdir()
    assert f"wrote {tmp_path / 'existing' / 'export-1.pb'}" in ok("export", "mlp@30", "--to", str(tmp_path / "existing"), store=built)
    assert sorted(p.name for p in (tmp_path / "existing").iterdir()) == ["export-1.pb", "export-1.pb.json"]
    # a bad REF leaves no directory behind
    assert "no export at step 10" in fails("export", "mlp@10", "--to", str(tmp_path / "never") + "/", store=built)
    assert not (tmp_path / "never").exists()


# --------------------------------------------------------------------------- import, verify, gc


def test_import_vanilla_saver_directory(fresh, vanilla_dir):
    out = ok("import", str(vanilla_dir), "--run", "legacy", store=fresh)
    assert "imported 2 checkpoints into run legacy (steps 100, 200" in out
    assert "nothing new to import" in ok("import", str(vanilla_dir), "--run", "legacy", store=fresh)
    with ckptstore.open_store(fresh, create=False) as store:
        assert [c.step for c in store.checkpoints("legacy")] == [100, 200]
        np.testing.assert_array_equal(store.read_variable("legacy@200", "v"), [3.0, 4.0])


def test_import_errors(fresh, tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no TensorFlow checkpoint" in fails("import", str(tmp_path / "empty"), "--run", "x", store=fresh)
    assert "is not a directory" in fails("import", str(tmp_path / "nope"), "--run", "x", store=fresh)
    assert "must not contain '/'" in fails("import", str(tmp_path / "empty"), "--run", "a/b", store=fresh)


def test_verify_ok_then_finds_a_corrupt_file(fresh):
    report = as_json("verify", store=fresh)
    assert report["ok"] is True and report["problems"] == [] and report["checked_files"] >= 4
    assert "ok" in ok("verify", "mlp", store=fresh)
    with ckptstore.open_store(fresh, create=False) as store:
        data = next(f for f in store.checkpoint("mlp@10").files if f.role == "data")
        path = store.files.path_of(data.digest)
    path.chmod(0o644)
    raw = bytearray(path.read_bytes())
    raw[0] ^= 0xFF
    path.write_bytes(bytes(raw))
    r = cli("verify", "--json", store=fresh)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is False
    assert [(p["kind"], p["checkpoint"]) for p in report["problems"]] == [("corrupt", "mlp@10")]
    assert "verify found 1 damaged file(s) (1 corrupt)" in fails("verify", store=fresh)
    assert "ok" in ok("verify", "mlp-wide", store=fresh)  # another run's files are fine


def test_gc_removes_leftovers(fresh):
    stale = fresh / "staging" / "save-crashed"
    stale.mkdir(parents=True)
    (stale / "model.ckpt-1.index").write_bytes(b"half")
    report = as_json("verify", store=fresh)
    assert report["ok"] is True and [p["kind"] for p in report["problems"]] == ["stale-staging"]
    dry = as_json("gc", "--dry-run", store=fresh)
    assert dry == {"removed_objects": 0, "removed_bytes": 0, "removed_staging": 1, "removed_blob_rows": 0, "dry_run": True}
    assert stale.exists()
    assert "removed 0 unreferenced file(s) (0 B) and 1 staging directory" in ok("gc", store=fresh)
    assert not stale.exists()
    assert as_json("verify", store=fresh)["problems"] == []
    with ckptstore.open_store(fresh, create=False) as store:
        assert [c.step for c in store.checkpoints("mlp")] == [10, 20, 30]


# --------------------------------------------------------------------------- db


def test_db_commands(fresh, tmp_path):
    assert as_json("db", "current", store=fresh) == {"revision": "0001", "head": "0001", "status": "current"}
    assert ok("db", "current", store=fresh).strip() == "0001 (head)"
    history = as_json("db", "history")
    assert history[0]["revision"] == "0001" and history[0]["down_revision"] is None
    assert "already at 0001" in ok("db", "upgrade", store=fresh)
    assert "upgraded from an empty database to 0001" in ok("db", "upgrade", store=tmp_path / "new")
    assert as_json("runs", "list", store=tmp_path / "new") == []


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "args, message",
    [
        (["runs", "show", "nope"], "no run named 'nope'"),
        (["steps", "nope"], "no run named 'nope'"),
        (["checkpoints", "nope"], "no run named 'nope'"),
        (["exports", "nope"], "no run named 'nope'"),
        (["vars", "nope@1"], "no run named 'nope'"),
        (["vars", "mlp@999"], "its checkpoints are at steps 10, 20, 30"),
        (["vars", "broken@latest"], "has no checkpoint"),
        (["vars", "ghost"], "no version named 'ghost'"),
        (["vars", "mlp@"], "bad reference 'mlp@'"),
        (["vars", "@3"], "no run name before '@'"),
        (["vars", "mlp@-1"], "bad reference 'mlp@-1'"),
        (["vars", "mlp@~x"], "bad reference 'mlp@~x'"),
        (["vars", "export:x"], "an export id is a number"),
        (["vars", "export:99"], "no export 99"),
        (["restore", "a@b@3", "--to", "/tmp/ckptstore-never"], "more than one '@'"),
        (["restore", "export:1", "--to", "/tmp/ckptstore-never"], "not a checkpoint"),
        (["tag", "mlp@10", "a/b"], "must not contain '/'"),
        (["tag", "mlp@10", "latest"], "reserved"),
        (["tag", "mlp@10", "x" * 201], "the limit is 200"),
        (["tag", "mlp@11", "x"], "no checkpoint mlp@11"),
        (["untag", "nope"], "no version named 'nope'"),
        (["versions", "nope"], "no version named 'nope'"),
        (["plot", "mlp", "-m", "nope", "-o", "/tmp/ckptstore-never.png"], "no values of 'nope'"),
        (["plot", "nope", "-m", "loss", "-o", "/tmp/ckptstore-never.png"], "no run named 'nope'"),
    ],
)
def test_user_errors_are_one_line_exit_1(built, args, message):
    assert message in fails(*args, store=built)
    assert not Path("/tmp/ckptstore-never").exists()


@pytest.mark.parametrize("args", [["runs", "list"], ["runs", "show", "x"], ["checkpoints", "x"], ["versions"],
                                  ["verify"], ["gc"], ["db", "current"], ["tag", "x@1", "y"]])
def test_missing_store_is_an_error_and_is_not_created(tmp_path, args):
    missing = tmp_path / "missing"
    assert "no store at" in fails(*args, store=missing)
    assert not missing.exists()


def test_corrupt_store_file(fresh, tmp_path):
    (fresh / "store.db").write_bytes(b"this is not a database" * 100)
    for f in fresh.glob("store.db-*"):
        f.unlink()
    for args in (["runs", "list"], ["checkpoints", "mlp"], ["versions"], ["db", "current"]):
        assert "not a usable SQLite database" in fails(*args, store=fresh)
    (tmp_path / "afile").write_text("x")
    assert "is a file" in fails("runs", "list", store=tmp_path / "afile")


def test_store_from_a_newer_ckptstore_is_refused(fresh):
    with sqlite3.connect(fresh / "store.db") as con:
        con.execute("UPDATE alembic_version SET version_num = '9999'")
    for args in (["runs", "list"], ["steps", "mlp"], ["tag", "mlp@10", "x"]):
        assert "newer than this ckptstore knows" in fails(*args, store=fresh)
    assert as_json("db", "current", store=fresh)["status"] == "ahead"


def test_unwritable_target_is_a_user_error(built, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "cannot create" in fails("restore", "prod", "--to", str(blocker / "sub"), store=built)


# --------------------------------------------------------------------------- speed


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "list"], ["runs", "list", "--json"], ["runs", "show", "mlp"], ["steps", "mlp"], ["at", "10"],
        ["checkpoints", "mlp"], ["vars", "prod"], ["vars", "mlp@10", "--diff", "mlp-wide@10"], ["versions"],
        ["exports"], ["verify"], ["gc", "--dry-run"], ["db", "current"], ["db", "history"],
        ["restore", "prod", "--to", "{tmp}/r"], ["export", "export:1", "--to", "{tmp}/m.pb"],
        ["runs", "show", "nope"],
    ],
)
def test_metadata_commands_never_import_tensorflow(built, tmp_path, args):
    r = cli(*[a.format(tmp=tmp_path) for a in args], store=built, code=TF_CHECK)
    assert r.returncode in (0, 1), r.stderr
    assert r.stderr.strip().splitlines()[-1] == "IMPORTED", r.stderr


def test_runs_list_is_fast_on_1000_runs(tmp_path):
    import time

    store = ckptstore.open_store(tmp_path / "s")
    for i in range(1000):
        run = store.start_run(f"run-{i:04d}", tags={"team": "a"}, flush_every=1000)
        run.log(1, loss=1.0)
        run.finish()
    store.close()
    cmd = [str(Path(sys.executable).with_name("ckptstore"))]
    if not Path(cmd[0]).exists():
        cmd = [sys.executable, "-m", "ckptstore"]
    times = []
    for _ in range(5):
        t = time.perf_counter()
        r = subprocess.run([*cmd, "--store", str(tmp_path / "s"), "runs", "list"], capture_output=True, text=True, env=_env())
        times.append(time.perf_counter() - t)
        assert r.returncode == 0 and len(r.stdout.splitlines()) == 1001
    # The budget is 0.3 s; a shared 2-core test machine gets some slack.
    assert sorted(times)[2] < 0.45, times


def test_no_progress_bars_when_not_a_terminal(built, tmp_path):
    for args in (["verify"], ["restore", "prod", "--to", str(tmp_path / "r")], ["gc", "--dry-run"]):
        r = cli(*args, store=built)
        assert r.returncode == 0, r.stderr
        assert "\r" not in r.stdout + r.stderr and "\x1b[" not in r.stdout + r.stderr


@pytest.mark.parametrize("args, label", [(["restore", "prod", "--to", "{tmp}/r"], "restoring"),
                                         (["gc", "--dry-run"], "collecting"), (["verify"], "verifying")])
def test_progress_bars_on_a_terminal(built, tmp_path, args, label):
    code, out = on_terminal(*[a.format(tmp=tmp_path) for a in args], store=built)
    assert code == 0, out
    assert label in out and "\x1b[" in out


# --------------------------------------------------------------------------- plot


def test_plot_writes_a_png(built, tmp_path):
    out = tmp_path / "plots" / "loss.png"
    assert f"wrote {out}" in ok("plot", "mlp", "mlp-wide", "-m", "loss", "-m", "acc", "-o", str(out), store=built)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_install_it(built, tmp_path):
    line = fails("plot", "mlp", "-m", "loss", "-o", str(tmp_path / "x.png"), store=built, code=NO_MATPLOTLIB)
    assert "pip install 'ckptstore[plot]'" in line


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_cli_on_a_postgresql_store(pg_server, tmp_path):
    url, root = pg_server.new_database(), tmp_path / "files"
    store = ckptstore.open_store(url, root=root)
    with store.start_run("pg-run", tags={"db": "pg"}) as run:
        run.log(3, loss=0.25)
    store.close()
    env = {"CKPTSTORE_URI": url, "CKPTSTORE_ROOT": str(root)}
    runs = json.loads(ok("runs", "list", "--json", env=env))
    assert [(r["name"], r["last_step"], r["tags"]) for r in runs] == [("pg-run", 3, {"db": "pg"})]
    assert json.loads(ok("at", "3", "--json", env=env))[0]["metrics"] == {"loss": 0.25}
    assert json.loads(ok("db", "current", "--json", env=env))["status"] == "current"
    assert "no run named 'x'" in fails("runs", "show", "x", env=env)
