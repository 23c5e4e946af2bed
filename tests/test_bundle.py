"""The pure-Python tensor-bundle index reader against TensorFlow's own reader, and fuzzed."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ckptstore import bundle
from ckptstore.errors import BundleIndexError
from tests.helpers.models import seed_graph, tiny_module
from tests.helpers.skips import require_tensorflow


def _check_against_tf(prefix: str) -> bundle.Bundle:
    """Every tensor TF lists has our name, dtype, shape; every tensor's bytes pass their crc32c;
    plain numeric tensors decode to TF's values."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    ours = bundle.read_index(prefix)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    listed = {k for k, e in ours.entries.items() if not k.startswith("\x00")}
    assert listed == set(shapes)
    shards = {}
    for s in range(ours.header.num_shards):
        shards[s] = Path(bundle.data_file_name(prefix, s, ours.header.num_shards)).read_bytes()
    for name, e in ours.entries.items():
        if name in shapes:
            # dtypes without a numpy layout keep TensorFlow's enum ("dtype:21": variant)
            assert e.dtype in (dtypes[name].name, f"dtype:{dtypes[name].as_datatype_enum}"), name
            assert list(e.shape) == [int(d) for d in shapes[name]], name
        if not e.has_data:
            continue
        data = shards[e.shard_id][e.offset : e.offset + e.size]
        assert bundle.check_tensor_crc(e, data), name
        value = bundle.decode(e, data)
        if name in shapes and value is not None:
            np.testing.assert_array_equal(value, reader.get_tensor(name))
    return ours


@pytest.fixture(scope="module")
def tf():
    return require_tensorflow()


def test_tf2_checkpoint_with_strings_scalars_and_empty_tensors(tf, tmp_path: Path) -> None:
    m = tiny_module(2.0, 0.5)
    m.s = tf.Variable("hello")
    m.strs = tf.Variable(["a", "bb", ""])
    m.empty = tf.Variable(np.zeros((0, 3), np.float32))
    m.i = tf.Variable(7, dtype=tf.int64)
    m.h = tf.Variable(np.arange(6, dtype=np.float16))
    m.flag = tf.Variable(True)
    prefix = tf.train.Checkpoint(model=m).save(str(tmp_path / "ckpt"))
    ours = _check_against_tf(prefix)
    assert ours.header.num_shards == 1 and ours.header.little_endian
    assert ours.entries["model/strs/.ATTRIBUTES/VARIABLE_VALUE"].dtype == "string"
    assert ours.entries["model/empty/.ATTRIBUTES/VARIABLE_VALUE"].size == 0


def test_tf2_checkpoint_with_a_data_iterator(tf, tmp_path: Path) -> None:
    # TensorFlow's checkpoint guide saves the tf.data iterator: a variant tensor, whose crc32c
    # covers each element's length as 8 bytes and its own masked checksum.
    dataset = tf.data.Dataset.from_tensor_slices(tf.range(10.0)).repeat().batch(2)
    iterator = iter(dataset)
    next(iterator)
    prefix = tf.train.Checkpoint(iterator=iterator, v=tf.Variable(1.0)).save(str(tmp_path / "ckpt"))
    ours = _check_against_tf(prefix)
    e = ours.entries["iterator/.ATTRIBUTES/ITERATOR_STATE"]
    assert e.dtype == "dtype:21" and e.size > 0
    data = bytearray(Path(prefix + ".data-00000-of-00001").read_bytes()[e.offset : e.offset + e.size])
    data[len(data) // 2] ^= 1
    assert not bundle.check_tensor_crc(e, bytes(data))


def test_tf1_saver_seed_graph(tf, tmp_path: Path) -> None:
    from ckptstore.tf import formats

    sg = seed_graph(3.0)
    prefix = str(formats.for_target(sg.sess).save(sg.sess, tmp_path, "model.ckpt", 5))
    ours = _check_against_tf(prefix)
    assert bundle.decode(ours.entries["b"], Path(prefix + ".data-00000-of-00001").read_bytes()[ours.entries["b"].offset:][:4]) == 3.0


@pytest.mark.slow
def test_keras_model_with_optimizer_slots(tf, tmp_path: Path) -> None:
    keras = tf.keras
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="hidden"), keras.layers.Dense(1, name="out")])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((8, 4)), np.ones((8, 1)), verbose=0, epochs=1)
    prefix = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(str(tmp_path / "k"))
    _check_against_tf(prefix)


@pytest.mark.slow
def test_sharded_saver_with_partitioned_variables(tmp_path: Path) -> None:
    """Saver(sharded=True) over two CPU devices writes two data shards; the partitioned
    variable's slices are separate entries under binary keys. In a child process: the device
    count is fixed per process."""
    require_tensorflow()
    script = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
import tensorflow as tf
from tests.test_bundle import _check_against_tf
g = tf.Graph()
with g.as_default():
    with tf.device("/cpu:0"):
        v = tf.compat.v1.get_variable("v", shape=[10, 4], partitioner=tf.compat.v1.fixed_size_partitioner(2))
    with tf.device("/cpu:1"):
        w = tf.compat.v1.get_variable("w", shape=[3])
        s = tf.compat.v1.get_variable("s", shape=[], dtype=tf.string, initializer=tf.compat.v1.constant_initializer("xyz"))
    saver = tf.compat.v1.train.Saver(sharded=True)
    with tf.compat.v1.Session(config=tf.compat.v1.ConfigProto(device_count={{"CPU": 2}})) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        p = saver.save(sess, {str(tmp_path / "m")!r})
b = _check_against_tf(p)
assert b.header.num_shards == 2, b.header
assert len(b.entries["v"].slices) == 2
assert sum(1 for k in b.entries if k.startswith("\\x00")) == 2
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_crc32c_matches_known_vectors() -> None:
    assert bundle.crc32c(b"123456789") == 0xE3069283  # RFC 3720 check value
    assert bundle.unmask(bundle.mask(0xDEADBEEF)) == 0xDEADBEEF


def test_refuses_compressed_and_empty_indexes() -> None:
    with pytest.raises(BundleIndexError):
        bundle.parse_index(b"")
    with pytest.raises(BundleIndexError):
        bundle.parse_index(b"\0" * 48)


def test_fuzzed_index_never_crashes_or_hangs(tf, tmp_path: Path) -> None:
    """Flip, overwrite and truncate bytes of a real index under many seeds: each result either
    parses or raises BundleIndexError, nothing else."""
    m = tiny_module(1.0, 0.0)
    m.s = tf.Variable(["x", "yy"])
    prefix = tf.train.Checkpoint(model=m).save(str(tmp_path / "f"))
    good = Path(prefix + ".index").read_bytes()
    bundle.parse_index(good)
    refused = 0
    for seed in range(1500):
        rng = random.Random(seed)
        data = bytearray(good)
        op = seed % 3
        if op == 0:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif op == 1:
            data = data[: rng.randrange(len(data))]
        else:
            i = rng.randrange(len(data))
            data[i : i + 4] = bytes(rng.randrange(256) for _ in range(4))
        try:
            bundle.parse_index(bytes(data))
        except BundleIndexError:
            refused += 1
    assert refused > 1000  # block checksums catch nearly every change


def test_module_never_imports_tensorflow() -> None:
    code = "import sys, ckptstore.bundle as b; b.parse_index; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
