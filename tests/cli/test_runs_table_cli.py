"""``ckptstore runs list --columns/--sort/--where`` (the runs table), did-you-mean, and globs in
``runs compare``/``plot``: real subprocesses, on the quick reader and on Typer's parse with the
store (``CKPTSTORE_QUICK=0``), at 80 and 200 columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ckptstore
from ckptstore import KeepBest, Retention
from tests.helpers.cli import cli, fails, ok

GRID = [(0.1, 32), (0.01, 32), (0.001, 64), (0.0001, 64)]


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Four runs over learning rates and widths (lr-1 best by val_accuracy), closed."""
    path = tmp_path_factory.mktemp("grid") / "store"
    with ckptstore.open_store(path) as store:
        for i, (lr, width) in enumerate(GRID):
            with store.start_run(f"lr-{i}", params={"lr": lr, "width": width, "optimizer": "adam"},
                                 retention=Retention(keep_best=KeepBest("val_accuracy"))) as run:
                for step in range(3):
                    run.log(step, loss=1.0 / (step + 1 + i), val_accuracy=[0.5, 0.8, 0.6, 0.7][i] + 0.01 * step)
    return str(path)


@pytest.fixture(params=["1", "0"], ids=["quick", "typer"])
def env(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"CKPTSTORE_QUICK": request.param}


