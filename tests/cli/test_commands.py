"""The command line, end to end: every command and error path through a real ``python -m ckptstore``.

Two stores are built once per module through the library: ``meta``, runs and metrics only
(no TensorFlow, so the fast tier covers every command group on it), and ``built``, the same runs
with real TensorFlow checkpoints, an export and an alias (slow). Tests that change a
store work on a copy of it. Output is parsed back from ``--json``, and the state a command
leaves is checked through the library.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptstore
from tests.helpers.cli import (
    DEBUG_HINT,
    IMPORTS_CHECK,
    NO_MATPLOTLIB,
    RAISES,
    as_json,
    bad_usage,
    cli,
    fails,
    imported,
    ok,
    on_terminal,
    unexpected,
)
from tests.helpers.skips import require_tensorflow

COMMANDS = ("runs", "steps", "at", "checkpoints", "vars", "restore", "alias", "unalias", "aliases",
            "exports", "export", "import", "verify", "gc", "db", "demo", "plot")


# --------------------------------------------------------------------------- fixtures


def log_runs(store, save: Callable[[Any, int], None] | None = None) -> None:
    """Runs 'mlp' (steps 1-30, loss and acc; ``save(run, step)`` at 10, 20, 30), 'mlp-wide'
    (step 10) and 'broken' (failed at step 5 with a NaN loss)."""
    with store.start_run("mlp", params={"lr": 0.1}, tags={"team": "vision"}) as run:
        for step in range(1, 31):
            run.log(step, loss=1.0 / step, acc=step / 30)
            if save is not None and step % 10 == 0:
                save(run, step)
    with store.start_run("mlp-wide", tags={"team": "nlp"}) as run:
        run.log(10, loss=0.5)
        if save is not None:
            save(run, 10)
    try:
        with store.start_run("broken") as run:
            run.log(5, loss=float("nan"))
            raise RuntimeError("diverged")
    except RuntimeError:
        pass


@pytest.fixture(scope="module")
def meta(tmp_path_factory) -> Path:
    """A store with the runs of :func:`log_runs` and no checkpoints: built without TensorFlow."""
    path = tmp_path_factory.mktemp("cli-meta") / "store"
    with ckptstore.open_store(path) as store:
        log_runs(store)
    return path


@pytest.fixture
def meta_copy(meta: Path, tmp_path: Path) -> Path:
    """A private copy of the metrics-only store, for tests that change it."""
    dst = tmp_path / "store"
    shutil.copytree(meta, dst, symlinks=True)
    return dst


@pytest.fixture(scope="module")
def tf():
    return require_tensorflow()


def _net(tf, width: int, extra: bool = False):
    net = tf.Module()
    net.w = tf.Variable(tf.reshape(tf.range(3 * width, dtype=tf.float32), [3, width]))
    net.b = tf.Variable(tf.ones([width]))
    if extra:
        net.v = tf.Variable([0.5])
    return net


@pytest.fixture(scope="module")
def built(tmp_path_factory, tf) -> Path:
    """The runs of :func:`log_runs` with checkpoints: 'mlp' at 10, 20, 30 (export:1 at 30;
    'prod' -> mlp@20), 'mlp-wide' at 10 (wider and extra variables)."""
    path = tmp_path_factory.mktemp("cli") / "store"
    store = ckptstore.open_store(path)
    net, wide = _net(tf, 2), _net(tf, 4, extra=True)

    def save(run, step: int) -> None:
        if run.name == "mlp-wide":
            run.save(wide, step)
            return
        net.b.assign_add(tf.ones([2]))
        run.save(net, step)
        if step == 30:
            serve = tf.function(lambda x: tf.matmul(x, net.w) + net.b,
                                input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
            run.freeze(serve, step=30)

    log_runs(store, save)
    store.set_alias("prod", "mlp@20", message="first release")
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
    for name in COMMANDS:
        assert name in out
    assert "list" in ok("runs", "--help") and "upgrade" in ok("db", "--help")
    # no arguments: the help, on stdout, with Click's status for it
    r = cli("runs")
    assert r.returncode == 2 and "show" in r.stdout and "delete" in r.stdout


def test_help_shows_placeholders_for_values_and_none_for_flags():
    # Typer's CliRunner, in this process: two dozen help pages without two dozen interpreters.
    from typer.testing import CliRunner

    from ckptstore.cli import app

    def page(command: str) -> str:
        r = CliRunner().invoke(app, [*command.split(), "--help"], prog_name="ckptstore")
        assert r.exit_code == 0, r.output
        return r.output

    commands = [c for c in COMMANDS if c not in ("runs", "db")] + [
        "runs", "runs list", "runs show", "runs delete", "db", "db current", "db history", "db upgrade"]
    pages = {c: page(c) for c in ["", *commands]}
    for name, page in pages.items():
        assert "<bool>" not in page, name
    lines = {line.split()[0]: line for line in pages[""].splitlines() if line.strip().startswith("--")}
    assert lines["--store"].split()[1] == "DIR|URL" and lines["--root"].split()[1] == "DIR|s3://BUCKET/PREFIX"
    assert lines["--version"].split()[1] == "Print"  # a flag: its help follows at once
    assert "--tag KEY=VALUE" in pages["runs list"] and "--status STATUS" in pages["runs list"]
    assert "--from STEP" in pages["steps"] and "-m, --metric METRIC" in pages["steps"]
    assert "--nearest / --no-nearest  Each run's" in pages["at"]
    assert "--to DIR" in pages["restore"] and "--to FILE|DIR" in pages["export"]
    assert "--json " in pages["runs list"] and "-y, --yes  " in pages["runs delete"]
    assert "Usage: ckptstore aliases [OPTIONS] [NAME]" in pages["aliases"]
    assert "Usage: ckptstore plot [OPTIONS] {RUN}..." in pages["plot"]
    # each command's summary is listed whole, not cut at the width of a line
    assert "kept (by\n" in pages[""] and "keep_every_n_hours) or pinned (by an alias)." in pages[""]


def test_version_flag():
    assert ok("--version").strip() == f"ckptstore {ckptstore.__version__}"


@pytest.mark.slow
def test_bad_usage_exits_2_without_traceback(meta):
    for args in (["runs", "list", "--bogus"], ["at", "notastep"], ["runs", "list", "--tag", "novalue"],
                 ["restore", "mlp@10"], ["no-such-command"],
                 ["demo", "--steps", "5"]):
        r = cli(*args, store=meta)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr
        # one line, like every other error, pointing at the help
        [line] = r.stderr.strip().splitlines()
        assert line.startswith("error: ") and line.endswith("--help')"), line


@pytest.mark.slow
def test_numbers_beyond_64_bits_are_bad_usage(meta):
    # A callback words the range (min=/max= would print the bounds in every --help).
    too_big = "a step is a whole number from 0 to 2**63-1, got"
    assert f"Invalid value for 'STEP': {too_big} 9223372036854775808" in bad_usage("at", "9223372036854775808", store=meta)
    assert f"'--from': {too_big} {'9' * 23}" in bad_usage("steps", "mlp", "--from", "9" * 23, store=meta)
    assert f"'--to': {too_big}" in bad_usage("steps", "mlp", "--to", "9" * 23, store=meta)
    assert f"'--from': {too_big} -1" in bad_usage("steps", "mlp", "--from", "-1", store=meta)
    assert f"'STEP': {too_big} -5" in bad_usage("at", "-5", store=meta)
    assert "Invalid value for '--to'" in bad_usage("steps", "mlp", "--to", "9" * 5000, store=meta)
    # the largest step there can be is a valid question
    assert "no run has step 9223372036854775807" in ok("at", "9223372036854775807", store=meta)
    assert "in that range" in ok("steps", "mlp", "--from", "9223372036854775807", store=meta)


@pytest.mark.slow
def test_huge_references_are_one_line_errors(meta, tmp_path):
    assert "no export id is that large" in fails(
        "export", "export:9223372036854775808", "--to", str(tmp_path / "f.pb"), store=meta)
    fails("export", "export:" + "9" * 30, "--to", str(tmp_path / "f.pb"), store=meta)
    assert "larger than the largest step" in fails(
        "restore", "mlp@9223372036854775808", "--to", str(tmp_path / "r"), store=meta)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- the error edge


@pytest.mark.slow
def test_unexpected_errors_are_one_line_exit_1(meta_copy):
    dropped = 'sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))'
    code = RAISES.format(exc=dropped, method="set_alias")
    # The quick path (sqlite3) writes without Store.set_alias: the store's path is the one patched.
    line = unexpected("alias", "best", "mlp@10", store=meta_copy, code=code, env={"CKPTSTORE_QUICK": "0"})
    assert line.startswith("error: OperationalError: ") and "server closed the connection unexpectedly" in line
    assert "[SQL:" not in line
    line = unexpected("steps", "mlp", store=meta_copy, code=RAISES.format(exc='OverflowError("int too big")', method="steps"),
                      env={"CKPTSTORE_QUICK": "0"})  # the quick path reads without Store.steps
    assert line == f"error: OverflowError: int too big {DEBUG_HINT}"
    r = cli("alias", "best", "mlp@10", store=meta_copy, code=code, env={"CKPTSTORE_DEBUG": "1", "CKPTSTORE_QUICK": "0"})
    assert r.returncode == 1 and "Traceback" in r.stderr and "OperationalError" in r.stderr
    with ckptstore.open_store(meta_copy, create=False) as store:
        assert store.aliases() == []


@pytest.mark.parametrize(
    "exc, line",
    [
        ('ValueError("step must be an int")', "error: ValueError: step must be an int"),
        pytest.param('OSError(28, "No space left on device")', "error: OSError: [Errno 28] No space left on device", marks=pytest.mark.slow),
        pytest.param('PermissionError(13, "Permission denied", "/x")', "error: PermissionError: [Errno 13] Permission denied: '/x'", marks=pytest.mark.slow),
    ],
)
def test_bare_library_errors_are_unexpected_not_user_errors(meta, exc, line):
    # Only a CkptstoreError is the user's to fix; a ValueError or OSError the library let through
    # is a bug to report (the library words what the user can fix), so it is named by its type.
    code = RAISES.format(exc=exc, method="steps")
    normal = {"CKPTSTORE_QUICK": "0"}  # the quick path reads without Store.steps
    assert unexpected("steps", "mlp", store=meta, code=code, env=normal) == f"{line} {DEBUG_HINT}"
    r = cli("steps", "mlp", store=meta, code=code, env={"CKPTSTORE_DEBUG": "1", **normal})
    assert r.returncode == 1 and "Traceback (most recent call last)" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(exc.split("(")[0])


@pytest.mark.slow
def test_library_errors_are_user_errors_and_debug_shows_their_traceback(meta):
    assert fails("runs", "show", "nope", store=meta).startswith("error: no run named 'nope'")
    r = cli("runs", "show", "nope", store=meta, env={"CKPTSTORE_DEBUG": "1"})
    assert r.returncode == 1 and "Traceback" in r.stderr and "UnknownRunError" in r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["runs", "show", "nope"], "no run named 'nope'"),
        pytest.param(["runs", "delete", "nope", "--yes"], "no run named 'nope'", marks=pytest.mark.slow),
        (["steps", "nope"], "no run named 'nope'"),
        pytest.param(["checkpoints", "nope"], "no run named 'nope'", marks=pytest.mark.slow),
        pytest.param(["exports", "nope"], "no run named 'nope'", marks=pytest.mark.slow),
        pytest.param(["verify", "nope"], "no run named 'nope'", marks=pytest.mark.slow),
        pytest.param(["vars", "nope@1"], "no run named 'nope'", marks=pytest.mark.slow),
        pytest.param(["vars", "broken@latest"], "has no checkpoint", marks=pytest.mark.slow),
        pytest.param(["vars", "ghost"], "no alias named 'ghost'", marks=pytest.mark.slow),
        pytest.param(["vars", "mlp@"], "bad reference 'mlp@'", marks=pytest.mark.slow),
        pytest.param(["vars", "@3"], "no run name before '@'", marks=pytest.mark.slow),
        pytest.param(["vars", "mlp@-1"], "bad reference 'mlp@-1'", marks=pytest.mark.slow),
        pytest.param(["vars", "mlp@~x"], "bad reference 'mlp@~x'", marks=pytest.mark.slow),
        pytest.param(["vars", "export:x"], "an export id is a number", marks=pytest.mark.slow),
        (["vars", "export:99"], "no export 99"),
        pytest.param(["restore", "a@b@3", "--to", "/tmp/ckptstore-never"], "more than one '@'", marks=pytest.mark.slow),
        pytest.param(["alias", "a/b", "mlp@10"], "must not contain '/'", marks=pytest.mark.slow),
        (["alias", "latest", "mlp@10"], "reserved"),
        pytest.param(["alias", "x" * 201, "mlp@10"], "the limit is 200", marks=pytest.mark.slow),
        pytest.param(["alias", "x", "mlp@11"], "no checkpoint mlp@11", marks=pytest.mark.slow),
        pytest.param(["unalias", "nope"], "no alias named 'nope'", marks=pytest.mark.slow),
        pytest.param(["aliases", "nope"], "no alias named 'nope'", marks=pytest.mark.slow),
        (["export", "export:1", "--to", "/tmp/ckptstore-never"], "no export 1"),
        (["import", "/tmp/ckptstore-never", "--run", "x"], "is not a directory"),
        pytest.param(["plot", "mlp", "-m", "nope", "-o", "/tmp/ckptstore-never.png"], "no values of 'nope'", marks=pytest.mark.slow),
        pytest.param(["plot", "nope", "-m", "loss", "-o", "/tmp/ckptstore-never.png"], "no run named 'nope'", marks=pytest.mark.slow),
    ],
)
def test_user_errors_are_one_line_exit_1(meta, args, message):
    assert message in fails(*args, store=meta)
    assert not Path("/tmp/ckptstore-never").exists()


@pytest.mark.parametrize("args", [["runs", "list"], ["runs", "show", "x"], *[
    pytest.param(a, marks=pytest.mark.slow)
    for a in (["checkpoints", "x"], ["aliases"], ["verify"], ["gc"], ["db", "current"], ["alias", "y", "x@1"])
]])
def test_missing_store_is_an_error_and_is_not_created(tmp_path, args):
    missing = tmp_path / "missing"
    r = cli(*args, store=missing, code=IMPORTS_CHECK)
    assert r.returncode == 1 and r.stderr.startswith(f"error: no store at {missing} "), r.stderr
    assert "sqlalchemy" not in imported(r.stderr)  # a mistyped --store is answered in 0.3 s too
    assert not missing.exists()


@pytest.mark.slow
def test_corrupt_store_file(meta_copy, tmp_path):
    (meta_copy / "store.db").write_bytes(b"this is not a database" * 100)
    for f in meta_copy.glob("store.db-*"):
        f.unlink()
    for args in (["runs", "list"], ["checkpoints", "mlp"], ["aliases"], ["db", "current"]):
        assert "not a usable SQLite database" in fails(*args, store=meta_copy)
    (tmp_path / "afile").write_text("x")
    assert "is a file" in fails("runs", "list", store=tmp_path / "afile")


@pytest.mark.slow
def test_store_from_a_newer_ckptstore_is_refused(meta_copy):
    with sqlite3.connect(meta_copy / "store.db") as con:
        con.execute("UPDATE alembic_version SET version_num = '9999'")
    for args in (["runs", "list"], ["steps", "mlp"], ["alias", "x", "mlp@10"]):
        assert "newer than this ckptstore knows" in fails(*args, store=meta_copy)
    assert as_json("db", "current", store=meta_copy)["status"] == "ahead"


# --------------------------------------------------------------------------- runs


RUN_KEYS = {"id", "name", "status", "params", "tags", "created_at", "ended_at", "last_step", "checkpoints", "retention"}


def test_runs_list_table_and_json(meta, tmp_path):
    out = ok("runs", "list", store=meta)
    # The params that differ between the runs come right after the name (issue 26).
    assert out.splitlines()[0].split()[:3] == ["name", "params.lr", "status"]
    assert {"mlp", "mlp-wide", "broken"} <= {line.split()[0] for line in out.splitlines()[1:]}
    runs = as_json("runs", "list", store=meta)
    assert [r["name"] for r in runs] == ["broken", "mlp-wide", "mlp"]  # newest first
    assert all(set(r) == RUN_KEYS | {"values"} for r in runs)
    assert runs[-1]["values"] == {"params.lr": 0.1}
    mlp = runs[-1]
    assert mlp["status"] == "finished" and mlp["last_step"] == 30 and mlp["checkpoints"] == 0
    assert mlp["tags"] == {"team": "vision"} and mlp["params"] == {"lr": 0.1}
    ckptstore.open_store(tmp_path / "empty").close()
    assert ok("runs", "list", store=tmp_path / "empty").strip() == "no runs yet"


def test_runs_list_filters(meta):
    names = lambda *a: [r["name"] for r in as_json("runs", "list", *a, store=meta)]  # noqa: E731
    assert names("--status", "failed") == ["broken"]
    assert names("--tag", "team=nlp") == ["mlp-wide"]
    assert names("--name", "mlp*") == ["mlp-wide", "mlp"]
    assert names("--tag", "team=vision", "--status=finished") == ["mlp"]
    assert names("--name", "zzz*") == []
    assert "no runs match" in ok("runs", "list", "--name", "zzz*", store=meta)
    assert "'bogus' is not one of 'running', 'finished', 'failed', 'crashed'" in bad_usage("runs", "list", "--status", "bogus", store=meta)


@pytest.mark.slow
def test_store_comes_from_the_environment(meta, tmp_path):
    runs = json.loads(ok("runs", "list", "--json", env={"CKPTSTORE_URI": str(meta)}))
    assert len(runs) == 3
    # --store wins over the environment
    assert "no store at" in fails("runs", "list", store=tmp_path / "none", env={"CKPTSTORE_URI": str(meta)})
    # the default store is ./.ckptstore
    shutil.copytree(meta, tmp_path / ".ckptstore")
    assert len(json.loads(ok("runs", "list", "--json", cwd=tmp_path))) == 3


def test_runs_list_on_sqlite_imports_neither_sqlalchemy_nor_pydantic(meta):
    # 'runs list' answers in under 0.3 s (benchmarks/cli_latency.py): cli/quick.py parses it
    # without pydantic, and a SQLite store is read with sqlite3 (not SQLAlchemy).
    for args in (["runs", "list"], ["runs", "list", "--json", "--tag", "team=nlp", "--name", "mlp*", "--status=finished"]):
        r = cli(*args, store=meta, code=IMPORTS_CHECK)
        assert r.returncode == 0, r.stderr
        assert imported(r.stderr) == set(), r.stderr


@pytest.mark.slow
def test_runs_list_reads_its_options_as_click_does(meta):
    # An option given twice is one cli/quick.py leaves to Typer (which takes the last one).
    once = cli("runs", "list", "--name", "mlp*", "--json", store=meta, code=IMPORTS_CHECK)
    twice = cli("runs", "list", "--name", "zzz", "--name", "mlp*", "--json", store=meta, code=IMPORTS_CHECK)
    assert once.returncode == twice.returncode == 0, twice.stderr
    assert "pydantic" not in imported(once.stderr) and "pydantic" in imported(twice.stderr)
    assert json.loads(once.stdout) == json.loads(twice.stdout) and len(json.loads(once.stdout)) == 2
    # and so is every error: the same lines as always
    assert "no such option: --nmae" in bad_usage("runs", "list", "--nmae", "x", store=meta).lower()
    assert "Option '--name' requires an argument" in bad_usage("runs", "list", "--name", store=meta)
    assert "Got unexpected extra argument(s) (mlp)" in bad_usage("runs", "list", "mlp", store=meta)
    assert "Usage: ckptstore runs list [OPTIONS]" in ok("runs", "list", "--help", store=meta)


def test_runs_show(meta):
    info = as_json("runs", "show", "mlp", store=meta)
    assert set(info) == RUN_KEYS | {"metrics"}
    assert info["metrics"] == ["acc", "loss"] and info["last_step"] == 30
    out = ok("runs", "show", "broken", store=meta)
    assert "failed" in out and "loss" in out


@pytest.mark.slow
def test_runs_delete_asks_then_deletes(meta_copy):
    assert "--yes" in fails("runs", "delete", "mlp-wide", store=meta_copy)
    assert "deleted run mlp-wide (0 checkpoints, 0 exports, its metrics)" in ok("runs", "delete", "mlp-wide", "--yes", store=meta_copy)
    with ckptstore.open_store(meta_copy, create=False) as store:
        assert [r.name for r in store.runs()] == ["broken", "mlp"]
    assert "no run named 'mlp-wide'" in fails("runs", "delete", "mlp-wide", "-y", store=meta_copy)


@pytest.mark.slow
def test_runs_delete_refuses_a_pinned_run(fresh):
    assert "prod" in fails("runs", "delete", "mlp", "--yes", store=fresh)  # an alias pins mlp@20
    assert "deleted run mlp-wide (1 checkpoint, " in ok("runs", "delete", "mlp-wide", "--yes", store=fresh)
    with ckptstore.open_store(fresh, create=False) as store:
        assert [r.name for r in store.runs()] == ["broken", "mlp"]
        assert store.verify().ok


# --------------------------------------------------------------------------- metrics


def test_steps(meta):
    rows = as_json("steps", "mlp", store=meta)
    assert [r["step"] for r in rows] == list(range(1, 31))
    assert set(rows[0]) == {"step", "wall_time", "metrics"} and rows[1]["metrics"] == {"acc": 2 / 30, "loss": 0.5}
    rows = as_json("steps", "mlp", "--from", "5", "--to", "7", "--metric", "loss", store=meta)
    assert [(r["step"], list(r["metrics"])) for r in rows] == [(5, ["loss"]), (6, ["loss"]), (7, ["loss"])]
    assert as_json("steps", "broken", store=meta)[0]["metrics"] == {"loss": "nan"}
    out = ok("steps", "mlp", "--to", "2", store=meta)
    assert out.split() == ["step", "acc", "loss", "1", "0.0333333", "1", "2", "0.0666667", "0.5"]


@pytest.mark.slow
def test_at_step(meta):
    rows = as_json("at", "10", store=meta)
    assert {r["run"]: (r["metrics"]["loss"], r["checkpoint_step"]) for r in rows} == {"mlp": (0.1, None), "mlp-wide": (0.5, None)}
    assert set(rows[0]) == {"run", "step", "metrics", "checkpoint_step"}
    rows = as_json("at", "25", "--nearest", "--metric", "loss", store=meta)
    assert {r["run"]: (r["step"], r["metrics"]) for r in rows} == {
        "mlp": (25, {"loss": 1 / 25}), "mlp-wide": (10, {"loss": 0.5}), "broken": (5, {"loss": "nan"}),
    }
    assert "try --nearest" in ok("at", "1000", store=meta)
    assert ok("at", "25", "--nearest", "-m", "loss", store=meta).split()[:4] == ["run", "step", "checkpoint", "loss"]


@pytest.mark.slow
def test_plot_writes_a_png(meta, tmp_path):
    out = tmp_path / "plots" / "loss.png"
    assert f"wrote {out}" in ok("plot", "mlp", "mlp-wide", "-m", "loss", "-m", "acc", "-o", str(out), store=meta)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_plot_without_matplotlib_says_how_to_install_it(meta, tmp_path):
    line = fails("plot", "mlp", "-m", "loss", "-o", str(tmp_path / "x.png"), store=meta, code=NO_MATPLOTLIB)
    # the package itself: ckptstore is installed from a checkout, not an index
    assert "pip install matplotlib (ckptstore's 'plot' extra)" in line


# --------------------------------------------------------------------------- checkpoints, versions, exports
# without checkpoints: what the commands say about an empty run or store


@pytest.mark.slow
def test_checkpoint_commands_on_runs_without_checkpoints(meta):
    assert as_json("checkpoints", "mlp", store=meta) == []
    assert "run broken has no checkpoints" in ok("checkpoints", "broken", store=meta)
    assert as_json("exports", store=meta) == [] and "no exports yet" in ok("exports", store=meta)
    assert "no exports in run mlp" in ok("exports", "mlp", store=meta)
    assert as_json("aliases", store=meta) == []
    assert "no aliases yet" in ok("aliases", store=meta)
    assert "run 'mlp' has no checkpoint" in fails("vars", "mlp@latest", store=meta)


# --------------------------------------------------------------------------- verify, gc, db


@pytest.mark.slow
def test_verify_and_gc_on_a_store_without_checkpoints(meta_copy):
    report = as_json("verify", store=meta_copy)
    assert report["ok"] is True and report["problems"] == [] and report["checked_files"] == 0
    assert ok("verify", "mlp", store=meta_copy).strip() == "checked 0 files (0 B): ok"
    stale = meta_copy / "staging" / "save-crashed"
    stale.mkdir(parents=True)
    (stale / "model.ckpt-1.index").write_bytes(b"half")
    assert "; 'ckptstore gc' removes the leftovers" in ok("verify", store=meta_copy)
    dry = as_json("gc", "--dry-run", store=meta_copy)
    assert dry == {"removed_objects": 0, "removed_bytes": 0, "removed_staging": 1, "removed_blob_rows": 0, "dry_run": True}
    assert stale.exists()
    assert ok("gc", store=meta_copy).strip() == "removed 0 unreferenced file(s) (0 B) and 1 staging directory"
    assert not stale.exists()
    assert as_json("verify", store=meta_copy)["problems"] == []


@pytest.mark.slow
def test_db_commands(meta_copy, tmp_path):
    from ckptstore.constants import HEAD_REVISION as head

    assert as_json("db", "current", store=meta_copy) == {"revision": head, "head": head, "status": "current"}
    assert ok("db", "current", store=meta_copy).strip() == f"{head} (head)"
    history = as_json("db", "history")
    first = [h for h in history if h["down_revision"] is None]
    assert [h["revision"] for h in first] == ["0001"]
    assert ok("db", "history").splitlines()[0].split() == ["revision", "down", "message"]
    assert f"already at {head}" in ok("db", "upgrade", store=meta_copy)
    # A mistyped --store is no new store (nor its parent directories)...
    assert fails("db", "upgrade", store=tmp_path / "typo" / "new").startswith(f"error: no store at {tmp_path / 'typo' / 'new'}")
    assert not (tmp_path / "typo").exists()
    url = f"sqlite:///{tmp_path / 'typo' / 'store.db'}"
    assert fails("db", "upgrade", store=url).startswith(f"error: no store at {tmp_path / 'typo' / 'store.db'}")
    assert not (tmp_path / "typo").exists()
    # ... while an empty database gets its schema (as a PostgreSQL database does).
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "store.db").touch()
    assert f"upgraded from an empty database to {head}" in ok("db", "upgrade", store=tmp_path / "new")
    assert as_json("runs", "list", store=tmp_path / "new") == []


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "show", "mlp"], ["checkpoints", "mlp"],
        *[pytest.param(a, marks=pytest.mark.slow) for a in (
            ["steps", "mlp"], ["aliases"], ["exports"], ["gc", "--dry-run"], ["db", "current"], ["runs", "show", "nope"],
        )],
    ],
)
def test_metadata_commands_never_import_tensorflow(meta, args):
    # 'runs list' imports even less (see above); the commands that read checkpoints are checked
    # on the built store, below.
    r = cli(*args, store=meta, code=IMPORTS_CHECK)
    assert r.returncode in (0, 1), r.stderr
    assert not imported(r.stderr) & {"tensorflow", "keras", "matplotlib"}, r.stderr


# --------------------------------------------------------------------------- with TensorFlow checkpoints (slow)


@pytest.mark.slow
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
    # the other commands count and find them too
    assert [r["checkpoints"] for r in as_json("runs", "list", "--sort", "created", store=built)] == [3, 1, 0]
    assert as_json("runs", "show", "mlp", store=built)["checkpoints"] == 3
    assert {r["run"]: r["checkpoint_step"] for r in as_json("at", "10", store=built)} == {"mlp": 10, "mlp-wide": 10}
    rows = as_json("at", "25", "--nearest", store=built)
    assert {r["run"]: r["checkpoint_step"] for r in rows} == {"mlp": 20, "mlp-wide": 10, "broken": None}


@pytest.mark.slow
def test_vars_and_diff(built):
    names = {v["name"]: v for v in as_json("vars", "prod", store=built)}
    w = next(v for n, v in names.items() if "/w/" in n)
    assert w["dtype"] == "float32" and w["shape"] == [3, 2]
    diff = as_json("vars", "mlp@latest", "--diff", "mlp-wide@10", store=built)
    assert {"added", "removed", "changed", "unchanged", "value_changed", "identical", "variables", "summary"} <= set(diff)
    assert [v["shape"] for v in diff["added"]] == [[1]] and diff["removed"] == []
    assert sorted(c["after"]["shape"] for c in diff["changed"]) == [[3, 4], [4]]
    assert diff["summary"]["added"] == 1 and diff["summary"]["dtype/shape changed"] == 2
    out = ok("vars", "mlp@10", "--diff", "mlp-wide@10", store=built)
    assert "1 added, 0 removed, 2 dtype/shape changed" in out
    assert "names export 1, not a checkpoint" in fails("vars", "export:1", store=built)


@pytest.mark.slow
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


@pytest.mark.slow
def test_alias_move_unalias_and_aliases(fresh):
    assert ok("alias", "best", "mlp@latest", "-m", "good", store=fresh).strip() == "best -> mlp@30"
    assert ok("alias", "best", "mlp@~15", store=fresh).strip() == "best -> mlp@10 (was mlp@30)"
    [best] = as_json("aliases", "best", store=fresh)
    assert set(best) == {"name", "target", "kind", "message", "updated_at", "history"}
    assert best["target"] == "mlp@10" and best["kind"] == "checkpoint"
    assert [(e["action"], e["old_target"], e["new_target"]) for e in best["history"]] == [
        ("move", "mlp@30", "mlp@10"), ("set", None, "mlp@30"),
    ]
    assert ok("alias", "served", "export:1", store=fresh).strip() == "served -> export:1"
    assert {a["name"]: a["kind"] for a in as_json("aliases", store=fresh)} == {
        "best": "checkpoint", "prod": "checkpoint", "served": "export",
    }
    assert "history (newest first)" in ok("aliases", "best", store=fresh)
    assert ok("unalias", "best", "-m", "retired", store=fresh).strip() == "removed alias best (was mlp@10)"
    [gone] = as_json("aliases", "best", store=fresh)
    assert gone["kind"] == "removed" and gone["history"][0]["message"] == "retired"
    with ckptstore.open_store(fresh, create=False) as store:
        assert [a.name for a in store.aliases()] == ["prod", "served"]
        assert store.resolve("served").id == 1


def test_aliases_empty_store(tmp_path):
    ckptstore.open_store(tmp_path / "s").close()
    assert "no aliases yet" in ok("aliases", store=tmp_path / "s")
    assert as_json("aliases", store=tmp_path / "s") == []


@pytest.mark.slow
def test_exports_and_export(built, tmp_path):
    [e] = as_json("exports", store=built)
    assert e["ref"] == "export:1" and e["run"] == "mlp" and e["step"] == 30 and e["kind"] == "tf2-function"
    assert e["inputs"][0]["name"] == "x" and e["checkpoint_id"] is not None
    assert as_json("exports", "mlp-wide", store=built) == []
    assert "no exports in run mlp-wide" in ok("exports", "mlp-wide", store=built)
    assert "export:1" in ok("exports", store=built)
    # Aliases right after the REF, so that 80 columns keep them; the signatures go first (issue 26).
    narrow = cli("exports", store=built, env={"COLUMNS": "80"})
    assert narrow.stdout.splitlines()[0].split()[:3] == ["ref", "aliases", "run"]
    assert all(len(line) <= 80 for line in narrow.stdout.splitlines())
    out = ok("export", "mlp@30", "--to", str(tmp_path / "deploy" / "model.pb"), store=built)
    assert "model.pb" in out
    pb = tmp_path / "deploy" / "model.pb"
    side = json.loads((tmp_path / "deploy" / "model.pb.json").read_text())
    assert pb.stat().st_size == e["size"] and side["digest"] == e["digest"]
    assert side["lineage"] == {"run": "mlp", "step": 30, "checkpoint": "mlp@30"}
    assert "no export at step 10" in fails("export", "mlp@10", "--to", str(tmp_path / "x.pb"), store=built)


@pytest.mark.slow
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


@pytest.mark.slow
def test_import_vanilla_saver_directory(fresh, vanilla_dir):
    out = ok("import", str(vanilla_dir), "--run", "legacy", store=fresh)
    assert "imported 2 checkpoints into run legacy (steps 100, 200" in out
    # Nothing new: answered without loading TensorFlow or SQLAlchemy (issue 26), as the child
    # reports, and as the store's own path answers.
    again = cli("import", str(vanilla_dir), "--run", "legacy", store=fresh, code=IMPORTS_CHECK)
    assert again.returncode == 0 and "nothing new to import" in again.stdout, again.stderr
    assert imported(again.stderr) == set()
    normal = cli("import", str(vanilla_dir), "--run", "legacy", store=fresh, env={"CKPTSTORE_QUICK": "0"})
    assert (normal.returncode, normal.stdout) == (0, again.stdout)
    with ckptstore.open_store(fresh, create=False) as store:
        assert [c.step for c in store.checkpoints("legacy")] == [100, 200]
        np.testing.assert_array_equal(store.read_variable("legacy@200", "v"), [3.0, 4.0])


@pytest.mark.slow
def test_importing_again_checks_the_files_and_takes_what_is_new(fresh, vanilla_dir, tmp_path, tf):
    """The quick answer "nothing new" is the store's: a damaged file of a checkpoint already
    imported is refused as the store refuses it, and a new checkpoint is imported."""
    d = tmp_path / "vanilla"
    shutil.copytree(vanilla_dir, d)
    ok("import", str(d), "--run", "legacy", store=fresh)
    data = sorted(d.glob("model.ckpt-100.data-*"))[0]
    good = data.read_bytes()
    data.write_bytes(bytes([good[0] ^ 0xFF]) + good[1:])
    quick = cli("import", str(d), "--run", "legacy", store=fresh, code=IMPORTS_CHECK)
    normal = cli("import", str(d), "--run", "legacy", store=fresh, env={"CKPTSTORE_QUICK": "0"})
    assert quick.returncode == normal.returncode == 1
    assert quick.stderr.rsplit("\nIMPORTED", 1)[0].strip() == normal.stderr.strip()
    assert "fails its crc32c" in normal.stderr and "sqlalchemy" not in imported(quick.stderr)
    data.write_bytes(good)
    with tf.Graph().as_default() as g:  # a third checkpoint, by vanilla TensorFlow
        tf.compat.v1.get_variable("v", initializer=tf.constant([9.0, 9.0]))
        with tf.compat.v1.Session(graph=g) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver(max_to_keep=None).save(sess, str(d / "model.ckpt"), global_step=300)
    assert "imported 1 checkpoint into run legacy (steps 300;" in ok("import", str(d), "--run", "legacy", store=fresh)
    with ckptstore.open_store(fresh, create=False) as store:
        assert [c.step for c in store.checkpoints("legacy")] == [100, 200, 300]


@pytest.mark.slow
def test_import_errors(meta_copy, tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no TensorFlow checkpoint" in fails("import", str(tmp_path / "empty"), "--run", "x", store=meta_copy)
    # Refused before a store is created: none appears where there was none.
    assert "is not a directory" in fails("import", str(tmp_path / "nope"), "--run", "x", store=tmp_path / "new-store")
    assert not (tmp_path / "new-store").exists()
    assert "is not a directory" in fails("import", str(tmp_path / "nope"), "--run", "x", store=meta_copy)
    assert "must not contain '/'" in fails("import", str(tmp_path / "empty"), "--run", "a/b", store=meta_copy)


@pytest.mark.slow
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


@pytest.mark.slow
def test_gc_removes_leftovers_and_keeps_checkpoints(fresh):
    stale = fresh / "staging" / "save-crashed"
    stale.mkdir(parents=True)
    (stale / "model.ckpt-1.index").write_bytes(b"half")
    assert [p["kind"] for p in as_json("verify", store=fresh)["problems"]] == ["stale-staging"]
    assert "removed 0 unreferenced file(s) (0 B) and 1 staging directory" in ok("gc", store=fresh)
    assert not stale.exists()
    report = as_json("verify", store=fresh)
    assert report["ok"] is True and report["problems"] == []
    with ckptstore.open_store(fresh, create=False) as store:
        assert [c.step for c in store.checkpoints("mlp")] == [10, 20, 30]


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["vars", "mlp@999"], "its checkpoints are at steps 10, 20, 30"),
        (["restore", "export:1", "--to", "/tmp/ckptstore-never"], "not a checkpoint"),
        (["alias", "x", "mlp@11"], "no checkpoint mlp@11"),
        (["alias", "a/b", "mlp@10"], "must not contain '/'"),
    ],
)
def test_user_errors_about_checkpoints_are_one_line_exit_1(built, args, message):
    assert message in fails(*args, store=built)
    assert not Path("/tmp/ckptstore-never").exists()


@pytest.mark.slow
def test_unwritable_target_is_a_user_error(built, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "cannot create" in fails("restore", "prod", "--to", str(blocker / "sub"), store=built)


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["checkpoints", "mlp"], ["vars", "prod"], ["vars", "mlp@10", "--diff", "mlp-wide@10"], ["exports"],
        ["verify"], ["restore", "prod", "--to", "{tmp}/r"], ["export", "export:1", "--to", "{tmp}/m.pb"],
    ],
)
def test_checkpoint_commands_never_import_tensorflow(built, tmp_path, args):
    r = cli(*[a.format(tmp=tmp_path) for a in args], store=built, code=IMPORTS_CHECK)
    assert r.returncode == 0, r.stderr
    assert not imported(r.stderr) & {"tensorflow", "keras", "matplotlib"}, r.stderr


@pytest.mark.slow
def test_no_progress_bars_when_not_a_terminal(built, tmp_path):
    for args in (["verify"], ["restore", "prod", "--to", str(tmp_path / "r")], ["gc", "--dry-run"]):
        r = cli(*args, store=built)
        assert r.returncode == 0, r.stderr
        assert "\r" not in r.stdout + r.stderr and "\x1b[" not in r.stdout + r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("args, label", [(["restore", "prod", "--to", "{tmp}/r"], "restoring"),
                                         (["gc", "--dry-run"], "collecting"), (["verify"], "verifying")])
def test_progress_bars_on_a_terminal(built, tmp_path, args, label):
    code, out = on_terminal(*[a.format(tmp=tmp_path) for a in args], store=built)
    assert code == 0, out
    assert label in out and "\x1b[" in out


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_an_empty_postgresql_database_says_how_to_create_the_schema(pg_server, tmp_path):
    # The README's PostgreSQL steps run 'ckptstore db upgrade' first; a user who skips it is told to.
    env = {"CKPTSTORE_URI": pg_server.new_database(), "CKPTSTORE_ROOT": str(tmp_path / "files")}
    assert "(empty database; 'ckptstore db upgrade' creates the schema)" in fails("runs", "list", env=env)


@pytest.mark.postgres
@pytest.mark.slow
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
