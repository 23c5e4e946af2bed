"""``vars REF --diff REF2 [--stats]`` on the CLI's quick path (``flows/tensor_diff.py`` over
``sqlite3``): the same comparison as the store's, from the digests recorded at save. Data files
without per-tensor rows (saved before tensor-level storage) and damage are the store's. Each case
runs both ways, in real subprocesses, on copies of one store; output and store must be the same.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

import ckptstore
from tests.helpers.both_ways import assert_same, both_ways, corrupt_objects, store_answered
from tests.helpers.cli import imported
from tests.helpers.skips import require_tensorflow

require_tensorflow()


@pytest.fixture(scope="module")
def stored(tmp_path_factory, new_sqlite_store_files, tiny_model) -> Path:
    """Runs ``a`` (w = 1 then 2) and ``b`` (w = 1, b = 0.5), one checkpoint per step."""
    path = tmp_path_factory.mktemp("tensor-diff") / "store"
    shutil.copytree(new_sqlite_store_files, path)
    with ckptstore.open_store(str(path)) as store:
        with store.start_run("a") as run:
            run.save(tiny_model(1.0), 1)
            run.save(tiny_model(2.0), 2)
        with store.start_run("b") as run:
            run.save(tiny_model(1.0, 0.5), 1)
    return path


def _unindexed(store: Path, out: Path) -> None:
    """As a store written before tensor-level storage: no per-tensor rows."""
    con = sqlite3.connect(str(store / "store.db"))
    with con:
        con.execute("DELETE FROM file_tensors")
    con.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, prepare, store_answers",
    [
        (["a@1", "--diff", "a@2"], None, False),
        (["a@1", "--diff", "a@2", "--stats"], None, False),
        (["a@1", "--diff", "b@1", "--stats", "--json"], None, False),
        (["a@2", "--diff", "a@latest", "--json"], None, False),  # the same checkpoint: all identical
        (["a@1", "--diff", "nope@1"], None, False),  # worded by the shared read
        (["a@1", "--diff", "a@2", "--stats"], _unindexed, True),  # digests taken on demand: the store's
        (["a@1", "--diff", "a@2", "--stats"], corrupt_objects, True),  # damage: the store's to word
    ],
    ids=["values", "stats", "other-run-json", "same", "unknown", "unindexed", "corrupt"],
)
def test_the_quick_diff_is_the_stores(stored, tmp_path, args, prepare, store_answers):
    quick, normal = both_ways(stored, tmp_path, ["vars", *args], prepare)
    assert_same(quick, normal)
    assert store_answered(quick) == store_answers, quick.done.stderr
    assert "tensorflow" not in imported(quick.done.stderr)
    if args[:3] == ["a@1", "--diff", "b@1"]:
        rows = json.loads(quick.done.stdout)["variables"]
        changed = [r for r in rows if r["status"] == "value changed"]
        assert [r["key"].split("/")[1] for r in changed] == ["b"] and changed[0]["stats"]["max_abs"] == 0.5
