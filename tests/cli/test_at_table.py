"""``ckptstore at``: rows by run name, numeric params right-aligned, and at 80 columns the
validation metrics (or the ones asked with -m) first, the rest wrapped, none dropped. Real subprocesses, both parse paths."""

from __future__ import annotations

import json

import pytest

import ckptstore
from tests.helpers.cli import cli, ok


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Runs created in the order c, a, b, each with many training metrics and one val_ metric."""
    path = tmp_path_factory.mktemp("at") / "store"
    with ckptstore.open_store(path) as store:
        for name, lr in (("c-run", 0.5), ("a-run", 0.001), ("b-run", 10)):
            with store.start_run(name, params={"lr": lr, "opt": "sgd"}) as run:
                run.log(5, **{f"aux_loss_{i}": i / 7 for i in range(8)}, loss=lr / 3, val_accuracy=0.123456)
    return str(path)


@pytest.mark.parametrize("quick", ["1", "0"])
def test_at_rows_by_name_params_aligned_validation_kept(runs, quick):
    r = cli("at", "5", "-p", "lr", "-p", "opt", store=runs, env={"COLUMNS": "80", "CKPTSTORE_QUICK": quick})
    assert r.returncode == 0, r.stderr
    blocks = [b.splitlines() for b in r.stdout.split("\n\n")]
    lines = blocks[0]
    header = lines[0].split()
    assert header[:6] == ["run", "step", "checkpoint", "params.lr", "params.opt", "val_accuracy"]
    assert [line.split()[0] for line in lines[1:]] == ["a-run", "b-run", "c-run"]
    # Nothing is dropped at 80 columns: the metrics that do not fit wrap into blocks, each
    # repeating the run's name, every line within the width.
    shown = [name for b in blocks for name in b[0].split()]
    assert {f"aux_loss_{i}" for i in range(8)} | {"loss", "val_accuracy"} <= set(shown)
    assert all(b[0].split()[0] == "run" and [x.split()[0] for x in b[1:]] == ["a-run", "b-run", "c-run"] for b in blocks)
    assert max(len(line) for b in blocks for line in b) <= 80
    # Numbers end in the same column (right-aligned); text starts in the same one.
    lr_end = lines[0].index("params.lr") + len("params.lr")
    assert all(line[:lr_end].rstrip() == line[:lr_end] and line[lr_end] == " " for line in lines[1:])
    assert {line[lr_end - 5 : lr_end] for line in lines[1:]} == {"0.001", "   10", "  0.5"}
    assert "not shown for want of width" not in r.stderr
    asked = ok("at", "5", "-m", "loss", "-m", "aux_loss_7", store=runs, env={"COLUMNS": "80", "CKPTSTORE_QUICK": quick})
    assert asked.splitlines()[0].split() == ["run", "step", "checkpoint", "loss", "aux_loss_7"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Four runs at step 10: one without a loss there (it logged loss only at step 5), one whose
    lr is text; their losses at step 10 do not order them as their losses' minimums do."""
    path = tmp_path_factory.mktemp("at-sort") / "store"
    with ckptstore.open_store(path) as store:
        for name, lr, losses in (
            ("a", 0.1, {5: 0.01, 10: 0.9}), ("b", 0.001, {10: 0.3}), ("c", "auto", {10: 0.1}), ("d", 10, {5: 0.2}),
        ):
            with store.start_run(name, params={"lr": lr}) as run:
                for step, loss in losses.items():
                    run.log(step, loss=loss)
                run.log(10, acc=0.5)
    return str(path)


def order(store: str, *args: str, quick: str = "1") -> list[str]:
    out = ok("at", "10", "--json", *args, store=store, env={"CKPTSTORE_QUICK": quick})
    return [row["run"] for row in json.loads(out)]


