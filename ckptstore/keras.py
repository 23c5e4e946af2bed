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
      rule. ``target`` defaults to ``tf.train.Checkpoint(model=<the model>)``, which
      ``store.restore(ref, fresh_model)`` reads back.
    * ``monitor`` names a metric (a Keras log key, e.g. ``"val_loss"``) whose latest value is
      also logged, under that name, at each checkpoint's step: a ``KeepBest(monitor)``
      retention rule then ranks every checkpoint, even when the metric is only computed per
      epoch.

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
            raise ValueError(f"save_every_n_steps must be a whole number >= 1, got {save_every_n_steps!r}")
        if isinstance(initial_step, bool) or not isinstance(initial_step, int) or initial_step < 0:
            raise ValueError(f"initial_step must be a whole number >= 0, got {initial_step!r}")
        self.run = run
        self.save_every_n_steps = save_every_n_steps
        self.save_every_epoch = save_every_epoch
        self.monitor = monitor
        self.target = target
        self.epoch_prefix = epoch_prefix
        self.step = initial_step
        self.saved: list["CheckpointInfo"] = []
        self._last: dict[str, float] = {}
        self._saved_steps: set[int] = set()

    # Keras calls these -------------------------------------------------------------------

    def on_train_batch_end(self, batch: int, logs: Optional[Mapping[str, Any]] = None) -> None:
        self.step += 1
        values = _numbers(logs)
        if values:
            self.run.log(self.step, **values)
            self._last.update(values)
        if self.save_every_n_steps and self.step % self.save_every_n_steps == 0:
            self._save()

    def on_epoch_end(self, epoch: int, logs: Optional[Mapping[str, Any]] = None) -> None:
        values = _numbers(logs)
        if values:
            self.run.log(self.step, **{self.epoch_prefix + k: v for k, v in values.items()})
            self._last.update(values)
        if self.save_every_epoch and self.step not in self._saved_steps:
            self._save()

    def on_train_end(self, logs: Optional[Mapping[str, Any]] = None) -> None:
        self.run.flush()

    # ------------------------------------------------------------------------------------

    def _save(self) -> None:
        if self.monitor is not None:
            value = self._last.get(self.monitor)
            if value is None:
                log.warning("monitored metric %r not seen yet at step %d", self.monitor, self.step)
            else:
                self.run.log(self.step, **{self.monitor: value})
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
