"""What keeps an asynchronous save cheap must not change what it saves: the TF2 snapshot's own
copies, and the data file hashed while TensorFlow writes it (TF1's and TF2's file layouts)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ckptstore.files.digest import DigestFollower, digest_file
from tests.helpers.skips import require_tensorflow

require_tensorflow()


def test_tf2_async_save_of_large_variables_keeps_the_values_of_the_call(sqlite_store):
    import tensorflow as tf

    # 256 KiB and 16 bytes: the snapshot copies both into the run's reused host buffers.
    m = tf.Module()
    m.big = tf.Variable(tf.fill([256, 256], 2.0))
    m.small = tf.Variable(tf.fill([4], 3.0))
    run = sqlite_store.start_run("a")
    run.save(m, 1, blocking=False)
    m.big.assign_add(tf.ones([256, 256]))  # in place: the variable's buffer is not shared
    m.small.assign_add(tf.ones([4]))
    run.save(m, 2, blocking=False)
    m.big.assign(tf.zeros([256, 256]))
    run.wait()
    for step, big, small in [(1, 2.0, 3.0), (2, 3.0, 4.0)]:
        fresh = tf.Module()
        fresh.big = tf.Variable(tf.zeros([256, 256]))
        fresh.small = tf.Variable(tf.zeros([4]))
        sqlite_store.restore(f"a@{step}", fresh, verify="full")  # the digests hashed while writing hold
        assert (fresh.big.numpy() == big).all() and (fresh.small.numpy() == small).all()


def _wait_until_open(path: Path, timeout: float = 30.0) -> None:
    """Until this process holds ``path`` open (the follower found it; nothing else has it open)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.path.realpath(os.readlink(f"/proc/self/fd/{fd}")) == os.path.realpath(path):
                    return
            except OSError:
                continue
        time.sleep(0.001)
    raise AssertionError(f"{path} was never opened")


def _follow(tmp_path: Path, temp_name: Path, final_name: Path) -> dict[str, tuple[str, int]]:
    """Write ``temp_name`` in two parts with the follower watching, rename it as TF does."""
    data = np.random.default_rng(0).integers(0, 255, 3 << 20, dtype=np.uint8).tobytes()
    temp_name.parent.mkdir(exist_ok=True)
    follower = DigestFollower(tmp_path, "model.ckpt-7")
    temp_name.write_bytes(data[: 1 << 20])
    _wait_until_open(temp_name)
    with open(temp_name, "ab") as f:
        f.write(data[1 << 20 :])
    os.rename(temp_name, final_name)
    known = follower.finish()
    assert known == {final_name.name: digest_file(final_name)}
    return known


def test_follower_hashes_a_tf1_data_file_while_it_is_written(tmp_path):
    _follow(tmp_path, tmp_path / "model.ckpt-7.data-00000-of-00001.tempstate123",
            tmp_path / "model.ckpt-7.data-00000-of-00001")


def test_follower_hashes_a_tf2_shard_written_under_the_temp_directory(tmp_path):
    _follow(tmp_path, tmp_path / "model.ckpt-7_temp" / "part-00000-of-00001.data-00000-of-00001.tempstate123",
            tmp_path / "model.ckpt-7.data-00000-of-00001")


def test_follower_vouches_for_nothing_when_the_file_is_not_the_one_it_followed(tmp_path):
    temp = tmp_path / "model.ckpt-7.data-00000-of-00001.tempstate1"
    follower = DigestFollower(tmp_path, "model.ckpt-7")
    temp.write_bytes(b"x" * 1000)
    _wait_until_open(temp)
    temp.unlink()
    (tmp_path / "model.ckpt-7.data-00000-of-00001").write_bytes(b"y" * 1000)  # another inode
    assert follower.finish() == {}
