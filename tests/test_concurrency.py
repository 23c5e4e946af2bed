"""Several processes writing into one store at once, on SQLite and on PostgreSQL.

The scenarios are those of ``benchmarks/stress.py`` (the same harness, ``tests/helpers/stress.py``,
with smaller numbers): real writer processes start together at a gate, log metrics and save
checkpoints while one more process runs ``gc`` in a loop; then every value must be in the
database exactly as logged and every checkpoint must restore to exactly the values saved.
"""

from __future__ import annotations

import textwrap
import time

import pytest

import ckptstore
from tests.helpers import stress
from tests.helpers.skips import require_tensorflow

pytestmark = pytest.mark.slow  # many processes each, several seconds per test


def test_eight_processes_log_20000_values_each_without_losing_one(store_uri, backend):
    """The issue's 8 x 20,000 metric load in full (no TensorFlow: that part follows)."""
    uri, root = store_uri
    res = stress.run_writers(
        uri, root, backend=backend, procs=8, values=20_000, checkpoints=0, flush_every=1_000, gc_loop=False, timeout=240
    )
    assert res.errors == []
    assert (res.found_rows, res.lost_rows, res.wrong_rows) == (160_000, 0, 0)


def test_concurrent_writers_save_checkpoints_that_all_restore(store_uri, backend):
    """Writers that log and save at the same time, with gc running throughout."""
    require_tensorflow()
    uri, root = store_uri
    res = stress.run_writers(
        uri, root, backend=backend, procs=3, values=2_000, checkpoints=4, flush_every=250, gc_loop=True, timeout=240
    )
    assert res.errors == [], "\n".join(res.lines())
    assert res.lost_rows == 0 and res.wrong_rows == 0 and res.found_rows == 6_000
    assert res.checkpoints_restored == res.checkpoints_expected == 12
    assert res.verify_problems == 0
    assert res.gc_runs > 0


SAME_RUN = textwrap.dedent(
    """
    import sys, time, ckptstore
    uri, root, start, offset = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    s = ckptstore.open_store(uri, root=root or None)
    while time.time() < start:
        time.sleep(0.001)
    run = s.start_run("shared", resume=True, overwrite=True, flush_every=100)  # two writers, one run
    for step in range(offset, 4000, 2):
        run.log(step, x=float(step))
    run.finish()
    s.close()
    """
)


def test_two_processes_resume_and_log_into_the_same_run(store_uri, children):
    """Both start (or resume) the run "shared" at the same moment; neither fails, no step is lost."""
    uri, root = store_uri
    ckptstore.open_store(uri, root=root).close()
    start = time.time() + 1.5
    procs = [children.python(SAME_RUN, uri, str(root), str(start), str(i)) for i in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with ckptstore.open_store(uri, root=root) as s:
        assert [r.name for r in s.runs()] == ["shared"]
        steps = s.steps("shared")
        assert [m.step for m in steps] == list(range(4000))
        assert all(m.metrics == {"x": float(m.step)} for m in steps)


BATCH_WRITER = textwrap.dedent(
    """
    import sys, time, ckptstore
    s = ckptstore.open_store(sys.argv[1], root=sys.argv[2])
    run = s.start_run("r", resume=True, flush_every=500, flush_seconds=3600)
    for step in range(20_000):
        run.log(step, a=1.0)
        if step % 500 == 0:
            time.sleep(0.01)  # leave the reader time to look between batches
    run.finish()
    """
)


def test_a_reader_sees_whole_batches_while_a_writer_logs(store_uri, children):
    """Metric batches are transactions: a concurrent reader never sees half of one."""
    uri, root = store_uri
    with ckptstore.open_store(uri, root=root) as s:
        s.start_run("r").finish()
    writer = children.python(BATCH_WRITER, uri, str(root), stdout=None)
    seen = set()
    with ckptstore.open_store(uri, root=root) as s:
        while writer.poll() is None:
            n = len(s.steps("r"))
            assert n % 500 == 0, n  # whole batches only
            seen.add(n)
        assert writer.returncode == 0, writer.stderr.read()
        assert len(s.steps("r")) == 20_000
    assert len(seen) > 1  # the reader really ran while the writer wrote
