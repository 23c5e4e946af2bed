"""A drop-in ``tf.train.CheckpointManager`` that saves into a store run.

::

    manager = tf.train.CheckpointManager(ckpt, './tf_ckpts', max_to_keep=3)   # before
    manager = ckptstore.tf2.CheckpointManager(ckpt, run, max_to_keep=3)       # after

    ckpt.restore(manager.latest_checkpoint)                                   # unchanged

**What ``latest_checkpoint`` is.** A path prefix, not a reference: ``tf.train.Checkpoint.restore``
only opens files (it would take ``run@latest`` for a relative file name), and code around it
uses the value as a path (``tf.train.load_checkpoint``, ``tf.train.list_variables``, logging it).
So it is the prefix of a read-only copy of the checkpoint, written once into the store's cache
directory (``<file root>/materialized/c<id>-<digest>/``; ``ckptstore.flows.materialized``) and
reused while the checkpoint exists. The copy is made from verified files and costs one copy
of the checkpoint per checkpoint read this way (reflinks where the filesystem has them);
copies of checkpoints retention deleted are removed at the next materialization.
``checkpoints`` lists such paths too (materialized on access). ``save()`` returns the reference
``run@N`` of the checkpoint it made: cheap, printable, and accepted everywhere the store takes a
reference; it is not a file.

Numbering is TensorFlow's: ``checkpoint_number`` if given (an int or an integer variable), else
the checkpoint's ``save_counter`` after incrementing it; the number is the store step.
``max_to_keep`` and ``keep_checkpoint_every_n_hours`` become the run's retention rule.
``options=tf.train.CheckpointOptions(enable_async=True)`` (or ``blocking=False``) saves in the
background after a snapshot (``ckptstore.flows.async_save``); ``sync()`` waits.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from .errors import InvalidOptionError
from .flows import materialized
from .run import Run
from .tf1 import retention_of
from .tf.runtime import tf

log = logging.getLogger(__name__)

__all__ = ["CheckpointManager"]


class CheckpointManager:
    """``tf.train.CheckpointManager(checkpoint, directory, ...)`` with a run for the directory."""

    def __init__(
        self,
        checkpoint: Any,
        run: Run,
        max_to_keep: Optional[int] = None,
        keep_checkpoint_every_n_hours: Optional[float] = None,
        checkpoint_name: str = "ckpt",
        step_counter: Any = None,
        checkpoint_interval: Optional[int] = None,
        init_fn: Optional[Callable[[], Any]] = None,
    ) -> None:
        t = tf()
        if not isinstance(checkpoint, t.train.Checkpoint):
            raise InvalidOptionError(f"checkpoint must be a tf.train.Checkpoint, got {type(checkpoint).__name__}")
        if not isinstance(run, Run):
            raise InvalidOptionError(f"CheckpointManager takes a Run where TensorFlow takes a directory, got {type(run).__name__}")
        if checkpoint_interval is not None and step_counter is None:
            raise ValueError("`step_counter` should be passed if `checkpoint_interval` is not None.")  # TF's message
        self._checkpoint = checkpoint
        self.run = run
        self._max_to_keep = max_to_keep
        self._keep_checkpoint_every_n_hours = keep_checkpoint_every_n_hours
        self._checkpoint_name = checkpoint_name
        self._step_counter = step_counter
        self._checkpoint_interval = checkpoint_interval
        self._init_fn = init_fn
        self._last_checkpoint_step: Optional[int] = None
        run.set_retention(retention_of(run, max_to_keep, keep_checkpoint_every_n_hours))

    # ------------------------------------------------------------------ TF's properties

    @property
    def checkpoint(self) -> Any:
        return self._checkpoint

    @property
    def checkpoint_interval(self) -> Optional[int]:
        return self._checkpoint_interval

    @property
    def directory(self) -> str:
        """Where materialized copies of this run's checkpoints go (the store's cache)."""
        return str(self.run.store.backend.files.cache_root())

    @property
    def latest_checkpoint(self) -> Optional[str]:
        """The path prefix of a read-only copy of the run's newest checkpoint, or None."""
        self.run.wait()
        cks = self.run.store.checkpoints(self.run.name)
        if not cks:
            return None
        return str(materialized.cached_prefix(self.run.store.backend, cks[-1]))

    @property
    def checkpoints(self) -> list[str]:
        """Path prefixes of the run's checkpoints retention keeps, oldest first."""
        self.run.wait()
        backend = self.run.store.backend
        return [str(materialized.cached_prefix(backend, ck)) for ck in self.run.store.checkpoints(self.run.name)]

    # ------------------------------------------------------------------ saving

    def _step_value(self) -> int:
        v = self._step_counter
        return int(v.numpy() if hasattr(v, "numpy") else v)

    def save(self, checkpoint_number: Any = None, check_interval: bool = True, options: Any = None,
             *, blocking: Optional[bool] = None) -> Optional[str]:
        """Save a checkpoint; returns its reference ``run@N`` (None when skipped by the interval).

        Async when ``options`` enables it (``tf.train.CheckpointOptions(enable_async=True)``)
        or ``blocking=False``."""
        if self._checkpoint_interval is not None:
            current = self._step_value()
            if self._last_checkpoint_step is not None and check_interval:
                if current < self._last_checkpoint_step + self._checkpoint_interval:
                    return None
            self._last_checkpoint_step = current
        counter = self._checkpoint.save_counter
        counter.assign_add(1)
        if checkpoint_number is None:
            checkpoint_number = counter
        number = int(checkpoint_number.numpy()) if hasattr(checkpoint_number, "numpy") else int(checkpoint_number)
        if blocking is None:
            blocking = not bool(getattr(options, "experimental_enable_async_checkpoint", False))
        self.run.save(self._checkpoint, number, prefix=self._checkpoint_name, blocking=blocking)
        return f"{self.run.name}@{number}"

    def sync(self) -> None:
        """Wait for background saves to commit (TF's name for it)."""
        self.run.wait()

    def restore_or_initialize(self) -> Optional[str]:
        """Restore the newest checkpoint if there is one (returns its path), else call
        ``init_fn`` (returns None), as TensorFlow's manager does."""
        latest = self.latest_checkpoint
        if latest is not None:
            self._checkpoint.restore(latest)
            if self._checkpoint_interval is not None:
                self._last_checkpoint_step = self._step_value()
            return latest
        if self._init_fn is not None:
            self._init_fn()
            log.info("no checkpoint in run %s: initialized with init_fn", self.run.name)
        return None
