"""A Keras callback that logs a training run into a store and saves its checkpoints.

>>> run = store.start_run("mlp", retention=Retention(max_to_keep=3, keep_best=KeepBest("loss")))  # doctest: +SKIP
>>> model.fit(x, y, epochs=5, callbacks=[StoreCallback(run, save_every_n_steps=100)])          # doctest: +SKIP

Importing this module imports Keras (and so TensorFlow); nothing else in ckptstore imports it,
so the store and the command line stay fast.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional

import keras

from .errors import InvalidOptionError, StepConflictError

if TYPE_CHECKING:
    from .records import CheckpointInfo
    from .run import Run

log = logging.getLogger(__name__)

__all__ = ["StoreCallback", "fix_fit_under_multi_worker"]


class StoreCallback(keras.callbacks.Callback):
    """Log batch and epoch metrics to ``run`` and save checkpoints under its retention rule.

    **Steps.** Every training batch advances a global step (batches so far, across epochs and
    across fits) and logs the batch's metrics at that step. A fresh run starts at step 1; a run
    resumed with ``start_run(name, resume=True)`` continues after its last step
    (:attr:`Run.next_step`; so does a second ``fit`` with a new callback on the same handle),
    so nothing an earlier training logged is written again.
    ``initial_step`` sets the step before the first batch; one at or below what a resumed run
    already has is refused at once (:class:`~ckptstore.errors.StepConflictError`).

    **Metric names: Keras's own, once each.** ``loss``, ``accuracy``, ... at every batch (Keras
    reports the epoch's running mean); at the end of each epoch, at the epoch's last step, the
    validation metrics (``val_loss``, ``val_accuracy``, ...), any epoch value that differs from
    the last batch's, and ``epoch``: the number of epochs completed (Keras's epoch index + 1).
    ``epoch_prefix`` (default none) logs the epoch's values again under a prefixed name, as
    versions before 0.2 did (``epoch_loss``).

    **Epochs.** :attr:`initial_epoch` is the number of epochs a resumed run has completed: pass
    it to ``model.fit(..., initial_epoch=callback.initial_epoch)`` so Keras's epoch count goes on
    too; a fit that starts its epochs below it draws one warning.

    **Checkpoints.** One every ``save_every_n_steps`` steps and/or at the end of every epoch
    (``save_every_epoch``), via ``run.save(target, step)``, which applies the run's retention
    rule; a step is never saved twice. ``target`` defaults to
    ``tf.train.Checkpoint(model=<the model>)``, which ``store.restore(ref, fresh_model)`` reads
    back (optimizer state included).

    **Ranking.** ``monitor`` (default: the metric of the run's ``KeepBest`` rule, if it has
    one) is a Keras log key that checkpoints are ranked by. A checkpoint ranks only when the
    metric is logged at its step with a value computed from the saved weights:

      - at an epoch-end save, the epoch's value (for ``val_*``: this epoch's validation);
      - at a step save, the batch's value when the metric is in the batch logs (``loss``);
      - a step save on an epoch's last batch of a metric Keras only reports per epoch
        (``val_*``) is made at the epoch's end instead, with the epoch's value: validation
        does not change the weights, so the checkpoint and its step are the same;
      - otherwise (a step save mid-epoch of a per-epoch metric, an epoch without validation
        under ``validation_freq``, or a dataset of unknown length, where the last batch is
        only known after the fact) the checkpoint does not rank: retention treats a
        checkpoint without the metric as never best.

      A ``monitor`` that never appears in Keras' logs during a fit (a misspelling, or
      ``val_*`` without validation data) draws one warning at the end of training.

    ``saved`` lists the checkpoints written, in order.
    """

    def __init__(
        self,
        run: "Run",
        save_every_n_steps: Optional[int] = None,
        save_every_epoch: bool = False,
        monitor: Optional[str] = None,
        target: Any = None,
        *,
        initial_step: Optional[int] = None,
        epoch_prefix: str = "",
    ) -> None:
        super().__init__()
        if save_every_n_steps is not None and (
            isinstance(save_every_n_steps, bool) or not isinstance(save_every_n_steps, int) or save_every_n_steps < 1
        ):
            raise InvalidOptionError(f"save_every_n_steps must be a whole number >= 1, got {save_every_n_steps!r}")
        if initial_step is None:
            initial_step = max(run.next_step - 1, 0)
        elif isinstance(initial_step, bool) or not isinstance(initial_step, int) or initial_step < 0:
            raise InvalidOptionError(f"initial_step must be a whole number >= 0, got {initial_step!r}")
        elif not run.accepts(initial_step + 1):
            raise StepConflictError(
                f"run {run.name!r} already has steps up to {run.next_step - 1}: initial_step={initial_step} "
                "would log them again (leave initial_step out to continue after them)"
            )
        self.run = run
        self.save_every_n_steps = save_every_n_steps
        self.save_every_epoch = save_every_epoch
        self.monitor = monitor if monitor is not None else _keep_best_metric(run)
        self.target = target
        self.epoch_prefix = epoch_prefix
        self.step = initial_step
        #: Epochs the run completed before this callback (0 for a new run): ``fit(initial_epoch=...)``.
        self.initial_epoch = _epochs_done(run) if run.resumed_from is not None else 0
        self.saved: list["CheckpointInfo"] = []
        self._saved_steps: set[int] = set()
        self._save_at_epoch_end = False  # a step save deferred until the epoch's metrics exist
        self._log_keys: set[str] = set()  # every key Keras logged during this fit
        self._saved_before_fit = 0
        self._epoch_base = initial_step  # the step before the current epoch's first batch
        self._batch_values: dict[str, float] = {}  # what the last batch logged at self.step
        self._epoch_warned = False

    # Keras calls these -------------------------------------------------------------------

    def on_train_begin(self, logs: Optional[Mapping[str, Any]] = None) -> None:
        self._save_at_epoch_end = False
        self._log_keys = set()
        self._saved_before_fit = len(self.saved)

    def on_epoch_begin(self, epoch: int, logs: Optional[Mapping[str, Any]] = None) -> None:
        self._epoch_base = self.step
        self._batch_values = {}
        if epoch < self.initial_epoch and not self._epoch_warned:
            self._epoch_warned = True
            log.warning(
                "run %s already completed %d epochs but this fit starts at epoch %d: pass "
                "initial_epoch=callback.initial_epoch to model.fit to continue its epoch count",
                self.run.name, self.initial_epoch, epoch,
            )

    def on_train_batch_end(self, batch: int, logs: Optional[Mapping[str, Any]] = None) -> None:
        # With steps_per_execution=K Keras calls this once per K batches, `batch` being the
        # last one's index: the step follows the batch index, not the number of calls.
        # Keras does not clip the last group at the epoch's end (batches 6-8 of 8 end at index 8).
        done = batch + 1
        steps = (self.params or {}).get("steps")
        if steps:
            done = min(done, steps)
        prev = self.step
        self.step = max(self._epoch_base + done, prev + 1)
        values = _numbers(logs)
        self._batch_values = values
        if values:
            self.run.log(self.step, **values)
            self._log_keys.update(values)
        every = self.save_every_n_steps
        if not (every and self.step // every > prev // every):  # a multiple of `every` reached
            return
        if self.monitor is None or self.monitor in values:
            self._save()
            return
        # `batch` is the index of the epoch's last batch run so far (with steps_per_execution,
        # of the last one of the group); `steps` is None for a dataset of unknown length.
        if steps and batch + 1 >= steps:
            # Validation runs between this batch and on_epoch_end and does not train, so the
            # checkpoint saved there holds these weights, with the epoch's fresh value.
            self._save_at_epoch_end = True
            return
        log.debug(
            "checkpoint at step %d saved without %r: it is only computed at the end of an epoch",
            self.step, self.monitor,
        )
        self._save()

    def on_epoch_end(self, epoch: int, logs: Optional[Mapping[str, Any]] = None) -> None:
        values = _numbers(logs)
        # One name per value: what the last batch already logged at this step is not logged
        # again (Keras's batch logs are the epoch's running means, so they usually agree).
        fresh = {k: v for k, v in values.items() if self._batch_values.get(k) != v}
        fresh["epoch"] = float(epoch + 1)
        if self.epoch_prefix:
            fresh.update({self.epoch_prefix + k: v for k, v in values.items()})
        self.run.log(self.step, **fresh)
        self._log_keys.update(values)
        due = self._save_at_epoch_end or self.save_every_epoch
        self._save_at_epoch_end = False
        if not due or self.step in self._saved_steps:
            return
        if self.monitor is not None and self.monitor not in values:
            log.debug("checkpoint at step %d saved without %r: not in epoch %d's logs", self.step, self.monitor, epoch)
        self._save()

    def on_train_end(self, logs: Optional[Mapping[str, Any]] = None) -> None:
        self.run.flush()
        saved_this_fit = len(self.saved) > self._saved_before_fit
        if self.monitor is not None and saved_this_fit and self.monitor not in self._log_keys:
            log.warning(
                "monitored metric %r never appeared in Keras' logs (seen: %s); no checkpoint of this "
                "fit carries it, so KeepBest(%r) cannot rank them",
                self.monitor, ", ".join(sorted(self._log_keys)) or "none", self.monitor,
            )

    # ------------------------------------------------------------------------------------

    def _save(self) -> None:
        target = self.target
        if target is None:
            import tensorflow as tf

            # Built per save: the model's optimizer and variables are created lazily by fit.
            target = tf.train.Checkpoint(model=self.model)
        self.saved.append(self.run.save(target, self.step))
        self._saved_steps.add(self.step)


def _keep_best_metric(run: "Run") -> Optional[str]:
    """The metric the run's ``KeepBest`` rule ranks by, if it has one."""
    # Through the run: a follower (a non-chief worker) may run before the chief created the
    # run, and must rank (so save) at the same steps as the chief.
    best = run.retention_rule().keep_best
    return best.metric if best is not None else None