# Typer's parse and the store's reads (CKPTSTORE_QUICK=0) import pydantic and SQLAlchemy: slow.
@pytest.mark.parametrize("quick", ["1", pytest.param("0", marks=pytest.mark.slow)])
def test_at_sorts_by_the_value_at_the_step_params_or_name_missing_last(sweep, quick):
    assert order(sweep, quick=quick) == ["a", "b", "c", "d"]  # by name
    assert order(sweep, "--sort", "metrics.loss", quick=quick) == ["c", "b", "a", "d"]  # at step 10; d has none
    assert order(sweep, "--sort", "-metrics.loss", quick=quick) == ["a", "b", "c", "d"]  # still last descending
    assert order(sweep, "--sort", "metrics.loss.last", quick=quick) == ["c", "b", "a", "d"]
    # A whole-series aggregate is the run's, as runs list shows it (a's min was at step 5).
    assert order(sweep, "--sort", "metrics.loss.min", quick=quick) == ["a", "c", "d", "b"]
    # Params: numbers before text, either way (as runs list --sort).
    assert order(sweep, "--sort", "params.lr", quick=quick) == ["b", "a", "d", "c"]
    assert order(sweep, "--sort", "-params.lr", quick=quick) == ["d", "a", "b", "c"]
    assert order(sweep, "--sort", "-name", quick=quick) == ["d", "c", "b", "a"]
    # Sorting by a metric -m leaves out: sorted by it, shown as asked.
    rows = json.loads(ok("at", "10", "--json", "-m", "acc", "--sort", "metrics.loss", store=sweep, env={"CKPTSTORE_QUICK": quick}))
    assert [r["run"] for r in rows] == ["c", "b", "a", "d"] and all(set(r["metrics"]) == {"acc"} for r in rows)
    # The table too, in the same order.
    table = ok("at", "10", "--sort", "-metrics.loss", store=sweep, env={"CKPTSTORE_QUICK": quick})
    assert [line.split()[0] for line in table.splitlines()[1:]] == ["a", "b", "c", "d"]


# Typer's parse and the store's reads (CKPTSTORE_QUICK=0) import pydantic and SQLAlchemy: slow.
@pytest.mark.parametrize("quick", ["1", pytest.param("0", marks=pytest.mark.slow)])
def test_at_sort_mistakes_are_worded_as_runs_list_sort(sweep, quick):
    env = {"CKPTSTORE_QUICK": quick}
    for bad in ("lr", "metrics.loss.median", "tag", "nothing"):
        at = cli("at", "10", "--sort", bad, store=sweep, env=env)
        runs = cli("runs", "list", "--sort", bad, store=sweep, env=env)
        assert at.returncode == runs.returncode == 1 and at.stderr == runs.stderr, (at.stderr, runs.stderr)
    # A bare metric name (or one close to it): in 'at' metrics.X is its value at STEP, which is
    # what the user meant, where runs list suggests the run's best over all steps.
    assert "did you mean metrics.loss.min?" in cli("runs", "list", "--sort", "loss", store=sweep, env=env).stderr
    for bad, meant in (("loss", "metrics.loss"), ("-loss", "-metrics.loss"), ("losss", "metrics.loss"), ("name, -loss", "-metrics.loss")):
        at = cli("at", "10", "--sort", bad, store=sweep, env=env)
        assert at.returncode == 1, at.stderr
        assert at.stderr.strip().endswith(f"did you mean {meant} (its value at step 10)?"), at.stderr
    # A metric no run has: a note with the nearest, and the rows by name.
    r = cli("at", "10", "--sort", "metrics.los", store=sweep, env=env)
    assert r.returncode == 0 and "note: no run has a metric 'los' (did you mean metrics.loss.last?)" in r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines()[1:]] == ["a", "b", "c", "d"]


@pytest.mark.parametrize("quick", ["1", "0"])
def test_a_misspelt_metric_is_named_with_the_closest(runs, quick):
    env = {"CKPTSTORE_QUICK": quick}
    r = cli("at", "5", "-m", "val_acuracy", "-m", "loss", store=runs, env=env)
    assert r.returncode == 0 and "note: no metric 'val_acuracy' at step 5 (did you mean val_accuracy?)" in r.stderr
    assert r.stdout.splitlines()[0].split() == ["run", "step", "checkpoint", "loss"]
    r = cli("steps", "a-run", "-m", "val_acuracy", store=runs, env=env)
    assert r.returncode == 0
    assert r.stderr.strip() == "note: no metric 'val_acuracy' in run a-run (did you mean val_accuracy?)"
    assert cli("steps", "a-run", "-m", "loss", store=runs, env=env).stderr == ""


@pytest.mark.parametrize("quick", ["1", pytest.param("0", marks=pytest.mark.slow)])
def test_a_misspelt_param_is_a_note_with_the_closest(sweep, quick):
    r = cli("at", "10", "--param", "lrr", store=sweep, env={"CKPTSTORE_QUICK": quick})
    assert r.returncode == 0 and r.stderr == "note: no run listed has a param 'lrr' (did you mean lr?)\n", r.stderr
    assert cli("at", "10", "--param", "lr", store=sweep, env={"CKPTSTORE_QUICK": quick}).stderr == ""
