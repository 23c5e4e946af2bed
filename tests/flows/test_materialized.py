"""Materialized copies handed to TensorFlow APIs are checked before their path is handed out."""

from __future__ import annotations

import os
from pathlib import Path

# =========================================================================== 1. the S3 cache


def _plant(path: Path, data: bytes, *, keep_mtime: bool = True) -> None:
    """Overwrite a cached file in place with bytes of the same size (as another tool or bit rot
    would), putting its mtime back so that only the content (and ctime) changed."""
    st = os.stat(path)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.write(data[: st.st_size])
    os.chmod(path, 0o444)
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


# =========================================================================== notes: the UI's inputs, undecodable names
def test_a_changed_materialized_copy_is_made_again_before_its_path_is_handed_out(store, tiny_model) -> None:  # noqa: ANN001
    from ckptstore.flows import materialized

    with store.start_run("r") as run:
        ck = run.save(tiny_model(scale=2.0), 1)
    prefix = materialized.cached_prefix(store.backend, ck.ref)
    data = next(prefix.parent.glob(prefix.name + ".data-*"))
    good = data.read_bytes()
    _plant(data, b"\x00" * len(good))
    again = materialized.cached_prefix(store.backend, ck.ref)
    assert again == prefix
    assert next(again.parent.glob(again.name + ".data-*")).read_bytes() == good
    # An untouched copy is reused as it is (not written again).
    ino = os.stat(next(again.parent.glob(again.name + ".data-*"))).st_ino
    materialized.cached_prefix(store.backend, ck.ref)
    assert os.stat(next(again.parent.glob(again.name + ".data-*"))).st_ino == ino
