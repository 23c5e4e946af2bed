"""The tensor-bundle writer of asynchronous saves: the same bytes TensorFlow writes, digests that
are the files' own, and nothing left behind when it refuses."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ckptstore import bundle, bundle_writer
from ckptstore.files.digest import digest_file
from tests.helpers.skips import require_tensorflow


@pytest.fixture(scope="module")
def tf():
    return require_tensorflow()


def _items(values: dict[str, object]) -> list[bundle_writer.Item]:
    out = []
    for name, v in values.items():
        arr = np.asarray(v)
        if arr.dtype == object:
            out.append((name, bundle_writer.STRING_ENUM, arr.shape, list(arr.reshape(-1))))
        else:
            out.append((name, bundle_writer.NUMERIC_ENUMS[arr.dtype.name], arr.shape, np.ascontiguousarray(arr)))
    return out


def _same_files(a: str, b: str) -> None:
    for suffix in (".index", ".data-00000-of-00001"):
        assert Path(a + suffix).read_bytes() == Path(b + suffix).read_bytes(), suffix


def _every_dtype() -> dict[str, object]:
    import ml_dtypes

    rng = np.random.default_rng(1)
    values: dict[str, object] = {
        "scalar": np.float32(3.0),
        "dense/kernel": rng.random((5, 7)).astype(np.float32),
        "f64": rng.random(3),
        "i8": np.array([-1, 2], np.int8), "i16": np.array([-300], np.int16), "i32": np.arange(4, dtype=np.int32),
        "i64": np.arange(10, dtype=np.int64), "u8": np.array([255], np.uint8), "u16": np.array([7], np.uint16),
        "u32": np.array([7], np.uint32), "u64": np.array([2**63], np.uint64),
        "flags": np.array([True, False, True]),
        "half": rng.random(4).astype(np.float16),
        "bf16": np.array([1.5, -2.0], dtype=ml_dtypes.bfloat16),
        "c64": np.array([1 + 2j], np.complex64), "c128": np.array([3 - 1j], np.complex128),
        "empty": np.zeros((0, 3), np.float32),
        "empty_strings": np.array([], dtype=object),
        "strings": np.array([[b"hello", b""], [b"x" * 300, b"\x00\xff"]], dtype=object),  # 300: a 2-byte varint
        "one_string": np.array(b"scalar", dtype=object),
        "unicode/\u00e9t\u00e9": np.float32(1.0),  # keys compare as UTF-8 bytes
    }
    return values


def test_same_bytes_as_savev2_for_every_dtype(tf, tmp_path: Path) -> None:
    values = _every_dtype()
    names = list(values)
    tf.raw_ops.SaveV2(prefix=str(tmp_path / "tf"), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(values[n]) for n in names])
    digests = bundle_writer.write_bundle(tmp_path / "own", _items(values))
    _same_files(str(tmp_path / "tf"), str(tmp_path / "own"))
    # The digests are those of the files written, and nothing else is left in the directory.
    assert digests == {n: digest_file(tmp_path / n) for n in ("own.index", "own.data-00000-of-00001")}
    assert sorted(os.listdir(tmp_path)) == sorted(["tf.index", "tf.data-00000-of-00001", *digests])
    reader = tf.train.load_checkpoint(str(tmp_path / "own"))
    for name, v in values.items():
        np.testing.assert_array_equal(np.asarray(reader.get_tensor(name)), np.asarray(v), err_msg=name)
    # Our own index reader agrees, crc32c of every tensor included.
    ours = bundle.read_index(tmp_path / "own")
    data = (tmp_path / "own.data-00000-of-00001").read_bytes()
    for e in ours.entries.values():
        assert bundle.check_tensor_crc(e, data[e.offset:e.offset + e.size]), e.name


def test_index_of_many_blocks_same_as_tensorflow(tf, tmp_path: Path) -> None:
    """Over 256 KiB of entries: several data blocks, restart points, shortened index keys."""
    rng = np.random.default_rng(3)
    # Long names that share prefixes only partly: entries of ~250 bytes, ~3 data blocks.
    names = [f"model/layer_{i:05d}/{'sublayer/' * (i % 3)}{rng.bytes(100).hex()}/.ATTRIBUTES/VARIABLE_VALUE"
             for i in range(3000)]
    names += ["model/layer_00010/kernel/.ATTRIBUTES/VARIABLE_VALUE\xff"]  # an index key not shortened
    values = {n: np.float32(i) for i, n in enumerate(names)}
    tf.raw_ops.SaveV2(prefix=str(tmp_path / "tf"), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(values[n]) for n in names])
    bundle_writer.write_bundle(tmp_path / "own", _items(values))
    assert (tmp_path / "own.index").stat().st_size > 2 * 262144
    _same_files(str(tmp_path / "tf"), str(tmp_path / "own"))


def test_large_tensors_cross_chunks(tf, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    # 3 MB and a bit (four 1 MB pieces, the last ragged), a small one, a long string.
    values = {"big": rng.random((3 << 20) // 8 + 5), "after": np.int32(5),
              "text": np.array([b"a" * 2_500_000, b"b"], dtype=object), "more": rng.random(300_001).astype(np.float32)}
    tf.raw_ops.SaveV2(prefix=str(tmp_path / "tf"), tensor_names=list(values), shape_and_slices=[""] * len(values),
                      tensors=[tf.constant(v) for v in values.values()])
    digests = bundle_writer.write_bundle(tmp_path / "own", _items(values))
    _same_files(str(tmp_path / "tf"), str(tmp_path / "own"))
    assert digests["own.data-00000-of-00001"] == digest_file(tmp_path / "own.data-00000-of-00001")


@pytest.mark.parametrize("items, why", [
    ([("a", 1, (1,), np.zeros(1, np.float32)), ("a", 1, (1,), np.zeros(1, np.float32))], "unique"),
    ([("", 1, (1,), np.zeros(1, np.float32))], "unique"),
    ([("a", 1, (1,), np.zeros(1, np.float32)), ("v", 21, (), object())], "not written here"),
    ([("a", 1, (2,), np.zeros((2, 2), np.float32)[:, 0])], "C-contiguous"),
])
def test_refuses_what_it_does_not_write_and_leaves_nothing(tmp_path: Path, items, why) -> None:
    with pytest.raises(ValueError, match=why):
        bundle_writer.write_bundle(tmp_path / "p", items)
    assert os.listdir(tmp_path) == []


def test_tf2_snapshot_writes_what_checkpoint_write_writes(tf, tmp_path: Path) -> None:
    """A Keras 3 model with its optimizer, a string, an int64 and a plain tf.Module: the async
    save's files are byte for byte those of tf.train.Checkpoint.write, so it stores the same
    objects as a blocking save of the same values."""
    import keras

    from ckptstore.tf import formats

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(), "mse")
    model.fit(np.ones((8, 4)), np.ones((8, 2)), verbose=0)
    extra = tf.Module()
    extra.big = tf.Variable(tf.random.normal([300, 300]))  # above the copy threshold: copied at snapshot
    extra.name_ = tf.Variable("hello")
    ckpt = tf.train.Checkpoint(model=model, opt=model.optimizer, extra=extra, step=tf.Variable(7, dtype=tf.int64))
    ckpt.write(str(tmp_path / "tf"))
    snap = formats.for_target(ckpt).snapshot(ckpt, tmp_path, "own", 1)
    assert snap is not None and snap.digests_itself
    path, digests = snap.write(tmp_path, "own", 1)
    _same_files(str(tmp_path / "tf"), str(path))
    assert digests == {n: digest_file(tmp_path / n) for n in ("own-1.index", "own-1.data-00000-of-00001")}
    assert not snap.items  # the snapshot lets go of its arrays once written


def test_tf2_snapshot_with_a_variant_is_written_by_tensorflow(tf, tmp_path: Path) -> None:
    """A tf.data iterator saves its state as a variant tensor: TensorFlow writes that snapshot,
    and it restores."""
    from ckptstore.tf import formats

    it = iter(tf.data.Dataset.range(10))
    next(it)
    ckpt = tf.train.Checkpoint(it=it)
    snap = formats.for_target(ckpt).snapshot(ckpt, tmp_path, "it", 1)
    assert snap is not None and not snap.digests_itself
    path, digests = snap.write(tmp_path, "it", 1)
    assert digests == {}
    it2 = iter(tf.data.Dataset.range(10))
    tf.train.Checkpoint(it=it2).read(str(path)).assert_consumed()
    assert int(next(it2)) == 1


def test_host_buffers_are_reused_from_snapshot_to_snapshot() -> None:
    """The second fill copies into the first fill's arrays (no fresh memory to fault in); a
    tensor whose shape changed gets a new array, and one no longer saved is let go."""
    from ckptstore.tf.snapshot import HostBuffers

    def item(name: str, value: np.ndarray) -> bundle_writer.Item:
        return (name, bundle_writer.NUMERIC_ENUMS[value.dtype.name], value.shape, value)

    buffers = HostBuffers()
    a, b = np.ones((64, 64), np.float32), np.arange(5, dtype=np.int64)
    first = buffers.fill([item("a", a), item("b", b), ("s", bundle_writer.STRING_ENUM, (), [b"x"])])
    assert not np.shares_memory(first[0][3], a)  # a copy, not the caller's array
    a += 1  # the caller changes its values after the snapshot
    assert (first[0][3] == 1).all()
    second = buffers.fill([item("a", a), item("b", np.arange(6, dtype=np.int64))])
    assert second[0][3] is first[0][3] and (second[0][3] == 2).all()
    assert second[1][3] is not first[1][3] and second[1][3].shape == (6,)
    buffers.fill([item("a", a)])
    assert set(buffers.arrays) == {"a"}


def test_async_saves_of_a_run_reuse_one_set_of_buffers(sqlite_store, tf) -> None:
    m = tf.Module()
    m.w = tf.Variable(tf.fill([256, 256], 1.0))
    run = sqlite_store.start_run("reuse")
    run.save(m, 1, blocking=False)
    run.wait()
    kept = run._saves._buffers  # noqa: SLF001 - what the queue keeps between saves
    assert len(kept) == 1
    array = next(iter(kept[0].arrays.values()))
    m.w.assign(tf.fill([256, 256], 5.0))
    run.save(m, 2, blocking=False)
    run.wait()
    assert next(iter(run._saves._buffers[0].arrays.values())) is array  # noqa: SLF001
    fresh = tf.Module()
    fresh.w = tf.Variable(tf.zeros([256, 256]))
    for step, value in [(1, 1.0), (2, 5.0)]:
        sqlite_store.restore(f"reuse@{step}", fresh, verify="full")
        assert (fresh.w.numpy() == value).all()
    run.finish()
    assert run._saves._buffers == []  # noqa: SLF001 - a finished run lets go of them
