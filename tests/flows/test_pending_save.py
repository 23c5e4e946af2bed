"""``run.save(..., blocking=False)`` returns a ``concurrent.futures.Future``: the standard waits work."""

from __future__ import annotations

import concurrent.futures as cf
import time

import pytest

from ckptstore.errors import ConflictError
from ckptstore.flows.async_save import PendingSave
from ckptstore.records import CheckpointInfo
from tests.helpers.skips import require_tensorflow

require_tensorflow()


def test_a_background_save_is_a_future_that_the_standard_waits_accept(sqlite_store, tiny_model):
    run = sqlite_store.start_run("a")
    model = tiny_model()
    called: list[cf.Future[CheckpointInfo]] = []
    pending = run.save(model, 1, blocking=False)
    pending.add_done_callback(called.append)
    assert isinstance(pending, cf.Future) and isinstance(pending, PendingSave)
    assert pending.ref == "a@1" and pending.run_name == "a" and pending.step == 1
    assert not pending.cancel()  # running from the snapshot on: nothing to cancel
    second = run.save(model, 2, blocking=False)
    done, not_done = cf.wait([pending, second], timeout=60)
    assert not not_done and done == {pending, second}
    assert sorted(f.result().step for f in cf.as_completed([pending, second], timeout=60)) == [1, 2]
    assert pending.exception() is None and pending.result().ref == "a@1"
    assert called == [pending]  # the callback ran once, with the future
    assert repr(pending) == "PendingSave('a@1', committed)"
    assert [c.step for c in sqlite_store.checkpoints("a")] == [1, 2]


def test_a_failed_background_save_is_the_futures_exception(sqlite_store, tiny_model):
    run = sqlite_store.start_run("a")
    model = tiny_model()
    sqlite_store.set_alias("v1", run.save(model, 1))
    pending = run.save(model, 1, blocking=False)  # replacing a tagged step: refused
    cf.wait([pending], timeout=60)
    assert isinstance(pending.exception(), ConflictError)
    with pytest.raises(ConflictError):
        pending.result()
    assert "failed" in repr(pending)
    with pytest.raises(ConflictError):
        run.wait()  # the run still raises it once


def test_a_callback_added_after_the_commit_runs_at_once(sqlite_store, tiny_model):
    run = sqlite_store.start_run("a")
    pending = run.save(tiny_model(), 1, blocking=False)
    run.wait()
    seen: list[int] = []
    pending.add_done_callback(lambda f: seen.append(f.result().step))
    assert seen == [1]


def test_result_with_a_timeout_raises_timeout_error_while_the_save_runs():
    pending = PendingSave("a", 1)  # never completed: as a save still being written
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        pending.result(timeout=0.05)
    assert time.monotonic() - started < 5
    assert not pending.done() and repr(pending) == "PendingSave('a@1', pending)"