def _table(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


def test_sorted_by_a_metric_the_metric_and_the_differing_params_are_shown(grid, env):
    for width in ("80", "200"):
        r = cli("runs", "list", "--sort", "-metrics.val_accuracy.max", store=grid, env={**env, "COLUMNS": width})
        assert r.returncode == 0, r.stderr
        rows = _table(r.stdout)
        # The asked-for values first: at 80 columns they are kept, and the dropped ones named.
        assert rows[0][:4] == ["name", "metrics.val_accuracy.max", "params.lr", "params.width"]
        assert [row[:3] for row in rows[1:]] == [["lr-1", "0.82", "0.01"], ["lr-3", "0.72", "0.0001"],
                                                  ["lr-2", "0.62", "0.001"], ["lr-0", "0.52", "0.1"]]
        assert all(len(line) <= int(width) for line in r.stdout.splitlines())
        if width == "80":
            assert r.stderr.startswith("(not shown for want of width: ") and "tags" in r.stderr
        else:
            assert r.stderr == "" and rows[0][-1] == "tags"


def test_columns_chosen_and_json_values(grid, env):
    out = ok("runs", "list", "--columns", "params.lr,metrics.loss.min,metrics.loss.last", "--where", "params.width = 64",
             store=grid, env={**env, "COLUMNS": "80"})
    rows = _table(out)
    assert rows[0][:4] == ["name", "params.lr", "metrics.loss.min", "metrics.loss.last"]
    assert [row[:3] for row in rows[1:]] == [["lr-3", "0.0001", "0.166667"], ["lr-2", "0.001", "0.2"]]
    [run] = json.loads(ok("runs", "list", "--columns", "params.optimizer,tags.none", "--name", "lr-0", "--json", store=grid, env=env))
    assert run["name"] == "lr-0" and run["values"] == {"params.optimizer": "adam", "tags.none": None}


def test_did_you_mean_for_fields_and_metrics(grid, env):
    assert fails("runs", "list", "--sort", "val_accuracy", store=grid, env=env) == (
        "error: bad sort: unknown field 'val_accuracy'; did you mean metrics.val_accuracy.max?"
    )
    assert "did you mean params.lr?" in fails("runs", "list", "--columns", "lr", store=grid, env=env)
    r = cli("runs", "list", "--where", "metrics.val_acc.max > 0.5", store=grid, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "no runs match"
    assert r.stderr.strip() == "note: no run has a metric 'val_acc' (did you mean metrics.val_accuracy.max?)"


def test_runs_compare_takes_globs(grid, env):
    cmp = json.loads(ok("runs", "compare", "lr-[01]", "lr-3", "--json", store=grid, env=env))
    assert cmp["runs"] == ["lr-0", "lr-1", "lr-3"] and "lr" in cmp["differing_params"]
    assert fails("runs", "compare", "nope-*", store=grid, env=env).startswith("error: no run matches 'nope-*' in the store at ")


@pytest.mark.slow
def test_plot_takes_globs(grid, tmp_path: Path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "lr.svg"
    assert ok("plot", "lr-*", "-m", "loss", "-o", str(out), store=grid).strip() == f"wrote {out}"
    assert out.read_text().count("lr-") >= 4  # one legend entry per run
    assert fails("plot", "zz*", "-m", "loss", "-o", str(out), store=grid).startswith("error: no run matches 'zz*'")


def test_runs_compare_of_four_runs_stays_readable_at_80_columns(grid, env):
    for width in ("50", "80", "200"):
        r = cli("runs", "compare", "lr-*", store=grid, env={**env, "COLUMNS": width})
        assert r.returncode == 0 and r.stderr == ""
        assert all(len(line) <= int(width) for line in r.stdout.splitlines())
        headers = [line.split() for line in r.stdout.splitlines() if line.startswith(" " * 10)]
        # Every run is shown: where they do not fit, in blocks of runs, each under the row labels again.
        assert sorted(n for h in headers for n in h) == ["lr-0", "lr-1", "lr-2", "lr-3"]
        assert (len(headers) > 1) == (width == "50")
        assert r.stdout.count("metrics.val_accuracy.best (max)") == len(headers)


def test_runs_compare_transposed_fits_at_80_columns_asked_fields_first(grid, env):
    r = cli("runs", "compare", "lr-*", "--transpose", store=grid, env={**env, "COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    rows = _table(r.stdout)
    # A row per run; what tells them apart first (the params that differ, the metrics' best),
    # never dropped (they wrap), and at 80 columns the rest named as dropped.
    assert rows[0][:4] == ["run", "params.lr", "params.width", "metrics.val_accuracy.best"]  # validation first
    assert [row[:3] for row in rows[1:5]] == [["lr-0", "0.1", "32"], ["lr-1", "0.01", "32"], ["lr-2", "0.001", "64"],
                                              ["lr-3", "0.0001", "64"]]
    assert all(len(line) <= 80 for line in r.stdout.splitlines())
    assert r.stderr.startswith("(not shown for want of width: ") and "params.optimizer" in r.stderr
    assert r.stdout.splitlines()[-1] == "* differs: lr, width"
    wide = cli("runs", "compare", "lr-*", "--transpose", store=grid, env={**env, "COLUMNS": "200"})
    assert wide.stderr == "" and len(_table(wide.stdout)[0]) == 1 + 2 + 3 + 4  # run, status, last_step, 3 params, 4 metric fields
    # --columns: those fields only, in that order, under the names asked.
    asked = ok("runs", "compare", "lr-*", "--transpose", "--columns", "metrics.val_accuracy.max,params.lr,metrics.loss",
               store=grid, env={**env, "COLUMNS": "80"})
    assert _table(asked)[:2] == [["run", "metrics.val_accuracy.max", "params.lr", "metrics.loss.last"],
                                 ["lr-0", "0.52", "@2", "0.1", "0.333333", "@2"]]
    # Untransposed, the same fields as rows.
    rows = _table(ok("runs", "compare", "lr-*", "--columns", "params.width,status", store=grid, env=env))
    assert [row[:2] for row in rows[1:3]] == [["*", "params.width"], ["status", "finished"]]


def test_runs_compare_columns_mistakes_name_the_closest(grid, env):
    assert fails("runs", "compare", "lr-*", "--columns", "lr", store=grid, env=env) == (
        "error: bad columns: unknown field 'lr'; did you mean params.lr?"
    )
    assert "did you mean params.width?" in fails("runs", "compare", "lr-*", "--columns", "params.widht", store=grid, env=env)
    assert fails("runs", "compare", "lr-*", "--columns", "metrics.loss.max", store=grid, env=env) == (
        "error: runs compare shows the best of 'loss', its min: metrics.loss.best"
    )
    assert "bad columns at column" in fails("runs", "compare", "lr-*", "--columns", "params.", store=grid, env=env)
