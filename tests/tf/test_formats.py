"""Checkpoint formats: a restore that does not fit changes no variable; unusual variable graphs restore."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.hardening import (
    ab_module,
    one_line,
    tf1_ab,
)
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()

from ckptstore.errors import (  # noqa: E402
    RestoreMismatchError,
)

# =========================================================================== 8. no partial TF2 restore


@pytest.mark.parametrize(
    "target_kwargs",
    [
        {"a": (9.0, 9.0), "b": (7.0, 7.0, 7.0, 7.0)},  # b has another shape
        {"a": (9.0, 9.0, 9.0, 9.0, 9.0), "b": (7.0, 7.0, 7.0)},  # a has another shape
        {"a": (9.0, 9.0), "b": (7.0, 7.0, 7.0), "b_dtype": "float64"},  # b has another dtype
        {"a": (9.0, 9.0), "b": (7.0, 7.0, 7.0), "extra": True},  # the target has a variable more
    ],
    ids=["b-shape", "a-shape", "b-dtype", "extra-variable"],
)
def test_a_mismatched_tf2_restore_changes_no_variable(sqlite_store, target_kwargs):
    with sqlite_store.start_run("r") as run:
        run.save(ab_module((1.0, 2.0), (1.0, 2.0, 3.0)), 1)
    target = ab_module(**target_kwargs)
    before = {v.name: v.numpy().copy() for v in target.variables}
    with pytest.raises(RestoreMismatchError) as info:
        sqlite_store.restore("r@1", target)
    one_line(info.value)
    after = {v.name: v.numpy() for v in target.variables}
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=f"{name} was changed by a refused restore")


def test_a_mismatched_tf1_restore_changes_no_variable(sqlite_store):
    sess, _, _ = tf1_ab((1.0, 2.0), (1.0, 2.0, 3.0))
    with sqlite_store.start_run("r") as run:
        run.save(sess, 1)
    sess.close()
    target, a, b = tf1_ab((9.0, 9.0), (7.0, 7.0, 7.0, 7.0))
    try:
        with pytest.raises(RestoreMismatchError) as info:
            sqlite_store.restore("r@1", target)
        one_line(info.value)
        va, vb = target.run([a, b])
        np.testing.assert_array_equal(va, [9.0, 9.0])
        np.testing.assert_array_equal(vb, [7.0, 7.0, 7.0, 7.0])
    finally:
        target.close()


# =========================================================================== found in review
def test_a_variable_reachable_by_two_paths_restores_and_unknown_rank_is_no_error(sqlite_store):
    src = tf.Module()
    src.v = tf.Variable([1.0, 2.0])
    src.u = tf.Variable([1.0, 2.0, 3.0], shape=tf.TensorShape(None))
    ck = sqlite_store.start_run("alias").save(src, 1)
    dst = tf.Module()
    dst.v = tf.Variable([0.0, 0.0])
    dst.alias = dst.v  # the same variable under a second name, as TensorFlow allows
    dst.u = tf.Variable([0.0], shape=tf.TensorShape(None))
    sqlite_store.restore(ck, dst)
    assert dst.v.numpy().tolist() == [1.0, 2.0] and dst.u.numpy().tolist() == [1.0, 2.0, 3.0]
