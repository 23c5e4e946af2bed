"""gc of a shared area: claims of a killed gc, waiting for a live one, reused pids."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

# =========================================================================== 3. a killed gc's claims


CLAIMER = """
import sys, time
import ckptstore
from ckptstore.metadata import intents as I
uri, digests = sys.argv[1], sys.argv[2].split(",")
with ckptstore.open_store(uri) as s:
    with s.backend.db.write() as conn:
        I.take_lock(conn)
        I.add(conn, digests, "delete")  # what gc's transaction C records before deleting
    print("claimed", flush=True)
    time.sleep(600)
"""


def _claim_in_child(uri: str, digests: list[str]):  # noqa: ANN202
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", CLAIMER, uri, ",".join(digests)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "claimed"
    return p


def test_a_save_does_not_wait_for_the_claims_of_a_killed_gc(s3store, tiny_model, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    import signal
    import time

    run = s3store.start_run("r")
    ck = run.save(tiny_model(scale=4.0), 1)
    digests = [f.digest for f in ck.files]
    child = _claim_in_child(s3store.test_uri, digests)
    child.send_signal(signal.SIGKILL)
    child.wait()
    started = time.monotonic()
    ck2 = run.save(tiny_model(scale=4.0), 2)  # the same bytes: the claimed digests
    assert time.monotonic() - started < 30
    assert sorted(f.digest for f in ck2.files) == sorted(digests)
    assert s3store.verify().ok
    with s3store.backend.db.read() as conn:
        from ckptstore.metadata import intents as I

        assert I.pending_count(conn) == 0
    run.finish()


def test_a_save_waiting_for_a_live_gc_says_what_it_waits_for(s3store, tiny_model, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    import logging
    import threading
    import time

    run = s3store.start_run("r")
    ck = run.save(tiny_model(scale=4.0), 1)
    child = _claim_in_child(s3store.test_uri, [f.digest for f in ck.files])
    done: list = []
    try:
        with caplog.at_level(logging.WARNING, logger="ckptstore"):
            t = threading.Thread(target=lambda: done.append(run.save(tiny_model(scale=4.0), 2)))
            t.start()
            deadline = time.monotonic() + 30
            while not any("waiting for gc" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
                time.sleep(0.1)
            line = next(r.getMessage() for r in caplog.records if "waiting for gc" in r.getMessage())
            assert f"pid {child.pid}" in line and "this host" in line and "lapses" in line, line
            assert not done  # still waiting: the claimer is alive
    finally:
        child.kill()
        child.wait()
    t.join(60)
    assert done and done[0].step == 2
    run.finish()


def test_a_claim_whose_pid_was_reused_is_dead(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys
    from datetime import datetime, timezone

    from ckptstore.metadata.intents import Claim

    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = socket.gethostname()[:255]
        five_min_ago = datetime.now(timezone.utc) - timedelta(minutes=5)
        assert Claim(1, "ab", host, later.pid, five_min_ago).dead()  # started after the claim
        assert not Claim(1, "ab", host, os.getpid(), datetime.now(timezone.utc)).dead()
        assert not Claim(1, "ab", "some-other-host", 999_999_999, five_min_ago).dead()  # cannot tell: lapses
    finally:
        later.kill()
        later.wait()
