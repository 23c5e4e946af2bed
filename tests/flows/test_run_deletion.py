"""Deleting a run (``flows/run_deletion.py``): the store's way and the CLI's quick way (sqlite3,
no SQLAlchemy) leave the same store behind: rows, objects, aliases, what other runs share.

Each case runs ``runs delete`` on two copies of one store, in real subprocesses, one through
the quick path and one with ``CKPTSTORE_QUICK=0``, and compares the output and everything the
store holds afterwards (``store_state``: runs, checkpoints, files, aliases, exports, every
stored object's bytes, staging).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import ckptstore
from tests.helpers.cli import IMPORTS_CHECK, cli, imported
from tests.helpers.hardening import store_state
from tests.helpers.skips import require_tensorflow

require_tensorflow()


@pytest.fixture(scope="module")
def template(tmp_path_factory, new_sqlite_store_files, tiny_model, seed_session) -> Path:
    """Runs 'a' and 'b' saving the same model at steps 1 and 2 (so they share every object),
    'c' with a model of its own and an export, 'empty' with metrics only, 'pinned' under an
    alias."""
    path = tmp_path_factory.mktemp("run-deletion") / "store"
    shutil.copytree(new_sqlite_store_files, path)
    with ckptstore.open_store(str(path)) as store:
        for name in ("a", "b"):
            run = store.start_run(name)
            for step in (1, 2):
                run.log(step, loss=1.0 / step)
                run.save(tiny_model(float(step)), step)
            run.finish()
        c = store.start_run("c")
        c.save(tiny_model(7.0, 3.0), 1)
        c.save(seed_session, 2)
        c.freeze(seed_session, ["op_to_store"], step=2)
        c.finish()
        empty = store.start_run("empty")
        empty.log(1, loss=0.5)
        empty.finish()
        pinned = store.start_run("pinned")
        pinned.save(tiny_model(9.0), 1)
        pinned.finish()
        store.set_alias("prod", "pinned@1")
    return path


def _state(path: Path) -> dict:
    with ckptstore.open_store(str(path), create=False) as store:
        return store_state(store)


def _delete_both_ways(template: Path, tmp_path: Path, runs: list[str]) -> tuple[list, list, Path, Path]:
    quick_path, store_path = tmp_path / "quick", tmp_path / "store"
    shutil.copytree(template, quick_path)
    shutil.copytree(template, store_path)
    quick_results, normal_results = [], []
    for run in runs:
        quick_results.append(cli("runs", "delete", run, "--yes", store=quick_path, code=IMPORTS_CHECK))
        normal_results.append(cli("runs", "delete", run, "--yes", store=store_path, env={"CKPTSTORE_QUICK": "0"}))
    return quick_results, normal_results, quick_path, store_path


@pytest.mark.slow
@pytest.mark.parametrize(
    "runs",
    [["empty"], ["a"], ["a", "b"], ["c"], ["pinned"], ["nope"], ["c", "a", "empty", "b"]],
    ids=lambda runs: "-".join(runs),
)
def test_both_ways_delete_the_same(template, tmp_path, runs):
    quick, normal, quick_path, store_path = _delete_both_ways(template, tmp_path, runs)
    for run, q, n in zip(runs, quick, normal):
        q_err = q.stderr.rsplit("\nIMPORTED", 1)[0].strip().replace(str(quick_path.resolve()), "STORE")
        n_err = n.stderr.strip().replace(str(store_path.resolve()), "STORE")
        assert (q.returncode, q.stdout, q_err) == (n.returncode, n.stdout, n_err), run
        if q.returncode == 0:
            assert "sqlalchemy" not in imported(q.stderr), run
    assert _state(quick_path) == _state(store_path)


@pytest.mark.slow
def test_the_objects_go_when_the_last_run_using_them_goes(template, tmp_path):
    _, _, quick_path, _ = _delete_both_ways(template, tmp_path, ["a"])
    after_a = _state(quick_path)["objects"]
    assert after_a == _state(template)["objects"]  # 'b' still uses every one of them
    cli("runs", "delete", "b", "--yes", store=quick_path)
    after_b = _state(quick_path)["objects"]
    assert set(after_b) < set(after_a)
    with ckptstore.open_store(str(quick_path), create=False) as store:
        report = store.verify()
        assert report.ok, report.problems
        assert store.gc(dry_run=True).removed_objects == 0  # nothing was left behind
