"""Many processes creating one new store at once: one schema, every run kept (SQLite and PostgreSQL)."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()

import ckptstore  # noqa: E402
from ckptstore.constants import HEAD_REVISION  # noqa: E402

# =========================================================================== 1. store creation


RACE_CHILD = textwrap.dedent(
    """
    import os, sys, time
    import ckptstore, ckptstore.store  # SQLAlchemy too: only the opening itself races
    uri, root, me, go, within = sys.argv[1], sys.argv[2] or None, sys.argv[3], sys.argv[4], float(sys.argv[5])
    open(go + ".ready-" + me, "w").close()
    give_up = time.monotonic() + within
    while not os.path.exists(go):
        if time.monotonic() > give_up:
            sys.exit("child " + me + ": the start signal never came")
        time.sleep(0.0005)
    try:
        with ckptstore.open_store(uri, root=root) as store, store.start_run("w" + me) as run:
            run.log(1, x=float(me))
    except ckptstore.CkptstoreError as exc:
        sys.exit(type(exc).__name__ + ": " + str(exc))
    print("ok")
    """
)


def _open_all_at_once(children, uri: str, root, gate: Path, n: int = 6) -> None:
    """``n`` processes open the same (new) store at one instant and log a metric each."""
    gate.mkdir(parents=True)
    go = gate / "go"
    procs = [children.python(RACE_CHILD, uri, str(root or ""), str(i), str(go), "120", deadline=180) for i in range(n)]
    give_up = time.monotonic() + 120
    while not all((gate / f"go.ready-{i}").exists() for i in range(n)):
        dead = [p for p in procs if p.poll() is not None]
        assert not dead, [p.communicate() for p in dead]
        assert time.monotonic() < give_up, "the children did not get ready"
        time.sleep(0.01)
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        results.append((p.returncode, out.strip(), err.strip()[-800:]))
    failed = [(i, r) for i, r in enumerate(results) if r[0] != 0 or r[1] != "ok"]
    assert not failed, failed


def _one_schema_and_every_run(uri: str, root, n: int = 6) -> None:
    with ckptstore.open_store(uri, root=root, create=False) as s:
        assert s.revision == HEAD_REVISION
        with s.read() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
        assert sorted(r.name for r in s.runs()) == sorted(f"w{i}" for i in range(n))
        for i in range(n):
            assert [(m.step, m.metrics) for m in s.steps(f"w{i}")] == [(1, {"x": float(i)})]
            assert s.get_run(f"w{i}").status == "finished"


@pytest.mark.slow
def test_six_processes_create_one_new_sqlite_store_at_once(tmp_path, children):
    for rnd in range(2):
        loc = tmp_path / f"round{rnd}" / "deep" / "er" / "store"  # no parent exists yet
        _open_all_at_once(children, str(loc), None, tmp_path / f"gate{rnd}")
        _one_schema_and_every_run(str(loc), None)
        assert (loc / "store.db").is_file()


@pytest.mark.slow
@pytest.mark.postgres
def test_six_processes_create_one_new_postgres_store_at_once(pg_server, tmp_path, children):
    uri = pg_server.new_database()
    root = tmp_path / "deep" / "er" / "files"  # the shared file root does not exist yet either
    _open_all_at_once(children, uri, root, tmp_path / "gate")
    _one_schema_and_every_run(uri, root)
