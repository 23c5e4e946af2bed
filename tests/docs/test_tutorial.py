"""The seed tutorial programs, rewritten with only their constructor lines changed, end to end.

Each program runs in a fresh interpreter: the TF1 one switches eager execution off for the whole
process, which must not leak into other tests. The lines marked ``# was:`` are the only ones that
differ from the vanilla TensorFlow tutorial (docs/python-api.md, "Coming from tf.train.Saver /
CheckpointManager", shows the same diff).
"""

from __future__ import annotations

import textwrap

import pytest

from tests.helpers.processes import run_py
from tests.helpers.skips import require_tensorflow

require_tensorflow()

pytestmark = pytest.mark.slow  # a fresh interpreter importing TensorFlow per program

TF1_TUTORIAL = textwrap.dedent(
    """
    import os, sys
    import tensorflow as tf
    import ckptstore
    tf.compat.v1.disable_eager_execution()
    store = ckptstore.open_store(sys.argv[1])
    run = store.start_run("tutorial")
    os.chdir(sys.argv[2])

    # --- training: save with a global step and a partial var_list ---
    w1 = tf.Variable(tf.random.normal(shape=[2]), name='w1')
    w2 = tf.Variable(tf.random.normal(shape=[5]), name='w2')
    scratch = tf.Variable(tf.zeros([3]), name='scratch')      # not in the var_list: not saved
    x = tf.compat.v1.placeholder("float", name="x")
    y = tf.compat.v1.placeholder("float", name="y")
    b = tf.Variable(1.0, name="bias")
    op = tf.add(tf.multiply(x, y), b, name="op_to_restore")
    saver = ckptstore.tf1.Saver(run, [w1, w2, b], max_to_keep=4, keep_checkpoint_every_n_hours=2)  # was: tf.compat.v1.train.Saver([w1, w2, b], max_to_keep=4, keep_checkpoint_every_n_hours=2)
    sess = tf.compat.v1.Session()
    sess.run(tf.compat.v1.global_variables_initializer())
    saved_w1 = sess.run(w1)
    path = saver.save(sess, 'my_test_model', global_step=1000)
    assert path == 'my_test_model-1000', path
    saver.save(sess, 'my_test_model', global_step=2000, write_meta_graph=False)
    assert saver.last_checkpoints == ['my_test_model-1000', 'my_test_model-2000'], saver.last_checkpoints
    # TensorFlow's files, where TensorFlow puts them; the store records them besides.
    assert {'checkpoint', 'my_test_model-1000.index', 'my_test_model-1000.meta', 'my_test_model-2000.index'} <= set(os.listdir('.'))
    sess.close()

    # --- restoring in a fresh graph, through import_meta_graph and latest_checkpoint ---
    with tf.Graph().as_default() as graph:
        sess = tf.compat.v1.Session()
        saver = ckptstore.tf1.import_meta_graph('my_test_model-1000.meta', run=run)  # was: tf.compat.v1.train.import_meta_graph('my_test_model-1000.meta')
        saver.restore(sess, ckptstore.tf1.latest_checkpoint('./'))                  # was: saver.restore(sess, tf.train.latest_checkpoint('./'))
        assert ckptstore.tf1.latest_checkpoint(run).endswith('my_test_model-2000')  # the stored copy
        w1 = [v for v in tf.compat.v1.global_variables() if v.op.name == 'w1'][0]
        assert (sess.run(w1) == saved_w1).all()
        x = graph.get_tensor_by_name("x:0")
        y = graph.get_tensor_by_name("y:0")
        op_to_restore = graph.get_tensor_by_name("op_to_restore:0")
        print("restored", sess.run(op_to_restore, {x: 5.0, y: 5.0}))

        # --- freeze, write, reload ---
        frozen = tf.compat.v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), ["op_to_restore"])
        with open(os.path.join(sys.argv[3], "frozen.pb"), "wb") as f:
            f.write(frozen.SerializeToString())
        run.freeze(sess, ["op_to_restore"], step=2000)
    with tf.Graph().as_default() as g2:
        gd = tf.compat.v1.GraphDef()
        with open(os.path.join(sys.argv[3], "frozen.pb"), "rb") as f:
            gd.ParseFromString(f.read())
        tf.import_graph_def(gd, name="")
        with tf.compat.v1.Session(graph=g2) as s2:
            print("frozen", s2.run("op_to_restore:0", {"x:0": 5.0, "y:0": 5.0}))
    g3 = store.import_frozen("tutorial@2000")
    with tf.compat.v1.Session(graph=g3) as s3:
        print("stored_frozen", s3.run("op_to_restore:0", {"x:0": 5.0, "y:0": 5.0}))

    # --- the dict form of var_list, restored by name into a graph built again ---
    with tf.Graph().as_default():
        v = tf.Variable(0.0, name="other_name_for_bias")
        saver = ckptstore.tf1.Saver(run, {'bias': v})  # was: tf.compat.v1.train.Saver({'bias': v})
        with tf.compat.v1.Session() as sess:
            saver.restore(sess, 'my_test_model-1000')
            print("dict", sess.run(v))
            sess.run(v.assign(1.0))
            saver.save(sess, 'dict_model', global_step=3000)
    print("steps", [c.step for c in store.checkpoints("tutorial")])
    run.finish()
    store.close()
    """
)

