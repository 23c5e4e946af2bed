"""The runs a store started in this process: their heartbeat while they live, their end when it ends.

What readers make of it is in ``ckptstore/liveness.py``: a ``running`` run whose heartbeat is
older than its timeout, or whose process is gone, reads as ``crashed``. This module keeps the
heartbeat fresh and ends the runs nobody finished:

* **Heartbeat.** One daemon thread per store (started with its first run, ended with its last)
  writes ``runs.heartbeat_at`` of all the store's unfinished runs in one small UPDATE every
  ``liveness.interval()`` seconds. It never holds a lock ``Run.log`` takes, so logging never waits
  for it; a failed write is logged and retried at the next beat (readers allow three).
* **End without ``finish()``.** At interpreter exit (``end_all_at_exit``, called by
  ``ckptstore.run`` after the last metrics are written) each unfinished run is marked ``failed``
  if the interpreter is ending because of an uncaught exception, else ``finished``: MLflow's
  fluent API ends its active run at exit the same way. ``sys.exit(n)`` is a normal exit here,
  whatever ``n``. ``Store.close()`` ends its store's runs the same way (``failed`` when the store's
  ``with`` block ends with an exception), since no handle of a closed store can log again.
* **No end.** SIGKILL, SIGTERM without a handler (its default action skips ``atexit``),
  ``os._exit``, power loss: nothing runs, the heartbeat stops and readers show ``crashed``. A
  child forked from this process inherits nothing here: the runs are its parent's.

The runs are ended only where they are still ``running`` and still owned by this process (the
``runs.process`` token), so a run another process resumed meanwhile is never touched.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterable

from .. import liveness
from ..metadata import writes as W
from ..metadata.engine import Database

log = logging.getLogger(__name__)

#: Heartbeats with unfinished runs (strong references: a store dropped without ``close()``
#: still has its runs ended at interpreter exit).
_live: set[Heartbeat] = set()
_live_lock = threading.Lock()


class Heartbeat:
    """One store's unfinished runs in this process, and the thread that keeps them alive."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.process = liveness.process_token()
        self.pid = os.getpid()
        self._runs: dict[int, str] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    def settings(self) -> tuple[str, float]:
        """(process token, heartbeat timeout) to record when a run starts."""
        return self.process, liveness.timeout()

    def add(self, run_id: int, name: str) -> None:
        """Keep ``run_id`` alive from now on (its first heartbeat was written with its start)."""
        every = liveness.interval()
        with self._lock:
            self._runs[run_id] = name
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._beat, args=(every,), name="ckptstore-heartbeat", daemon=True
                )
                self._thread.start()
        with _live_lock:
            _live.add(self)

    def discard(self, run_id: int) -> None:
        """``run_id`` was finished (or failed) explicitly: stop beating for it."""
        with self._lock:
            self._runs.pop(run_id, None)
            empty = not self._runs
            if empty:
                self._wake.notify_all()
        if empty:
            with _live_lock:
                _live.discard(self)

    def end(self, status: str) -> None:
        """Mark every unfinished run ``status`` and stop the heartbeat (store close, exit). A
        failure is logged, not raised: the runs then read as crashed, which is still true."""
        if os.getpid() != self.pid:
            return  # a forked child's copy: the runs are its parent's
        with self._lock:
            runs, self._runs = dict(self._runs), {}
            self._wake.notify_all()
        with _live_lock:
            _live.discard(self)
        if not runs:
            return
        names = ", ".join(sorted(runs.values()))
        try:
            with self.db.write() as conn:
                W.end_runs(conn, self.process, list(runs), status)
        except Exception:
            log.exception("could not mark runs %s %s", names, status)
            return
        log.info("runs %s ended without finish(): marked %s", names, status)

    def _beat(self, every: float) -> None:
        with self._lock:
            while True:
                self._wake.wait(every)
                ids = list(self._runs)
                if not ids:
                    self._thread = None
                    return
                self._lock.release()
                try:
                    with self.db.write() as conn:
                        W.beat(conn, self.process, ids)
                except Exception:
                    # Readers allow a few missed beats; a database that stays away for longer
                    # shows the run as crashed until the next beat gets through.
                    log.warning("could not write the heartbeat of runs %s", ids, exc_info=True)
                finally:
                    self._lock.acquire()


def _forget_in_child() -> None:
    # A forked child owns none of its parent's runs, and a lock some parent thread held at the
    # fork would never be released in the child.
    global _live_lock
    _live_lock = threading.Lock()
    _live.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def exit_status() -> str:
    """``failed`` when the interpreter is ending because of an uncaught exception, else ``finished``."""
    # CPython sets sys.last_value (3.12: also sys.last_exc) when it prints the uncaught
    # exception that ends the main script, before atexit handlers run. An interactive session
    # (a REPL, IPython, a notebook) sets it for any error shown and then carries on, so there
    # an exception never ends the interpreter.
    if hasattr(sys, "ps1") or sys.flags.interactive or "IPython" in sys.modules:
        return "finished"
    if getattr(sys, "last_exc", None) is not None or getattr(sys, "last_value", None) is not None:
        return "failed"
    return "finished"


def end_all_at_exit() -> None:
    """End every unfinished run of this process (``failed`` or ``finished``, see above)."""
    with _live_lock:
        beats: Iterable[Heartbeat] = list(_live)
    status = exit_status()
    for hb in beats:
        hb.end(status)
