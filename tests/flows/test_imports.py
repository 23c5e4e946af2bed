"""Importing vanilla TensorFlow checkpoint directories: crafted indexes, symlinks and stray state files are refused before TensorFlow reads anything."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import ckptstore
from tests.helpers.hardening import ckpt, one_line_error, vanilla_checkpoint

# =========================================================================== 5 and 6. imports


def _craft_index(prefix: Path, shape: tuple[int, ...], *, size: int = 16, offset: int = 0) -> None:
    """Rewrite ``prefix``'s index so that ``w`` claims ``shape``, ``size`` and ``offset``."""
    from ckptstore import bundle_writer as BW

    def varint(n: int) -> bytes:
        return BW._varint(n & ((1 << 64) - 1))

    dims = b"".join(b"\x12" + varint(len(d)) + d for d in ((b"\x08" + varint(n)) if n else b"" for n in shape))
    entry = b"\x08\x01" + b"\x12" + varint(len(dims)) + dims
    entry += (b"\x20" + varint(offset) if offset else b"") + b"\x28" + varint(size)
    Path(str(prefix) + ".index").write_bytes(BW._table([(b"", BW._HEADER), (b"w", entry)]))


def _store_state(store) -> tuple:  # noqa: ANN001
    return tuple(r.name for r in store.runs()), sorted(store.files.digests())


@pytest.mark.parametrize("case", ["huge", "rank", "negative", "too-short", "past-the-end"])
def test_a_crafted_index_is_refused_before_tensorflow_reads_it(case: str, store, tmp_path: Path) -> None:  # noqa: ANN001
    src = tmp_path / "src"
    prefix = vanilla_checkpoint(src, 1)
    shape, kw = {
        "huge": ((1 << 40, 1 << 40), {}),
        "rank": ((1,) * 100_000, {}),
        "negative": ((-1, 4), {}),
        "too-short": ((1 << 60,), {}),  # 4 EiB of float32 claimed by 16 bytes
        "past-the-end": ((4,), {"offset": 1 << 20}),
    }[case]
    _craft_index(prefix, shape, **kw)
    before = _store_state(store)
    with pytest.raises(ckptstore.errors.NoCheckpointFoundError, match="ckpt-1"):
        store.import_checkpoints(src, run="imported")
    assert _store_state(store) == before


@pytest.mark.parametrize("case", ["huge", "negative"])
def test_a_crafted_index_is_one_line_on_the_command_line(case: str, sqlite_store, tmp_path: Path) -> None:  # noqa: ANN001
    src = tmp_path / "src"
    _craft_index(vanilla_checkpoint(src, 1), (1 << 40, 1 << 40) if case == "huge" else (-1,))
    r = ckpt("import", str(src), "--run", "imported", store=tmp_path / "store")
    one_line_error(r, "ckpt-1")
    assert "imported" not in [x.name for x in sqlite_store.runs()]


def test_import_refuses_a_symlinked_shard_or_index(store, tmp_path: Path) -> None:  # noqa: ANN001
    secret = tmp_path / "private" / "secret.bin"
    secret.parent.mkdir()
    secret.write_bytes(b"top secret bytes" * 4)
    for which in ("data", "index"):
        src = tmp_path / f"src-{which}"
        prefix = vanilla_checkpoint(src, 1)
        target = Path(str(prefix) + (".data-00000-of-00001" if which == "data" else ".index"))
        real = tmp_path / f"real-{which}"
        shutil.move(target, real)
        os.symlink(real if which == "index" else secret, target)
        before = _store_state(store)
        with pytest.raises(ckptstore.errors.NoCheckpointFoundError, match="symlink"):
            store.import_checkpoints(src, run="imported")
        assert _store_state(store) == before


def test_import_ignores_a_state_file_pointing_outside_the_directory(store, tmp_path: Path) -> None:  # noqa: ANN001
    outside = vanilla_checkpoint(tmp_path / "elsewhere", 7, value=7.0)
    src = tmp_path / "src"
    vanilla_checkpoint(src, 1, value=1.0)
    (src / "checkpoint").write_text(
        f'model_checkpoint_path: "{outside}"\nall_model_checkpoint_paths: "{outside}"\n', encoding="utf-8"
    )
    cks = store.import_checkpoints(src, run="imported")
    assert [c.step for c in cks] == [1]
    assert np.allclose(store.read_variable("imported@1", "w"), 1.0)
    # A relative path climbing out is not followed either.
    (src / "checkpoint").write_text('model_checkpoint_path: "../elsewhere/ckpt-7"\n', encoding="utf-8")
    assert store.import_checkpoints(src, run="again")[0].step == 1


def test_import_refuses_a_data_file_that_does_not_match_its_index(store, tmp_path: Path) -> None:  # noqa: ANN001
    src = tmp_path / "src"
    prefix = vanilla_checkpoint(src, 1, value=1.0)
    other = vanilla_checkpoint(tmp_path / "other", 1, value=2.0)  # same size, other bytes
    shutil.copyfile(str(other) + ".data-00000-of-00001", str(prefix) + ".data-00000-of-00001")
    before = _store_state(store)
    with pytest.raises(ckptstore.errors.NoCheckpointFoundError, match="does not match its index"):
        store.import_checkpoints(src, run="imported")
    assert _store_state(store) == before


def test_import_of_a_manager_directory_with_a_data_iterator(store, tmp_path: Path) -> None:  # noqa: ANN001
    # The directory TensorFlow's checkpoint guide leaves: the tf.data iterator is saved too (a
    # variant tensor, with a crc32c of its own layout), and restores to the same position.
    from tests.helpers.skips import require_tensorflow

    tf = require_tensorflow()
    iterator = iter(tf.data.Dataset.range(10).repeat())
    ckpt_ = tf.train.Checkpoint(iterator=iterator)
    manager = tf.train.CheckpointManager(ckpt_, str(tmp_path / "tf_ckpts"), max_to_keep=3)
    for _ in range(3):
        next(iterator)
        manager.save()
    assert [c.step for c in store.import_checkpoints(tmp_path / "tf_ckpts", run="guide")] == [1, 2, 3]
    restored = iter(tf.data.Dataset.range(10).repeat())
    store.restore("guide@latest", tf.train.Checkpoint(iterator=restored))
    assert int(next(restored)) == 3
