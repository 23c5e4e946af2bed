"""Crash consistency: SIGKILL a writer at random moments and at each named point of a save.

After every kill the store is opened again and must hold (``stress.check_store_after_crash``):
``verify`` finds no committed checkpoint with a missing or wrong file; after ``gc`` the files in
``objects/`` are exactly the ``blobs`` rows and the digests checkpoints reference, ``staging/``
is empty; the newest checkpoint reads back what was saved and every metric logged before it is
in the database. ``benchmarks/stress.py kills`` runs the same loop 200 times per database.

Victims are forked from a zygote process that imported TensorFlow once (see
``tests/helpers/stress.py``), so a kill costs a fraction of a second instead of a TensorFlow
import.
"""

from __future__ import annotations

import random
import signal
import textwrap
import time

import pytest

import ckptstore
from tests.helpers import stress
from tests.helpers.skips import require_tensorflow

require_tensorflow()

pytestmark = pytest.mark.slow  # a TensorFlow zygote, and a fresh store check after every kill


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory):
    with stress.Zygote(tmp_path_factory.mktemp("zygote") / "zygote.err") as z:
        yield z


def test_random_sigkills_never_break_a_committed_checkpoint(store_uri, backend, tmp_path):
    uri, root = store_uri
    # warmup_saves=1: every victim that is not killed while opening commits a save first, so the
    # check below holds on a slow machine too.
    res = stress.run_kills(
        uri, root, backend=backend, kills=6, max_seconds=300, max_delay=0.6, seed=7, work=tmp_path, warmup_saves=1
    )
    assert res.errors == [], "\n".join(res.lines())
    assert res.kills == 6
    assert (res.broken_committed, res.orphans_after_gc, res.wrong_values) == (0, 0, 0)
    assert res.checkpoints_committed > 0  # the victims got work done between the kills
    # One last full restore of everything left.
    stress.check_store_after_crash(uri, root, res, full_restore=True)
    assert res.ok, "\n".join(res.lines())


@pytest.mark.parametrize("point", ["staged", "moving", "moved", "committed"])
def test_sigkill_at_each_point_of_a_save(store_uri, backend, zygote, point):
    uri, root = store_uri
    # A first victim saves once and exits normally: a committed checkpoint to protect.
    pid = zygote.spawn(uri=uri, root=str(root), max_saves=1)
    assert zygote.wait_ready(pid)
    assert zygote.reap(pid) == 0, zygote.stderr_tail()

    pid = zygote.spawn(uri=uri, root=str(root), max_saves=1, fault=point)
    assert zygote.wait_ready(pid)
    assert zygote.reap(pid) == -signal.SIGKILL, zygote.stderr_tail()

    res = stress.KillsResult(backend)
    found = stress.check_store_after_crash(uri, root, res, full_restore=True)
    assert res.errors == [], res.errors
    # What the kill left behind, and that gc cleaned exactly that up.
    assert found["stale_staging"] == 1 and res.staging_removed == 1
    if point in ("moving", "moved"):
        assert found["unexpected"] >= 1 and res.objects_removed == found["unexpected"]
    else:
        assert found["unexpected"] == 0 and res.objects_removed == 0
    assert found["steps"] == ([25, 50] if point == "committed" else [25])

    # The store keeps working: the next save of the same run commits normally.
    pid = zygote.spawn(uri=uri, root=str(root), max_saves=1)
    assert zygote.wait_ready(pid)
    assert zygote.reap(pid) == 0, zygote.stderr_tail()
    res = stress.KillsResult(backend)
    found = stress.check_store_after_crash(uri, root, res, full_restore=True)
    assert res.ok, res.errors
    # Metrics 26..50 were flushed before the killed save began, so the run resumes after them.
    assert found["steps"][-1] == 75


LOGGER = textwrap.dedent(
    """
    import sys, ckptstore
    s = ckptstore.open_store(sys.argv[1], root=sys.argv[2])
    run = s.start_run("metrics", resume=True, overwrite=True, flush_every=100, flush_seconds=3600)
    step = 0
    while True:  # until SIGKILLed by the test, or by its own deadline
        run.log(step, x=float(step))
        step += 1
        if step == 100:
            print("ready", flush=True)
    """
)


def test_sigkill_while_logging_loses_only_the_unflushed_batch(store_uri, children):
    """Each flush is one transaction: after a kill the rows are whole batches, in order."""
    uri, root = store_uri
    ckptstore.open_store(uri, root=root).close()
    rng = random.Random(3)
    for _ in range(3):
        p = children.python(LOGGER, uri, str(root), deadline=60)
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready", p.stderr.read() if p.stderr else ""
        time.sleep(rng.uniform(0.05, 0.5))
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert p.returncode == -signal.SIGKILL
        with ckptstore.open_store(uri, root=root) as s:
            steps = [m.step for m in s.steps("metrics")]
        assert steps and len(steps) % 100 == 0
        # Each restart logs from 0 again; the same (step, key) keeps one row.
        assert steps == list(range(len(steps)))
