"""``verify`` and ``gc`` on the CLI's quick path (``flows/checks.py`` over ``sqlite3``).

The quick path answers only when all is well (verify) or there is nothing to collect (gc), and
never imports SQLAlchemy then; anything else is the store's, which reports and removes as it
always has. Each case runs both ways, in real subprocesses, on copies of one store, and the
output and the store afterwards must be the same.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

import ckptstore
from ckptstore.flows.checks import collectable
from ckptstore.metadata.quick_reader import QuickReader
from tests.helpers.cli import IMPORTS_CHECK, cli, imported
from tests.helpers.hardening import TMP_SUFFIX, tree
from tests.helpers.skips import require_tensorflow

require_tensorflow()


@pytest.fixture(scope="module")
def healthy(tmp_path_factory, new_sqlite_store_files, tiny_model) -> Path:
    """A closed store with two runs of checkpoints (whole files and pieces alike)."""
    path = tmp_path_factory.mktemp("checks") / "store"
    shutil.copytree(new_sqlite_store_files, path)
    with ckptstore.open_store(str(path)) as store:
        for name in ("a", "b"):
            run = store.start_run(name)
            for step in (1, 2):
                run.save(tiny_model(float(step)), step)
            run.finish()
    return path


def _stray(store: Path) -> Path:
    stray = store / "objects" / "ee" / ("e" * 62)
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"nobody's")
    return stray


def _stale(store: Path) -> None:
    (store / "staging" / f"save-1-999999-0123456789ab{TMP_SUFFIX}").mkdir(parents=True)


def _orphan_row(store: Path) -> None:
    """A blob row nothing references (as a crash between deleting a checkpoint and its blob
    rows would leave): gc drops the row and its object."""
    con = sqlite3.connect(str(store / "store.db"))
    with con:
        con.execute("INSERT INTO blobs (digest, size, created_at) VALUES (?, 0, '2026-01-01 00:00:00.000000')", ["d" * 64])
    con.close()


def _both_ways(healthy: Path, tmp_path: Path, args: list[str], damage=None) -> tuple:
    """Run ``args`` on two copies (quick path, store path); their results and trees."""
    copies = []
    for name in ("quick", "store"):
        copy = tmp_path / name
        shutil.copytree(healthy, copy)
        if damage is not None:
            damage(copy)
        copies.append(copy)
    quick = cli(*args, store=copies[0], code=IMPORTS_CHECK)
    normal = cli(*args, store=copies[1], env={"CKPTSTORE_QUICK": "0"})
    return copies, quick, normal


def _same(copies, quick, normal) -> None:
    q_err = quick.stderr.rsplit("\nIMPORTED", 1)[0].strip().replace(str(copies[0].resolve()), "STORE")
    n_err = normal.stderr.strip().replace(str(copies[1].resolve()), "STORE")
    q_out = quick.stdout.replace(str(copies[0].resolve()), "STORE")
    n_out = normal.stdout.replace(str(copies[1].resolve()), "STORE")
    assert (quick.returncode, q_out, q_err) == (normal.returncode, n_out, n_err)
    # The same files afterwards (the database file's bytes aside: two writers, two histories).
    trees = [{k: v for k, v in tree(c, mtimes=False).items() if not k.startswith("store.db")} for c in copies]
    assert trees[0] == trees[1]


ALL_WELL = [["verify"], ["verify", "a"], ["verify", "--json"], ["gc"], ["gc", "--dry-run"], ["gc", "--json"]]


@pytest.mark.slow
@pytest.mark.parametrize("args", ALL_WELL, ids=" ".join)
def test_with_all_well_the_quick_path_answers_alone(healthy, tmp_path, args):
    copies, quick, normal = _both_ways(healthy, tmp_path, args)
    _same(copies, quick, normal)
    assert quick.returncode == 0
    assert "sqlalchemy" not in imported(quick.stderr), args


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, damage",
    [
        (["verify"], _stray),
        (["verify"], _stale),
        (["verify"], "corrupt"),
        (["verify", "nope"], None),
        (["gc"], _stray),
        (["gc", "--dry-run"], _stray),
        (["gc"], _stale),
        (["gc"], _orphan_row),
    ],
    ids=["verify-stray", "verify-stale", "verify-corrupt", "verify-unknown-run", "gc-stray", "gc-dry-run-stray", "gc-stale", "gc-orphan-row"],
)
def test_anything_to_report_or_remove_is_the_stores(healthy, tmp_path, args, damage):
    damage = _corrupt_one if damage == "corrupt" else damage
    copies, quick, normal = _both_ways(healthy, tmp_path, args, damage)
    _same(copies, quick, normal)
    if damage is not None:
        assert "sqlalchemy" in imported(quick.stderr), args  # the store answered


def _corrupt_one(store: Path) -> None:
    from tests.helpers.damage import flip_byte

    data = sorted(p for p in (store / "objects").rglob("*") if p.is_file() and p.stat().st_size > 16)
    flip_byte(data[0], 0)


def test_collectable_names_what_gc_would_remove(healthy, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(healthy, copy)
    with QuickReader.open(copy) as reader:
        found = collectable(reader.sql, _area(copy))
        assert not found and found.scanned > 0
    stray = _stray(copy)
    _stale(copy)
    _orphan_row(copy)
    with QuickReader.open(copy) as reader:
        found = collectable(reader.sql, _area(copy))
    assert found.objects == [stray.parent.name + stray.name]
    assert found.blob_rows == {"d" * 64}
    assert len(found.staging) == 1
    with ckptstore.open_store(str(copy)) as store:  # and gc removes exactly that
        report = store.gc()
    assert (report.removed_objects, report.removed_staging, report.removed_blob_rows) == (1, 1, 1)
    with QuickReader.open(copy) as reader:
        assert not collectable(reader.sql, _area(copy))


def _area(store: Path):
    from ckptstore.files.registry import open_area

    return open_area(str(store))


@pytest.mark.slow
def test_repack_with_nothing_to_index_answers_on_the_quick_path(healthy, tmp_path):
    """``repack`` of a store whose data files are all indexed tensor by tensor says so through
    ``sqlite3``; a store written before tensor-level storage (downgraded to 0001 here) is the
    store's work, and afterwards there is nothing left to do, both ways."""
    copies, quick, normal = _both_ways(healthy, tmp_path, ["repack"])
    _same(copies, quick, normal)
    assert quick.stdout == "indexed 0 data files tensor by tensor\n"
    assert "sqlalchemy" not in imported(quick.stderr)

    from ckptstore.metadata import versions

    old = tmp_path / "old"
    shutil.copytree(healthy, old)
    with ckptstore.open_store(str(old)) as store:
        versions.run_downgrade(store.engine, "0001")
    assert cli("db", "upgrade", store=old).returncode == 0
    work = cli("repack", store=old, code=IMPORTS_CHECK)
    assert work.returncode == 0, work.stderr
    # a@1 and b@1 hold the same bytes, as do a@2 and b@2: two distinct data files
    assert work.stdout == "indexed 2 data files tensor by tensor\n"
    assert "sqlalchemy" in imported(work.stderr)
    again = cli("repack", store=old, code=IMPORTS_CHECK)
    assert again.stdout == "indexed 0 data files tensor by tensor\n"
    assert "sqlalchemy" not in imported(again.stderr)
