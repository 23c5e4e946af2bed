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

from .errors import InvalidOptionError

if TYPE_CHECKING:
    from .records import CheckpointInfo
    from .run import Run

log = logging.getLogger(__name__)

__all__ = ["StoreCallback"]


class StoreCallback(keras.callbacks.Callback):
    """Log batch and epoch metrics to ``run`` and save checkpoints under its retention rule.

    * Every training batch advances a global step (``initial_step`` + batches so far, across
      epochs) and logs the batch's metrics at that step under their Keras names (``loss``, ...).
    * At the end of each epoch its metrics (including validation ones) are logged at the
      current step with ``epoch_prefix`` (``epoch_loss``, ``epoch_val_loss``, ...).
    * A checkpoint is saved every ``save_every_n_steps`` steps and/or at the end of every epoch
      (``save_every_epoch``), via ``run.save(target, step)``, which applies the run's retention
      rule; a step is never saved twice. ``target`` defaults to
      ``tf.train.Checkpoint(model=<the model>)``, which ``store.restore(ref, fresh_model)``
      reads back.
    * ``monitor`` names a Keras log key (``"loss"``, ``"val_loss"``, ...) to log, under that
      name, at a checkpoint's step, so that a ``KeepBest(monitor)`` retention rule can rank the
      checkpoint. It is logged only with a value computed from the saved weights, never a
      value left over from an earlier batch or epoch:

      - at an epoch-end save, the epoch's value (for ``val_*``: this epoch's validation);
      - at a step save, the batch's value when the metric is in the batch logs (``loss``);
      - a step save on an epoch's last batch of a metric Keras only reports per epoch
        (``val_*``) is made at the epoch's end instead, with the epoch's value: validation
        does not change the weights, so the checkpoint and its step are the same;
      - otherwise (a step save mid-epoch of a per-epoch metric, an epoch without validation
        under ``validation_freq``, or a dataset of unknown length, where the last batch is
        only known after the fact) nothing is logged and the checkpoint does not rank:
        retention treats a checkpoint without the metric as never best.

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
        initial_step: int = 0,
        epoch_prefix: str = "epoch_",
    ) -> None:
        super().__init__()
        if save_every_n_steps is not None and (
            isinstance(save_every_n_steps, bool) or not isinstance(save_every_n_steps, int) or save_every_n_steps < 1
        ):
            raise InvalidOptionError(f"save_every_n_steps must be a whole number >= 1, got {save_every_n_steps!r}")
        if isinstance(initial_step, bool) or not isinstance(initial_step, int) or initial_step < 0:
            raise InvalidOptionError(f"initial_step must be a whole number >= 0, got {initial_step!r}")
        self.run = run
        self.save_every_n_steps = save_every_n_steps
        self.save_every_epoch = save_every_epoch
        self.monitor = monitor
        self.target = target
        self.epoch_prefix = epoch_prefix
        self.step = initial_step
        self.saved: list["CheckpointInfo"] = []
        self._saved_steps: set[int] = set()
        self._save_at_epoch_end = False  # a step save deferred until the epoch's metrics exist
        self._log_keys: set[str] = set()  # every key Keras logged during this fit
        self._saved_before_fit = 0
        self._epoch_base = initial_step  # the step before the current epoch's first batch

    # Keras calls these -------------------------------------------------------------------

    def on_train_begin(self, logs: Optional[Mapping[str, Any]] = None) -> None:
        self._save_at_epoch_end = False
        self._log_keys = set()
        self._saved_before_fit = len(self.saved)

    def on_epoch_begin(self, epoch: int, logs: Optional[Mapping[str, Any]] = None) -> None:
        self._epoch_base = self.step

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
        if values:
            self.run.log(self.step, **values)
            self._log_keys.update(values)
        every = self.save_every_n_steps
        if not (every and self.step // every > prev // every):  # a multiple of `every` reached
            return
        if self.monitor is None or self.monitor in values:
            self._save(values.get(self.monitor) if self.monitor is not None else None)
            return
        # `batch` is the index of the epoch's last batch run so far (with steps_per_execution,
        # of the last one of the group); `steps` is None for a dataset of unknown length.
        steps = (self.params or {}).get("steps")
        if steps and batch + 1 >= steps:
            # Validation runs between this batch and on_epoch_end and does not train, so the
            # checkpoint saved there holds these weights, with the epoch's fresh value.
            self._save_at_epoch_end = True
            return
        log.debug(
            "checkpoint at step %d saved without %r: it is only computed at the end of an epoch",
            self.step, self.monitor,
        )
        self._save(None)

    def on_epoch_end(self, epoch: int, logs: Optional[Mapping[str, Any]] = None) -> None:
        values = _numbers(logs)
        if values:
            self.run.log(self.step, **{self.epoch_prefix + k: v for k, v in values.items()})
            self._log_keys.update(values)
        due = self._save_at_epoch_end or self.save_every_epoch
        self._save_at_epoch_end = False
        if not due or self.step in self._saved_steps:
            return
        value = values.get(self.monitor) if self.monitor is not None else None
        if self.monitor is not None and value is None:
            log.debug("checkpoint at step %d saved without %r: not in epoch %d's logs", self.step, self.monitor, epoch)
        self._save(value)

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

    def _save(self, monitor_value: Optional[float]) -> None:
        if monitor_value is not None and self.monitor is not None:
            self.run.log(self.step, **{self.monitor: monitor_value})
        target = self.target
        if target is None:
            import tensorflow as tf

            # Built per save: the model's optimizer and variables are created lazily by fit.
            target = tf.train.Checkpoint(model=self.model)
        self.saved.append(self.run.save(target, self.step))
        self._saved_steps.add(self.step)


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
