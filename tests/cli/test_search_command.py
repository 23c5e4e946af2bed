"""Issue 17, the command line: search, compare, best by a metric, completion, clean output, and
every read command printing exactly the same through sqlite3 (the quick reader) as through the store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ckptstore
from tests.helpers.cli import IMPORTS_CHECK, as_json, bad_usage, cli, fails, imported, ok
from tests.helpers.skips import require_tensorflow


def _log(store) -> None:
    for name, lr, opt, losses in (
        ("mlp-a", 0.01, "adam", [0.5, 0.15, 0.3]),
        ("mlp-b", 0.1, "sgd", [0.9, 0.6, 0.4]),
        ("long-run-name-with-many-words-20261129-140530", 0.01, "sgd", [0.8, 0.25, 0.1]),
    ):
        with store.start_run(name, params={"lr": lr, "opt": opt}, tags={"team": "vision"}) as run:
            for step, loss in enumerate(losses, 1):
                run.log(step * 10, val_loss=loss, val_accuracy=1 - loss)


@pytest.fixture(scope="module")
def meta(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("find-meta") / "store"
    with ckptstore.open_store(path) as store:
        _log(store)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """'mlp-a' and friends with checkpoints at 10, 20, 30 of mlp-a, an export and an alias."""
    tf = require_tensorflow()
    path = tmp_path_factory.mktemp("find-built") / "store"
    with ckptstore.open_store(path) as store:
        _log(store)
        net = tf.Module()
        net.w = tf.Variable(tf.ones([3, 2]))
        run = store.run("mlp-a")
        for step in (10, 20, 30):
            run.save(net, step)
        serve = tf.function(lambda x: tf.matmul(x, net.w), input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        run.freeze(serve, step=30)
        store.set_alias("prod", "mlp-a@best:val_loss", message="best so far")
    return path


def names(*args: str, store: Path) -> list[str]:
    return [r["name"] for r in as_json("runs", "list", *args, store=store)]


def test_runs_list_searches_sorts_and_limits(meta):
    assert names(store=meta)[0].startswith("long-run")  # newest first
    assert names("--where", "params.lr = 0.01 and metrics.val_loss.min < 0.2", "--sort", "metrics.val_loss.min", store=meta) == [
        "long-run-name-with-many-words-20261129-140530", "mlp-a"]
    assert names("--sort", "-metrics.val_loss.min", "--limit", "1", store=meta) == ["mlp-b"]
    assert names("--where", "params.opt = sgd", "--sort", "name", store=meta) == ["long-run-name-with-many-words-20261129-140530", "mlp-b"]
    assert "no runs match" in ok("runs", "list", "--where", "metrics.val_loss.min < 0", store=meta)
    line = fails("runs", "list", "--where", "params.lr =< 0.01", store=meta)
    assert "column 12" in line and "'<'" in line


def test_runs_list_search_stays_on_the_quick_path(meta):
    r = cli("runs", "list", "--where", "params.lr = 0.01", "--sort", "-name", "--limit", "5", store=meta, code=IMPORTS_CHECK)
    assert r.returncode == 0, r.stderr
    assert not imported(r.stderr) & {"sqlalchemy", "pydantic", "rich"}


@pytest.mark.slow
def test_runs_compare_marks_differences_and_has_json(meta):
    out = ok("runs", "compare", "mlp-a", "mlp-b", store=meta)
    lines = {line.split()[1] if line.startswith("*") else line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert lines["params.lr"].startswith("*") and lines["params.opt"].startswith("*") is not False
    assert "0.15 @20" in lines["metrics.val_loss.best"] and "0.3 @30" in lines["metrics.val_loss.last"]
    data = as_json("runs", "compare", "mlp-a", "mlp-b", store=meta)
    assert data["differing_params"] == ["lr", "opt"]
    assert data["metrics"]["val_accuracy"]["mlp-a"]["best"] == pytest.approx(0.85)
    assert data["metrics"]["val_accuracy"]["mlp-a"]["mode"] == "max"
    assert "no run named 'nope'" in fails("runs", "compare", "mlp-a", "nope", store=meta)


def test_at_filters_runs_and_adds_param_columns(meta):
    out = ok("at", "20", "--run", "mlp-*", "--param", "lr", store=meta)
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["run", "step", "checkpoint", "params.lr"]
    assert sorted(r.split()[0] for r in rows) == ["mlp-a", "mlp-b"]
    assert as_json("at", "20", "--run", "mlp-b", "-p", "lr", store=meta)[0]["params"] == {"lr": 0.1}
    assert "step is a whole number from 0" in bad_usage("at", "-5", store=meta)


def test_narrow_terminals_drop_columns_and_never_break_a_name(meta):
    r = cli("runs", "list", store=meta, env={"COLUMNS": "40"})
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert any(line.split()[0] == "long-run-name-with-many-words-20261129-140530" for line in lines[1:])
    assert "not shown for want of width" in r.stderr
    wide = ok("runs", "list", store=meta, env={"COLUMNS": "400"})
    # The params that differ between the listed runs come right after the name (issue 26).
    header = wide.splitlines()[0].split()
    assert header[0] == "name" and header[-6:] == ["status", "last", "step", "checkpoints", "created", "tags"]
    assert all(h.startswith(("params.", "metrics.")) for h in header[1:-6])


def test_one_renderer_for_any_number_of_rows(tmp_path):
    with ckptstore.open_store(tmp_path / "s") as store:
        for i in range(205):
            with store.start_run(f"r{i:03d}"):
                pass
    out = ok("runs", "list", store=tmp_path / "s").splitlines()
    assert len(out) == 206 and out[0].split()[0] == "name"
    widths = {len(line.split("  ")[0]) for line in out[1:]}
    assert widths == {4}


@pytest.mark.slow
def test_help_has_no_types_or_bounds_and_describes_json():
    for args in (["steps", "--help"], ["at", "--help"], ["runs", "list", "--help"], ["checkpoints", "--help"]):
        page = ok(*args)
        assert "<bool>" not in page and "<str>" not in page and "<int>" not in page
        assert "9223372036854775807" not in page
        assert "--json" in page and "Print JSON" in page
    assert "--where EXPR" in ok("runs", "list", "--help")


@pytest.mark.slow
def test_completion_offers_runs_aliases_and_refs(built):
    env = {"_CKPTSTORE_COMPLETE": "complete_bash", "COMP_WORDS": "ckptstore vars mlp-a@", "COMP_CWORD": "2",
           "CKPTSTORE_URI": str(built)}
    r = subprocess.run([sys.executable, "-m", "ckptstore"], capture_output=True, text=True,
                       env={**os.environ, **env}, timeout=120)
    offered = r.stdout.split()
    assert {"mlp-a@latest", "mlp-a@10", "mlp-a@best:val_loss"} <= set(offered), r.stdout + r.stderr
    env.update(COMP_WORDS="ckptstore aliases p", COMP_CWORD="2")
    r = subprocess.run([sys.executable, "-m", "ckptstore"], capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert r.stdout.split() == ["prod"], r.stdout + r.stderr
    env.update(COMP_WORDS="ckptstore steps mlp-", COMP_CWORD="2")
    r = subprocess.run([sys.executable, "-m", "ckptstore"], capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert set(r.stdout.split()) == {"mlp-a", "mlp-b"}


def test_checkpoints_shows_the_metric_and_marks_the_best(built):
    out = ok("checkpoints", "mlp-a", "--metric", "val_loss", store=built)
    rows = [line.split() for line in out.splitlines()[1:] if line.startswith("mlp-a@")]
    assert [(r[0], r[2]) for r in rows] == [("mlp-a@10", "0.5"), ("mlp-a@20", "0.15"), ("mlp-a@30", "0.3")]
    assert rows[1][3] == "*" and "*" not in rows[0] and "*" not in rows[2]
    assert "best by val_loss (min): mlp-a@20" in out
    data = as_json("checkpoints", "mlp-a", "-m", "val_accuracy", store=built)
    assert [c["metric"]["best"] for c in data] == [False, True, False]
    assert "prod" in ok("checkpoints", "mlp-a", store=built)  # tagged through mlp-a@best:val_loss
    # A metric the run never logged is an error naming the closest (as run@best:METRIC is), not
    # a column of '-'.
    assert fails("checkpoints", "mlp-a", "--metric", "val_los", store=built).startswith(
        "error: run 'mlp-a' never logged a metric 'val_los': did you mean val_loss?"
    )


@pytest.mark.slow
def test_best_ref_works_on_the_command_line(built, tmp_path):
    assert "model/w/" in ok("vars", "mlp-a@best:val_accuracy", store=built)
    assert "restored mlp-a@best:val_loss" in ok("restore", "mlp-a@best:val_loss", "--to", str(tmp_path / "out"), store=built)
    assert (tmp_path / "out" / "model.ckpt-20.index").exists()


@pytest.mark.slow
def test_plot_writes_the_format_its_suffix_names(meta, tmp_path):
    pytest.importorskip("matplotlib")
    for suffix, magic in ((".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")):
        out = tmp_path / f"loss{suffix}"
        ok("plot", "mlp-a", "mlp-b", "-m", "val_loss", "-o", str(out), "--log-y", "--smooth", "0.6", store=meta)
        assert out.read_bytes().startswith(magic), suffix
    assert "name a .png, .svg or .pdf" in fails("plot", "mlp-a", "-m", "val_loss", "-o", str(tmp_path / "x.gif"), store=meta)


QUICK_COMMANDS = [
    ["runs", "list"], ["runs", "list", "--json"], ["runs", "list", "--where", "tags.team = vision", "--sort", "name"],
    ["runs", "show", "mlp-a"], ["runs", "show", "mlp-a", "--json"],
    ["runs", "compare", "mlp-a", "mlp-b"], ["runs", "compare", "mlp-a", "mlp-b", "--json"],
    ["steps", "mlp-a"], ["steps", "mlp-a", "-m", "val_loss", "--from", "15", "--json"],
    ["at", "20"], ["at", "25", "--nearest", "--run", "mlp-*", "-p", "lr", "--json"],
    ["checkpoints", "mlp-a"], ["checkpoints", "mlp-a", "--metric", "val_loss"], ["checkpoints", "mlp-a", "--json"],
    ["vars", "mlp-a@20"], ["vars", "prod", "--json"], ["vars", "mlp-a@10", "--diff", "mlp-a@best:val_loss"],
    ["vars", "mlp-a@10", "--diff", "mlp-b@latest", "--stats"], ["vars", "prod", "--diff", "mlp-a@10", "--stats", "--json"],
    ["aliases"], ["aliases", "prod"], ["aliases", "--json"],
    ["exports"], ["exports", "mlp-a", "--json"],
    # errors take the normal path on both
    ["steps", "nope"], ["vars", "mlp-a@11"], ["aliases", "nope"], ["checkpoints", "mlp-a", "--metric", "val_los"],
    ["at", "20", "-p", "lrr"],
]


@pytest.mark.slow
def test_the_quick_path_prints_exactly_what_the_normal_path_prints(built):
    for args in QUICK_COMMANDS:
        quick = cli(*args, store=built, code=IMPORTS_CHECK)
        normal = cli(*args, store=built, env={"CKPTSTORE_QUICK": "0"})
        quick_err = quick.stderr.rsplit("\nIMPORTED", 1)[0].strip()
        assert (quick.returncode, quick.stdout, quick_err) == (normal.returncode, normal.stdout, normal.stderr.strip()), args
        if normal.returncode == 0:  # vars --diff (--stats) included: flows/tensor_diff.py
            assert not ({"sqlalchemy", "tensorflow"} & imported(quick.stderr)), args
