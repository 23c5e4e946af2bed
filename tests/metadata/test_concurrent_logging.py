"""Several training processes logging into one store at the same time: no error, no lost row.

Real processes (not threads): each opens the store itself, as two training jobs would. A small
``flush_every`` turns each process's 50,000 values into hundreds of write transactions, so the
two writers contend for the database lock many times over; both processes also start the same
run name at once (the create-or-resume race) and write into it.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

import ckptstore
from tests.helpers.processes import ChildProcesses

pytestmark = pytest.mark.slow  # 50,000 values per process through hundreds of contended transactions

STEPS = 12_500  # x 4 values per step (2 in the shared run, 2 in the process's own run) = 50,000
START_WITHIN = 120  # seconds a writer waits at the gate before it gives up
DEADLINE = 420  # seconds a writer may live in all: the gate, the logging, the exit

_WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    import ckptstore

    uri, root, me, go, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    start_within = float(sys.argv[6])
    store = ckptstore.open_store(uri, root=root)
    open(f"{go}.ready-{me}", "w").close()
    give_up = time.monotonic() + start_within
    while not os.path.exists(go):   # start together
        if time.monotonic() > give_up:
            sys.exit(f"writer {me}: the start signal never came")
        time.sleep(0.005)
    t0 = time.time()
    # overwrite=True: processes writing steps side by side into one run say so (a resume alone
    # continues after the run's last step).
    with store.start_run("shared", resume=True, overwrite=True, flush_every=100, tags={"kind": "shared"}) as shared, \\
         store.start_run(f"own-{me}", flush_every=100, params={"me": me}) as own:
        for step in range(steps):
            shared.log(step, **{f"p{me}_a": step + me, f"p{me}_b": -step})
            own.log(step, a=step * 0.5, b=me)
    t1 = time.time()
    store.close()
    print(json.dumps({"start": t0, "end": t1}))
    """
)


def _log_concurrently(children: ChildProcesses, uri: str, root: Path, tmp_path: Path, n: int = 2) -> list[dict]:
    go = tmp_path / "go"
    procs = [
        children.python(_WRITER, uri, str(root), str(i), str(go), str(STEPS), str(START_WITHIN), deadline=DEADLINE)
        for i in range(n)
    ]
    # Release them at once, when every process has imported ckptstore and opened the store.
    give_up = time.monotonic() + START_WITHIN
    while not all((tmp_path / f"go.ready-{i}").exists() for i in range(n)):
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
        assert time.monotonic() < give_up, "writers did not get ready"
        time.sleep(0.01)
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=DEADLINE)
        assert p.returncode == 0, err
        assert "Traceback" not in err and "locked" not in err, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _check_every_row(uri: str, root: Path, n: int = 2) -> None:
    with ckptstore.open_store(uri, root=root) as s:
        names = sorted(r.name for r in s.runs())
        assert names == sorted([f"own-{i}" for i in range(n)] + ["shared"])
        for i in range(n):
            own = s.steps(f"own-{i}")
            assert len(own) == STEPS
            assert all(st.metrics == {"a": st.step * 0.5, "b": float(i)} for st in own)
            assert s.get_run(f"own-{i}").status == "finished"
        shared = s.steps("shared")
        assert len(shared) == STEPS
        for st in shared:
            expected = {}
            for i in range(n):
                expected[f"p{i}_a"] = float(st.step + i)
                expected[f"p{i}_b"] = float(-st.step)
            assert st.metrics == expected, st
        assert s.get_run("shared").status == "finished"
        assert s.get_run("shared").tags == {"kind": "shared"}
        total = sum(len(st.metrics) for st in shared) + sum(
            len(st.metrics) for i in range(n) for st in s.steps(f"own-{i}")
        )
        assert total == n * STEPS * 4


def _overlapped(results: list[dict]) -> bool:
    return max(r["start"] for r in results) < min(r["end"] for r in results)


def test_two_processes_log_into_one_sqlite_store_at_once_without_losing_a_row(tmp_path, children):
    uri, root = str(tmp_path / "store"), tmp_path / "store"
    ckptstore.open_store(uri).close()  # schema creation is tested elsewhere; here: logging
    results = _log_concurrently(children, uri, root, tmp_path)
    assert _overlapped(results), results
    _check_every_row(uri, root)


def test_two_processes_log_into_one_postgres_store_at_once_without_losing_a_row(pg_server, tmp_path, children):
    uri, root = pg_server.new_database(), tmp_path / "files"
    ckptstore.open_store(uri, root=root).close()
    results = _log_concurrently(children, uri, root, tmp_path)
    assert _overlapped(results), results
    _check_every_row(uri, root)


def test_two_processes_creating_a_new_sqlite_store_and_logging_at_once(tmp_path, children):
    # No store yet: both processes race to create the schema, then log.
    uri, root = str(tmp_path / "fresh"), tmp_path / "fresh"
    _log_concurrently(children, uri, root, tmp_path)
    _check_every_row(uri, root)