def _epochs_done(run: "Run") -> int:
    """Epochs an earlier ``StoreCallback`` completed in ``run`` (its last ``epoch`` value)."""
    _, values = run.store.metric_series(run.name, "epoch")
    return int(values[-1]) if len(values) else 0


def _numbers(logs: Optional[Mapping[str, Any]]) -> dict[str, float]:
    """The log entries that are numbers (scalars, 0-d arrays); anything else is left out."""
    out: dict[str, float] = {}
    for k, v in (logs or {}).items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        out[k] = f
    return out


def fix_fit_under_multi_worker(strategy: Any) -> Any:
    """Make Keras 3's ``model.fit`` run under ``MultiWorkerMirroredStrategy``; returns ``strategy``.

    Keras 3 (3.x, TensorFlow backend) calls ``strategy.reduce`` in two ways that the
    multi-worker strategy refuses (keras-team/keras#20585, tensorflow/tensorflow#72388): on a
    whole nested batch at once, to learn its shapes before tracing (``Attempt to convert a value
    (PerReplica...)``), and on scalar metrics over ``axis=0`` (``Invalid reduction dimension
    0``). This wraps this one strategy object's ``reduce`` so that it reduces each value of a
    structure on its own, and a scalar over no axis; every worker makes the same calls, so the
    collectives still match. Nothing else changes, and nothing global is patched. Call it right
    after creating the strategy, on every worker:

    >>> strategy = fix_fit_under_multi_worker(tf.distribute.MultiWorkerMirroredStrategy())  # doctest: +SKIP
    """
    import tensorflow as tf

    original = strategy.reduce

    def reduce(reduce_op: Any, value: Any, axis: Any = None) -> Any:
        def one(v: Any) -> Any:
            local = strategy.experimental_local_results(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v
            shape = getattr(local, "shape", None)
            scalar = shape is not None and shape.rank == 0
            return original(reduce_op, v, axis=None if scalar else axis)

        return tf.nest.map_structure(one, value)

    strategy.reduce = reduce
    return strategy