TF2_TUTORIAL = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    import ckptstore
    store = ckptstore.open_store(sys.argv[1])

    class Net(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.l1 = tf.keras.layers.Dense(5)
        def call(self, x):
            return self.l1(x)

    def toy_dataset():
        inputs = tf.range(10.)[:, None]
        labels = inputs * 5. + tf.range(5.)[None, :]
        return tf.data.Dataset.from_tensor_slices(dict(x=inputs, y=labels)).repeat().batch(2)

    def train_step(net, example, optimizer):
        with tf.GradientTape() as tape:
            output = net(example['x'])
            loss = tf.reduce_mean(tf.abs(output - example['y']))
        variables = net.trainable_variables
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        return loss

    def train_and_checkpoint(net, manager):
        ckpt.restore(manager.latest_checkpoint)
        if manager.latest_checkpoint:
            print("Restored from {}".format(manager.latest_checkpoint))
        else:
            print("Initializing from scratch.")
        for _ in range(50):
            example = next(iterator)
            loss = train_step(net, example, opt)
            ckpt.step.assign_add(1)
            if int(ckpt.step) % 10 == 0:
                save_path = manager.save()
                print("Saved checkpoint for step {}: {}".format(int(ckpt.step), save_path))

    net = Net()
    opt = tf.keras.optimizers.Adam(0.1)
    dataset = toy_dataset()
    iterator = iter(dataset)
    ckpt = tf.train.Checkpoint(step=tf.Variable(1), optimizer=opt, net=net, iterator=iterator)
    run = store.start_run("tf2-tutorial")
    manager = ckptstore.tf2.CheckpointManager(ckpt, run, max_to_keep=3)  # was: tf.train.CheckpointManager(ckpt, './tf_ckpts', max_to_keep=3)
    train_and_checkpoint(net, manager)
    print("kept", len(manager.checkpoints), [c.step for c in store.checkpoints("tf2-tutorial")])

    # A second process would do exactly this; a fresh model, optimizer and manager here.
    opt = tf.keras.optimizers.Adam(0.1)
    net = Net()
    dataset = toy_dataset()
    iterator = iter(dataset)
    ckpt = tf.train.Checkpoint(step=tf.Variable(1), optimizer=opt, net=net, iterator=iterator)
    manager = ckptstore.tf2.CheckpointManager(ckpt, run, max_to_keep=3)  # was: tf.train.CheckpointManager(ckpt, './tf_ckpts', max_to_keep=3)
    train_and_checkpoint(net, manager)
    print("step", int(ckpt.step))
    run.finish()
    store.close()
    """
)


def _lines(out) -> dict[str, str]:
    assert out.returncode == 0, out.stderr[-3000:]
    found = {}
    for line in out.stdout.splitlines():
        key, _, rest = line.partition(" ")
        found[key] = rest
    return found


def test_tf1_tutorial_with_only_its_constructor_lines_changed(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    out = run_py(TF1_TUTORIAL, str(tmp_path / "store"), str(cwd), str(tmp_path))
    got = _lines(out)
    assert float(got["restored"]) == 26.0
    assert float(got["frozen"]) == 26.0
    assert float(got["stored_frozen"]) == 26.0
    assert float(got["dict"]) == 1.0
    assert got["steps"] == "[1000, 2000, 3000]"


def test_tf2_manager_loop_with_only_its_constructor_line_changed(tmp_path):
    out = run_py(TF2_TUTORIAL, str(tmp_path / "store"))
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "Initializing from scratch." in text
    assert "Restored from " in text and "tf-dirs" in text  # TF's files, in the run's working directory
    # Saves at ckpt steps 10..50 numbered 1..5 by save_counter, then 6..10 after the restore.
    assert "kept 3 [3, 4, 5]" in text
    assert text.splitlines()[-1] == "step 100"  # 50 steps, saved at 50, restored, 50 more
