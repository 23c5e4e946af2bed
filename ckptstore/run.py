"""A run handle: log metrics from a training loop, save checkpoints, freeze exports.

``run.log(step, **metrics)`` only appends to an in-memory buffer; rows reach the database in
batches (every ``flush_every`` values, every ``flush_seconds``, before each checkpoint save, when
the run ends and at interpreter exit), one transaction per batch. This is what makes per-step
logging cost microseconds instead of a round trip.

Metric values policy:

* ints, floats, bools, numpy scalars, 0-d arrays and eager tensors are accepted (``float(v)``);
* anything else (strings, None, lists, ...) raises :class:`MetricValueError` at the ``log`` call,
  naming the metric and step, and nothing of that call is buffered;
* NaN and +/-inf are stored by default (a diverging loss is worth seeing) and read back as such;
  ``nonfinite="raise"`` refuses them, ``nonfinite="skip"`` drops them silently.
* Logging the same (step, key) twice keeps the last value.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
from typing import TYPE_CHECKING, Any, Literal, Optional, Sequence

from sqlalchemy import update

from . import schema as S
from .constants import INT_MAX
from .errors import InvalidOptionError, MetricValueError

if TYPE_CHECKING:
    from .records import CheckpointInfo, ExportInfo
    from .retention import Retention
    from .store import Store

log = logging.getLogger(__name__)

# Strong references on purpose: a run handle dropped without finish() (``store.run(n).log(...)``
# as a one-liner, a training function that returns) still holds buffered metrics, which must
# reach the database at close or at exit. A weak set lost them when the handle was collected.
# A run leaves this set when it finishes or its store closes.
_live_runs: "set[Run]" = set()
_live_lock = threading.Lock()


class Run:
    """A run of a store. Get one from :meth:`Store.start_run` (or :meth:`Store.run`)."""

    def __init__(
        self,
        store: "Store",
        run_id: int,
        name: str,
        *,
        flush_every: int = 20_000,
        flush_seconds: float = 5.0,
        nonfinite: Literal["store", "raise", "skip"] = "store",
    ) -> None:
        if nonfinite not in ("store", "raise", "skip"):
            raise InvalidOptionError(f"nonfinite must be 'store', 'raise' or 'skip', got {nonfinite!r}")
        if flush_every < 1 or flush_seconds < 0:
            raise InvalidOptionError("flush_every must be >= 1 and flush_seconds >= 0")
        self.store = store
        self.id = run_id
        self.name = name
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self.nonfinite = nonfinite
        self._buf: list[tuple[int, int, str, Optional[float], float]] = []
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()
        # Keys already checked: a key PostgreSQL would refuse must fail at log(), not at a later
        # flush where it would block the whole buffer (and SQLite would store it silently).
        self._keys_ok: set[str] = set()
        self._closed = False
        self._track()

    def _track(self) -> None:
        with _live_lock:
            _live_runs.add(self)
            self._tracked = True

    def _untrack(self) -> None:
        with _live_lock:
            _live_runs.discard(self)
            self._tracked = False

    def __repr__(self) -> str:
        return f"Run({self.name!r}, id={self.id})"

    # ------------------------------------------------------------------ metrics

    def log(self, step: int, /, **metrics: Any) -> None:
        """Record metrics at ``step``. Cheap: buffered and written in batches.

        >>> run.log(100, loss=0.25, accuracy=0.91)   # doctest: +SKIP
        """
        step = _check_step(step)
        now = time.time()
        rows = []
        run_id = self.id
        for key, value in metrics.items():
            if key not in self._keys_ok:
                _check_key(key, step)
                self._keys_ok.add(key)
            try:
                if type(value) is float:  # the common case, kept cheap
                    v = value
                elif isinstance(value, (str, bytes, bytearray)):
                    # float("0.5") would parse; a string metric is a bug in the caller.
                    raise TypeError
                else:
                    v = float(value)
            except (TypeError, ValueError, OverflowError):
                raise MetricValueError(
                    f"metric {key!r} at step {step}: {_shown(value)} is not a number "
                    f"({type(value).__name__})"
                ) from None
            if not math.isfinite(v):
                if self.nonfinite == "raise":
                    raise MetricValueError(f"metric {key!r} at step {step} is {v} (nonfinite='raise')")
                if self.nonfinite == "skip":
                    continue
                if math.isnan(v):
                    v = None  # type: ignore[assignment]  # stored as NULL, read back as NaN
            rows.append((run_id, step, key, v, now))
        if not self._tracked:  # logging again after finish() or the store's close()
            self._track()
        with self._lock:
            self._buf.extend(rows)
            due = len(self._buf) >= self.flush_every or (
                time.monotonic() - self._last_flush >= self.flush_seconds
            )
        if due:
            self.flush()

    def flush(self) -> int:
        """Write buffered metrics now; returns how many values were written."""
        with self._lock:
            buf, self._buf = self._buf, []
            self._last_flush = time.monotonic()
        if not buf:
            return 0
        try:
            _write_metrics(self.store, buf)
        except BaseException:
            with self._lock:  # keep them for the next attempt rather than lose them
                self._buf[:0] = buf
            raise
        return len(buf)

    # ------------------------------------------------------------------ checkpoints and exports

    def save(
        self,
        target: Any,
        step: int,
        *,
        var_list: Any = None,
        write_meta_graph: bool = True,
        prefix: str = "model.ckpt",
    ) -> "CheckpointInfo":
        """Save a checkpoint of ``target`` at ``step``: files and metadata land together.

        ``target`` is a TF1 ``tf.compat.v1.Session`` (saved with ``tf.compat.v1.train.Saver``;
        ``var_list`` as the Saver takes it) or a TF2 ``tf.train.Checkpoint`` or any trackable
        (a Keras model, a ``tf.Module``). Buffered metrics are flushed first, and the run's
        retention rule is applied after the commit.
        """
        from .checkpoints import save

        self.flush()
        return save(self, target, step, var_list=var_list, write_meta_graph=write_meta_graph, prefix=prefix)

    def freeze(self, target: Any, output_names: Optional[Sequence[str]] = None, *, step: Optional[int] = None) -> "ExportInfo":
        """Freeze a TF1 session's graph (``output_names`` required) or a TF2 ``tf.function``
        into a self-contained GraphDef stored with this run."""
        from .exports import freeze

        self.flush()
        return freeze(self, target, output_names, step=step)

    def set_retention(self, retention: Optional["Retention"]) -> None:
        self.store.set_retention(self.name, retention)

    # ------------------------------------------------------------------ lifecycle

    def finish(self, status: str = "finished") -> None:
        """Flush and mark the run ``finished`` (or ``failed``)."""
        try:
            self.flush()
        finally:
            with self.store.write() as conn:
                conn.execute(
                    update(S.Run).where(S.Run.id == self.id).values(status=status, ended_at=S.utcnow())
                )
            self._closed = True
            self._untrack()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.finish("finished")
            return
        try:
            self.finish("failed")
        except Exception:  # never hide the training loop's own exception
            log.exception("could not mark run %s failed", self.name)


# Steps are BIGINT columns; a larger step would fail at flush time and block the buffer.
_STEP_MAX = INT_MAX


def _check_key(key: str, step: int) -> None:
    from .schema import NAME_MAX

    if not key or len(key) > NAME_MAX or any(ord(ch) < 32 for ch in key):
        raise MetricValueError(
            f"metric name {_shown(key)} at step {step} must be 1 to {NAME_MAX} characters "
            "without control characters"
        )


def _check_step(step: Any) -> int:
    if isinstance(step, bool):
        raise MetricValueError(f"step must be a whole number >= 0, got {step!r}")
    try:
        i = int(step)
    except (TypeError, ValueError, OverflowError):
        raise MetricValueError(f"step must be a whole number >= 0, got {_shown(step)}") from None
    if i != step or i < 0:
        raise MetricValueError(f"step must be a whole number >= 0, got {_shown(step)}")
    if i > _STEP_MAX:
        raise MetricValueError(f"step {i} is larger than the largest step, 2**63 - 1")
    return i


def _shown(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


_insert_cache: dict[str, Any] = {}


def _write_metrics(store: "Store", rows: list[tuple[int, int, str, Optional[float], float]]) -> None:
    """One transaction, one executemany; a repeated (run, step, key) keeps the newest value."""
    dialect = store.dialect
    sql = _insert_cache.get(dialect)
    if sql is None:
        ph = "%s" if store.engine.dialect.paramstyle in ("format", "pyformat") else "?"
        # Straight to the driver: building a dict per value through SQLAlchemy costs more than
        # the insert itself at 100k+ values/s.
        sql = (
            "INSERT INTO metrics (run_id, step, key, value, wall_time) "
            f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph}) "
            "ON CONFLICT (run_id, step, key) DO UPDATE SET value = excluded.value, "
            "wall_time = excluded.wall_time"
        )
        _insert_cache[dialect] = sql
    with store.write() as conn:
        conn.exec_driver_sql(sql, rows)


def _flush_runs_of(store: "Store") -> None:
    """Flush the unfinished runs of a store that is closing, and forget them."""
    with _live_lock:
        runs = [r for r in _live_runs if r.store is store]
    for run in runs:
        try:
            run.flush()
        except Exception:
            log.exception("could not flush metrics of run %s", run.name)
        else:
            run._untrack()


@atexit.register
def _flush_all_at_exit() -> None:
    with _live_lock:
        runs = list(_live_runs)
    for run in runs:
        try:
            run.flush()
        except Exception:
            log.exception("could not flush metrics of run %s at exit", run.name)
