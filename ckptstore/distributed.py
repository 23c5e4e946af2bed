"""This process's role in a ``tf.distribute`` job: who records into the store, who only takes part.

A multi-worker job runs the same script in every process, and collective ops (the all-reduce
of a ``SyncOnRead`` variable read while saving) need every worker to call ``save``. TensorFlow's
own rule (``multi_worker_util.is_chief``, Keras's ``distributed_file_utils``) decides who
writes the real files:

* ``chief`` when the cluster has a chief job (``ParameterServerStrategy``'s coordinator, or an
  explicit chief with ``MultiWorkerMirroredStrategy``);
* else ``worker`` 0;
* an ``evaluator`` is a job of its own (TensorFlow counts it as a chief of its own summaries);
* a single process (no ``TF_CONFIG``, ``MirroredStrategy``, ``OneDeviceStrategy``) is its own chief.

Every other task (``worker`` 1.., ``ps``) writes to a private temporary directory that is deleted
at once: ``ckptstore.store.Store.start_run`` gives it a *follower* run (``ckptstore.run``) that
creates no run, row or object.

Workers that run the same steps (``MultiWorkerMirroredStrategy``: :attr:`Role.lockstep`) can
agree through the strategy itself: :func:`sum_over_workers` is one all-reduce of a few numbers,
which every worker calls at the same point of the script. ``Store.start_run(..., strategy=)``
uses it so that the followers learn what the chief decided (started, resumed or refused the
run), and the preemption helpers so that a SIGTERM to any worker stops all of them at one step.

The role comes from the strategy when one is given (``strategy.cluster_resolver.task_type`` /
``task_id``, ``strategy.extended.should_checkpoint``), else from ``$TF_CONFIG``. This module is
standard library only: reading a role never imports TensorFlow.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidOptionError

#: Task types TensorFlow's cluster specs use.
TASK_TYPES = ("chief", "worker", "ps", "evaluator")


@dataclass(frozen=True)
class Role:
    """One process's place in a job (see the module docstring)."""

    #: "chief", "worker", "ps", "evaluator", or None for a single process.
    task_type: str | None = None
    task_id: int = 0
    #: Job name -> number of tasks ({} for a single process).
    cluster: Mapping[str, int] = field(default_factory=dict)
    #: Whether this process records: commits checkpoints, logs metrics, creates the run.
    is_chief: bool = True

    @property
    def kind(self) -> str:
        """"single", "chief", "worker", "ps" or "evaluator" (a chief worker 0 is "chief")."""
        if self.task_type is None:
            return "single"
        return "chief" if self.is_chief and self.task_type in ("chief", "worker") else self.task_type

    @property
    def num_workers(self) -> int:
        """Processes that train (chief plus workers); 1 for a single process."""
        return max(1, self.cluster.get("chief", 0) + self.cluster.get("worker", 0))

    @property
    def multi_worker(self) -> bool:
        """Whether other processes take part in this one's saves."""
        return self.num_workers > 1 or bool(self.cluster.get("ps"))

    @property
    def lockstep(self) -> bool:
        """Whether several workers run the same steps (``MultiWorkerMirroredStrategy``), so that
        they can agree through a collective. Not a ``ParameterServerStrategy`` job: only its
        coordinator runs the training loop."""
        return self.num_workers > 1 and not self.cluster.get("ps")

    def describe(self) -> str:
        """For messages: ``worker 1 of a 2-worker job``."""
        if self.task_type is None:
            return "a single process"
        return f"{self.task_type} {self.task_id} of a {self.num_workers}-worker job"


SINGLE = Role()


