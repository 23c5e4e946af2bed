"""Materialized copies handed to TensorFlow APIs are checked before their path is handed out."""

from __future__ import annotations

import os

from tests.helpers.hardening import plant

# =========================================================================== 1. the S3 cache


# =========================================================================== notes: the UI's inputs, undecodable names
def test_a_changed_materialized_copy_is_made_again_before_its_path_is_handed_out(store, tiny_model) -> None:  # noqa: ANN001
    from ckptstore.flows import materialized

    with store.start_run("r") as run:
        ck = run.save(tiny_model(scale=2.0), 1)
    prefix = materialized.cached_prefix(store.backend, ck.ref)
    data = next(prefix.parent.glob(prefix.name + ".data-*"))
    good = data.read_bytes()
    plant(data, b"\x00" * len(good))
    again = materialized.cached_prefix(store.backend, ck.ref)
    assert again == prefix
    assert next(again.parent.glob(again.name + ".data-*")).read_bytes() == good
    # An untouched copy is reused as it is (not written again).
    ino = os.stat(next(again.parent.glob(again.name + ".data-*"))).st_ino
    materialized.cached_prefix(store.backend, ck.ref)
    assert os.stat(next(again.parent.glob(again.name + ".data-*"))).st_ino == ino
