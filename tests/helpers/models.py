"""The tiny TensorFlow models every test saves and restores.

* the seed's TF1 graph, ``op_to_store = x * y + b`` (``b`` a variable, 1 by default) with
  float32 placeholders ``x`` and ``y`` and a second output ``diff = x - y``;
* a TF2 ``tf.Module`` with ``w`` (3x2, filled with ``scale``) and ``b`` (2, filled with ``bias``).

TensorFlow is imported inside the functions: importing this module costs nothing. The shared
instances are fixtures in ``tests/conftest.py`` (``seed_session``, ``new_seed_graph``,
``tiny_model``); the stress harness builds its writers' models here too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any


@dataclass
class SeedGraph:
    """The seed's graph in a session of its own, and its variable ``b``."""

    graph: Any
    sess: Any
    b: Any

    def __iter__(self):  # g, sess, b = seed_graph()
        return iter((self.graph, self.sess, self.b))

    def run(self, x: float = 5.0, y: float = 5.0) -> float:
        return run_op(self.sess, x, y)


def seed_graph(b: float = 1.0) -> SeedGraph:
    """Build the seed's graph (``op_to_store = x * y + b``) in a new session, ``b`` initialised."""
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, name="x")
        y = tf.compat.v1.placeholder(tf.float32, name="y")
        var = tf.Variable(b, name="b")
        tf.add(tf.multiply(x, y), var, name="op_to_store")
        tf.subtract(x, y, name="diff")
        init = tf.compat.v1.global_variables_initializer()
    sess = tf.compat.v1.Session(graph=g)
    sess.run(init)
    return SeedGraph(g, sess, var)


def run_op(sess: Any, x: float = 5.0, y: float = 5.0) -> float:
    """``op_to_store`` evaluated in ``sess``: 26.0 for the defaults when b = 1."""
    return float(sess.run("op_to_store:0", {"x:0": x, "y:0": y}))


def empty_session() -> Any:
    """A session over an empty graph: what a fresh process restores a TF1 checkpoint into."""
    import tensorflow as tf

    return tf.compat.v1.Session(graph=tf.Graph())


def vanilla_tf1_restore(directory: Any) -> Any:
    """What a user without ckptstore does with a checkpoint directory: import the newest
    checkpoint's meta graph into a new graph, restore it with plain ``tf.compat.v1`` and return
    the session."""
    import tensorflow as tf

    prefix = tf.train.latest_checkpoint(str(directory))
    g = tf.Graph()
    with g.as_default():
        saver = tf.compat.v1.train.import_meta_graph(prefix + ".meta")
        sess = tf.compat.v1.Session(graph=g)
        saver.restore(sess, prefix)
    return sess


@functools.cache
def _tiny_class() -> type:
    import tensorflow as tf

    class Tiny(tf.Module):
        def __init__(self, scale: float, bias: float) -> None:
            super().__init__()
            self.w = tf.Variable(tf.fill([3, 2], float(scale)), name="w")
            self.b = tf.Variable(tf.fill([2], float(bias)), name="b")

    return Tiny


def tiny_module(scale: float = 1.0, bias: float = 0.0) -> Any:
    """A new TF2 ``tf.Module``: ``w`` (3x2 float32) filled with ``scale``, ``b`` (2) with ``bias``."""
    return _tiny_class()(scale, bias)
