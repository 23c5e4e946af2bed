"""Keras callbacks that log a training run into a store and save its checkpoints.

>>> run = store.start_run("mlp", retention=Retention(max_to_keep=3, keep_best=KeepBest("loss")))  # doctest: +SKIP
>>> model.fit(x, y, epochs=5, callbacks=[StoreCallback(run, save_every_n_steps=100)])          # doctest: +SKIP

:class:`BackupAndRestore` is the same callback made preemption-safe: a re-run of the script
after a kill continues the run from its latest checkpoint, at the saved batch.

Importing this module imports Keras (and so TensorFlow); nothing else in ckptstore imports it,
so the store and the command line stay fast.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import keras

from . import distributed
from .errors import InvalidOptionError, StepConflictError
from .preemption import (
    RESTART_EXIT_CODE,
    PreemptionNotice,
    check_exit_code,
    resume_training,
    rewind_to_latest,
    stop_after_save,
    stop_agreement,
)
from .run import Run

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Unpack

    from .records import CheckpointInfo
    from .store import StartRunOptions, Store

log = logging.getLogger(__name__)

__all__ = ["StoreCallback", "BackupAndRestore", "fix_fit_under_multi_worker"]


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
        run: Run,
        save_every_n_steps: int | None = None,
        save_every_epoch: bool = False,
        monitor: str | None = None,
        target: Any = None,
        *,
        initial_step: int | None = None,
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
        self.saved: list[CheckpointInfo] = []
        self._saved_steps: set[int] = set()
        self._save_at_epoch_end = False  # a step save deferred until the epoch's metrics exist
        self._log_keys: set[str] = set()  # every key Keras logged during this fit
        self._saved_before_fit = 0
        self._epoch_base = initial_step  # the step before the current epoch's first batch
        self._batch_values: dict[str, float] = {}  # what the last batch logged at self.step
        self._epoch_warned = False

    # Keras calls these -------------------------------------------------------------------

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._save_at_epoch_end = False
        self._log_keys = set()
        self._saved_before_fit = len(self.saved)

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._epoch_base = self.step
        self._batch_values = {}
        if epoch < self.initial_epoch and not self._epoch_warned:
            self._epoch_warned = True
            log.warning(
                "run %s already completed %d epochs but this fit starts at epoch %d: pass "
                "initial_epoch=callback.initial_epoch to model.fit to continue its epoch count",
                self.run.name, self.initial_epoch, epoch,
            )

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
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

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
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

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
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
        self.saved.append(self.run.save(target, self.step, blocking=True))
        self._saved_steps.add(self.step)


class BackupAndRestore(StoreCallback):
    """``keras.callbacks.BackupAndRestore`` backed by the store: run the same script again after
    a kill and ``fit`` continues from the run's latest checkpoint, in the same run.

    >>> cb = BackupAndRestore(store, "mlp", save_freq=50)            # doctest: +SKIP
    >>> model.fit(x, y, epochs=5, callbacks=[cb])                       # doctest: +SKIP

    ``run`` is a name, opened with ``store.start_run(run, resume=resume, **start_run_options)``
    (``resume=True`` by default: continue the run or start it; ``"must"`` refuses a run that
    does not exist, ``False`` one that does), or a :class:`Run` (also alone:
    ``BackupAndRestore(run, save_freq=10)``). It logs as :class:`StoreCallback`
    does (one name per value, a global step per batch; use it *instead of* a StoreCallback) and
    saves at the end of every epoch (``save_freq="epoch"``) or every ``save_freq`` steps.

    **Where it differs from Keras's own.** Keras's callback keeps one backup, deleted when fit
    ends, and with an integer ``save_freq`` restarts the interrupted epoch from its first batch,
    training those batches twice. This one keeps the run's checkpoints (its retention rule
    applies) and resumes *at the saved batch*: it restores the weights, the optimizer, every
    non-trainable variable (dropout's seed-generator state, BatchNorm statistics), the epoch's
    metric state and its position (epochs and batches done, in the checkpoint as
    ``training_state``), makes fit start at that epoch, and skips the batches of it already done
    by drawing them from the data without training. So a re-run ends with the same weights as an
    uninterrupted fit, logs each step once (values the killed process logged after the
    checkpoint move to the run's metric history) and saves the same checkpoints. It needs the
    data to start again at each epoch (arrays, or a dataset of one epoch; no unseeded
    shuffling): the position *inside* a ``tf.data`` iterator that ``fit`` keeps across epochs
    (``steps_per_epoch`` shorter than the dataset) is not saved. A save due on an epoch's last
    batch is made at the epoch's end, after validation (which does not change the weights).
    Metric states are restored by adding the saved totals to the first resumed batch's, which
    is exact for the sums and counts Keras's metrics keep.

    **SIGTERM**, while fit runs: at the next batch's end (or the epoch's end, for its last
    batch) the current step is saved and the process exits with ``exit_code`` (42, as TF's
    ``PreemptionCheckpointHandler``; ``None``: fit stops and returns, ``preempted`` is True).
    See :mod:`ckptstore.preemption`. A run opened by name is marked finished when a fit
    completes without preemption. Under ``MultiWorkerMirroredStrategy`` (the model's
    ``distribute_strategy``) a SIGTERM to any worker stops every worker at the same batch: they
    agree at each batch's end (``preemption.stop_agreement``), the chief commits the one
    checkpoint, and all exit with ``exit_code``.
    """

    def __init__(
        self,
        store: Store | Run,
        run: str | Run | None = None,
        save_freq: str | int = "epoch",
        *,
        resume: bool | str = True,
        monitor: str | None = None,
        exit_code: int | None = RESTART_EXIT_CODE,
        **start_run_options: Unpack[StartRunOptions],
    ) -> None:
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1):
            raise InvalidOptionError(f"save_freq must be 'epoch' or a whole number >= 1, got {save_freq!r}")
        exit_code = check_exit_code(exit_code)
        if run is None:  # BackupAndRestore(run_handle, ...)
            if not isinstance(store, Run):
                # preemption.resume_training's words for a bad run, for BackupAndRestore(store) too.
                raise InvalidOptionError(f"run must be a run name or a Run, got {type(run).__name__}")
            run = store
        owner = store.store if isinstance(store, Run) else store
        handle, latest, owned = resume_training(owner, run, resume=resume, **start_run_options)
        super().__init__(
            handle,
            save_every_n_steps=None if save_freq == "epoch" else int(save_freq),
            save_every_epoch=save_freq == "epoch",
            monitor=monitor,
        )
        self.store = owner
        self.save_freq = save_freq
        self.exit_code = exit_code
        #: The checkpoint the first fit restores (None: training starts afresh).
        self.restore_from = latest
        #: True once a SIGTERM made fit save and stop.
        self.preempted = False
        self._owns_run = owned
        self._notice = PreemptionNotice()
        self._state: Any = None  # the tf.Module saved as `training_state` beside the model
        self._restored = False
        self._fit_ended = True  # False while a fit runs, and after one that raised
        self._epoch = 0  # epochs done before the current one
        self._batches_done = 0  # batches done in the current epoch
        self._in_batch = False
        self._skip = 0  # batches of the resumed epoch already done before the restore
        self._skip_left = 0  # of those, not drawn from the data yet
        self._skip_epoch = -1
        self._saved_metrics: Any = None  # the resumed epoch's metric state, added after its first batch
        self._train_function: Any = None  # the model's own, while batches are being skipped
        self._keras_initial_epoch: Any = None
        self._agree: Callable[[bool], bool] | None = None  # the workers' agreement to stop, in a multi-worker job

    # Keras calls these -------------------------------------------------------------------

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        import tensorflow as tf

        model = self.model
        if self._state is None:
            state = tf.Module(name="training_state")
            state.progress = tf.Variable([0, 0], dtype=tf.int64, trainable=False)  # epochs, batches done
            state.metrics = tf.Variable(tf.zeros([0], tf.float64), shape=tf.TensorShape([None]), trainable=False)
            self._state = state
            self.target = tf.train.Checkpoint(model=model, training_state=state)
        if self._fit_ended:
            self._keras_initial_epoch = getattr(model, "_initial_epoch", None)
        else:
            # The last fit raised (on_train_end never came): as Keras's own callback does, this
            # fit starts again from the latest backup, and the steps after it are done again.
            self._restart_from_latest()
        self._fit_ended = False
        if self.restore_from is not None and not self._restored:
            if not model.built:
                raise InvalidOptionError(
                    f"model {model.name!r} is not built: build it before fit (give it a keras.Input, or call "
                    f"it on a batch) so that {self.restore_from.ref} can be restored into it"
                )
            self._state.model_state = list(model.non_trainable_variables)
            self.store.restore(self.restore_from, self.target)
            epochs, batches = (int(v) for v in self._state.progress.numpy())
            self.initial_epoch = epochs
            # What Keras's own BackupAndRestore does: fit starts its epochs there.
            model._initial_epoch = epochs
            if batches:
                self._saved_metrics = self._state.metrics.numpy()
                self._skip = self._skip_left = batches
                self._skip_epoch = epochs
                self._train_function = model.train_function
                model.train_function = self._skipping_train_function
            log.info("run %s: restored step %d (epoch %d, batch %d)", self.run.name, self.step, epochs, batches)
        self._restored = True
        strategy = getattr(model, "distribute_strategy", None)
        self._agree = stop_agreement(strategy, distributed.role(strategy))
        self._notice.install()

    def _stop_requested(self) -> bool:
        """At a batch's (or an epoch's) end: whether this process, or in a multi-worker job any
        worker, received SIGTERM. Every worker gets here at the same batches."""
        if self._agree is None:
            return self._notice.received
        return self._agree(self._notice.received)

    def _restart_from_latest(self) -> None:
        self._saved_metrics = None
        self._stop_skipping()
        self._skip = self._skip_left = 0
        self._skip_epoch = -1
        self._restored = False
        self.restore_from = rewind_to_latest(self.store, self.run)
        self.step = self.restore_from.step if self.restore_from is not None else 0
        self.initial_epoch = 0  # until the restore says otherwise
        self._saved_steps = {s for s in self._saved_steps if s <= self.step}
        self.model._initial_epoch = self._keras_initial_epoch

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        super().on_epoch_begin(epoch, logs)
        self._epoch = epoch
        self._batches_done = 0
        if epoch == self._skip_epoch:
            # Steps follow the batch index: this epoch began `_skip` steps before the restored one.
            self._epoch_base = self.step - self._skip

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self._epoch == self._skip_epoch and batch < self._skip:
            return  # a batch the killed process did; it was drawn, not trained
        steps = (self.params or {}).get("steps")
        self._batches_done = min(batch + 1, steps) if steps else batch + 1
        self._in_batch = True
        try:
            super().on_train_batch_end(batch, logs)
        finally:
            self._in_batch = False
        if not (steps and self._batches_done >= steps) and self._stop_requested():
            self._preempt()

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.preempted:
            return  # fit stopped mid-epoch on SIGTERM (exit_code=None): this epoch did not end
        self._epoch, self._batches_done = epoch + 1, 0
        self._skip_epoch = -1
        if not self.run.accepts(self.step):
            # Every batch of this epoch was done before the restore (a save on the last batch of
            # a dataset of unknown length): its end belongs to the restored step, already
            # written by the process that saved it or lost with it; nothing may be logged there.
            return
        super().on_epoch_end(epoch, logs)
        if self._stop_requested():
            self._preempt()

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._fit_ended = True
        self._notice.uninstall()
        self._stop_skipping()
        if self.model is not None:
            self.model._initial_epoch = self._keras_initial_epoch
        super().on_train_end(logs)
        if self._owns_run and not self.preempted:
            self.run.finish("finished")

    # ------------------------------------------------------------------------------------

    def _skipping_train_function(self, iterator: Any) -> Any:
        """The model's train function while the resumed epoch's done batches are skipped."""
        if self._skip_left > 0:
            # Drawn from the iterator as the killed process did, so the next batch is the one
            # it would have trained next; nothing is trained. Other callbacks get no logs.
            for _ in range(max(int(getattr(self.model, "steps_per_execution", 1) or 1), 1)):
                next(iterator)
                self._skip_left -= 1
            return {}
        self._train_function(iterator)
        self._stop_skipping()
        # The logs of this batch, with the epoch's restored metric state added in.
        return self.model.get_metrics_result()

    def _stop_skipping(self) -> None:
        if self._train_function is None:
            return
        model = self.model
        model.train_function = self._train_function
        self._train_function = None
        if self._saved_metrics is not None and len(self._saved_metrics):
            # The first resumed batch started from Keras's reset state (zeros); each metric
            # state is a sum, so adding the saved one gives what the uninterrupted run had
            # (float addition is commutative: bit for bit).
            offset = 0
            for v in _metric_variables(model):
                n = _size(v.shape)
                part = self._saved_metrics[offset:offset + n].reshape(tuple(v.shape)).astype(v.dtype)
                v.assign_add(part)
                offset += n
        self._saved_metrics = None

    def _save(self) -> None:
        steps = (self.params or {}).get("steps")
        if self._in_batch and steps and self._batches_done >= steps:
            # Validation still has to run; on resume the epoch's end would be logged again at
            # this step. Saved at the epoch's end instead, with the same weights.
            self._save_at_epoch_end = True
            return
        if self._state is not None:
            import numpy as np

            self._state.progress.assign([self._epoch, self._batches_done])
            # Seed-generator states are not reachable from the model's own checkpoint; read
            # at each save, as a model built by its first batch has none before.
            self._state.model_state = list(self.model.non_trainable_variables)
            values = [np.ravel(np.asarray(v.numpy(), dtype=np.float64)) for v in _metric_variables(self.model)]
            self._state.metrics.assign(np.concatenate(values) if values else np.zeros(0))
        super()._save()

    def _preempt(self) -> None:
        self.preempted = True
        if self.step not in self._saved_steps and self.run.accepts(self.step):
            self._save()
        stop_after_save(self.run, self._notice, self.step, self.exit_code)
        self.model.stop_training = True


def _metric_variables(model: Any) -> list[Any]:
    """The state of the model's metrics (loss tracker and compiled metrics), in a fixed order."""
    return [v for m in getattr(model, "metrics", []) for v in m.variables]


def _size(shape: Any) -> int:
    size = 1
    for d in shape:
        size *= int(d)
    return size


def _keep_best_metric(run: Run) -> str | None:
    """The metric the run's ``KeepBest`` rule ranks by, if it has one."""
    # Through the run: a follower (a non-chief worker) may run before the chief created the
    # run, and must rank (so save) at the same steps as the chief.
    best = run.retention_rule().keep_best
    return best.metric if best is not None else None


def _epochs_done(run: Run) -> int:
    """Epochs an earlier ``StoreCallback`` completed in ``run`` (its last ``epoch`` value)."""
    _, values = run.store.metric_series(run.name, "epoch")
    return int(values[-1]) if len(values) else 0


def _numbers(logs: Mapping[str, Any] | None) -> dict[str, float]:
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