def role(strategy: Any = None, *, tf_config: str | None = None) -> Role:
    """This process's role: from ``strategy`` if given, else from ``$TF_CONFIG`` (or
    ``tf_config``, its JSON text). A ``TF_CONFIG`` whose task is not in its cluster, or that
    disagrees with the strategy, is one :class:`InvalidOptionError` line.

    >>> role(tf_config='{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}').kind
    'worker'
    """
    text = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    from_env = _from_tf_config(text)
    if strategy is None:
        return from_env
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None) if resolver is not None else None
    if not task_type:
        # MirroredStrategy, OneDeviceStrategy, the default strategy: one process.
        return SINGLE
    task_id = int(getattr(resolver, "task_id", 0) or 0)
    should = getattr(getattr(strategy, "extended", None), "should_checkpoint", None)
    cluster = _cluster_sizes(resolver)
    chief = bool(should) if should is not None else _is_chief(cluster, task_type, task_id)
    found = Role(task_type, task_id, cluster, chief)
    if from_env.task_type is not None and (from_env.task_type, from_env.task_id) != (task_type, task_id):
        raise InvalidOptionError(
            f"TF_CONFIG names {from_env.task_type} {from_env.task_id} but the strategy runs as "
            f"{task_type} {task_id}: set TF_CONFIG for this task before creating the strategy"
        )
    return found


def sum_over_workers(strategy: Any) -> Callable[[Sequence[float]], list[float]]:
    """A function that sums a few numbers over every worker of ``strategy``'s job: one
    all-reduce (a ``tf.function`` traced at its first call). Every worker must call it at the
    same point of the script, as any collective (else the others wait). Each of a worker's
    replicas contributes its values, so use it for flags (> 0) or values only one worker gives.
    Imports TensorFlow when called (the strategy exists, so it is loaded already)."""
    import tensorflow as tf

    def total(values: Any) -> Any:
        per_replica = strategy.run(tf.identity, args=(values,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    traced: Any = tf.function(total, autograph=False)

    def call(values: Sequence[float]) -> list[float]:
        # float64: a step number of up to 2**53 crosses exactly.
        return [float(v) for v in traced(tf.constant(list(values), tf.float64)).numpy()]

    return call


def _cluster_sizes(resolver: Any) -> dict[str, int]:
    try:
        spec = resolver.cluster_spec().as_dict()
    except Exception:  # a resolver without a spec (e.g. a TPU one): sizes unknown
        return {}
    return {job: len(tasks) for job, tasks in spec.items()}


def _is_chief(cluster: Mapping[str, int], task_type: str, task_id: int) -> bool:
    # tensorflow/python/distribute/multi_worker_util.py: is_chief.
    if task_type in ("chief", "evaluator"):
        return True
    return "chief" not in cluster and task_type == "worker" and task_id == 0


def _from_tf_config(text: str) -> Role:
    if not text.strip():
        return SINGLE
    try:
        config = json.loads(text)
    except ValueError:
        raise InvalidOptionError("TF_CONFIG is not valid JSON") from None
    if not isinstance(config, dict):
        raise InvalidOptionError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    cluster_spec = config.get("cluster") or {}
    task = config.get("task") or {}
    if not isinstance(cluster_spec, dict) or not isinstance(task, dict):
        raise InvalidOptionError("TF_CONFIG's 'cluster' and 'task' must be JSON objects")
    if not cluster_spec:
        return SINGLE
    cluster: dict[str, int] = {}
    for job, tasks in cluster_spec.items():
        # A job is a list of addresses, or a dict {index: address} (sparse, as TF allows).
        if not isinstance(tasks, (list, dict)):
            raise InvalidOptionError(f"TF_CONFIG's job {job!r} must list its task addresses")
        cluster[str(job)] = len(tasks)
    task_type = task.get("type")
    try:
        task_id = int(task.get("index", 0))
    except (TypeError, ValueError):
        raise InvalidOptionError(f"TF_CONFIG's task index {task.get('index')!r} is not a number") from None
    if task_type is None:
        raise InvalidOptionError("TF_CONFIG has a cluster but no task type: set task.type and task.index")
    if task_type not in TASK_TYPES:
        raise InvalidOptionError(f"TF_CONFIG's task type {task_type!r} is not one of {', '.join(TASK_TYPES)}")
    # TensorFlow leaves the evaluator out of the cluster; every other task must be in it.
    if task_type != "evaluator" and not 0 <= task_id < cluster.get(task_type, 0):
        jobs = ", ".join(f"{job} x{n}" for job, n in sorted(cluster.items()))
        raise InvalidOptionError(
            f"TF_CONFIG names task {task_type} {task_id}, which its cluster ({jobs}) does not have: "
            "this process was given another job's TF_CONFIG"
        )
    return Role(str(task_type), task_id, cluster, _is_chief(cluster, str(task_type), task_id))
