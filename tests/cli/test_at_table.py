"""``ckptstore at``: rows by run name, numeric params right-aligned, and at 80 columns the
validation metrics (or the ones asked with -m) kept. Real subprocesses, both parse paths."""

from __future__ import annotations

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
    lines = r.stdout.splitlines()
    header = lines[0].split()
    assert header[:6] == ["run", "step", "checkpoint", "params.lr", "params.opt", "val_accuracy"]
    assert [line.split()[0] for line in lines[1:]] == ["a-run", "b-run", "c-run"]
    # Numbers end in the same column (right-aligned); text starts in the same one.
    lr_end = lines[0].index("params.lr") + len("params.lr")
    assert all(line[:lr_end].rstrip() == line[:lr_end] and line[lr_end] == " " for line in lines[1:])
    assert {line[lr_end - 5 : lr_end] for line in lines[1:]} == {"0.001", "   10", "  0.5"}
    assert "not shown for want of width" in r.stderr and "val_accuracy" not in r.stderr
    asked = ok("at", "5", "-m", "loss", "-m", "aux_loss_7", store=runs, env={"COLUMNS": "80", "CKPTSTORE_QUICK": quick})
    assert asked.splitlines()[0].split() == ["run", "step", "checkpoint", "loss", "aux_loss_7"]
