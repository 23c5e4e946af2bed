"""Checkpoint formats are found in a registry, and an async save asks the format for its
snapshot (CheckpointFormat.snapshot) instead of dispatching on the target itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ckptstore.errors import CkptstoreError
from ckptstore.tf import formats
from ckptstore.tf.formats import CheckpointFormat, TF2Checkpoint, register_format


class Marked:
    """A target only the narrow format below accepts."""


class NarrowFormat(TF2Checkpoint):
    name = "narrow-test"

    def accepts(self, target: Any) -> bool:
        return isinstance(target, Marked) or (isinstance(target, formats.tf().Module) and getattr(target, "narrow", False))


@pytest.fixture
def narrow() -> Iterator[NarrowFormat]:
    fmt = NarrowFormat()
    register_format(fmt)
    try:
        yield fmt
    finally:
        formats.FORMATS.unregister(fmt.name)


def test_the_built_in_formats_are_registered_by_name() -> None:
    assert formats.FORMATS.names()[:2] == ["tf1-saver", "tf2-checkpoint"]
    assert isinstance(formats.named("tf2-checkpoint"), TF2Checkpoint)
    with pytest.raises(CkptstoreError, match="unknown checkpoint format 'no-such'"):
        formats.named("no-such")


def test_a_registered_format_is_asked_first_and_found_by_name(narrow: NarrowFormat, tiny_model) -> None:
    assert formats.for_target(Marked()) is narrow
    assert formats.named("narrow-test") is narrow
    assert formats.for_target(tiny_model()).name == "tf2-checkpoint"  # the built-in still answers the rest
    with pytest.raises(ValueError, match="already registered"):
        register_format(NarrowFormat())


def test_format_names_must_fit_the_column() -> None:
    class Bad(TF2Checkpoint):
        name = "Has Spaces"

    with pytest.raises(ValueError, match="checkpoint format name"):
        register_format(Bad)


def test_a_format_without_a_snapshot_is_saved_synchronously_by_an_async_save(sqlite_store, tiny_model) -> None:
    """CheckpointFormat.snapshot returns None by default: save(blocking=False) then saves at once."""

    class NoSnapshot(TF2Checkpoint):
        def snapshot(self, *args: Any, **kwargs: Any) -> None:
            return CheckpointFormat.snapshot(self, *args, **kwargs)

    register_format(NoSnapshot(), clobber=True)  # under the built-in's name: the CHECK accepts it
    try:
        with sqlite_store.start_run("nosnap") as run:
            pending = run.save(tiny_model(scale=4.0), step=1, blocking=False)
            assert pending.done()  # committed before save returned: no background thread
            assert pending.result().step == 1
    finally:
        register_format(TF2Checkpoint(), clobber=True)
    model = tiny_model()
    sqlite_store.restore("nosnap@1", model)
    assert float(model.w.numpy()[0, 0]) == 4.0


def test_of_prefix_asks_each_format_whether_it_wrote_the_files(tmp_path: Path, tiny_model) -> None:
    path = formats.for_target(tiny_model()).save(tiny_model(), tmp_path, "ckpt", 3)
    assert formats.of_prefix(path).name == "tf2-checkpoint"


def test_a_format_under_a_new_name_is_saved_restored_and_listed(narrow: NarrowFormat, store, tiny_model) -> None:
    """Since revision 0008 the database takes any registered format's name (both databases)."""
    model = tiny_model(scale=3.0)
    model.narrow = True
    with store.start_run("narrow") as run:
        info = run.save(model, step=1)
    assert info.format == "narrow-test"
    assert [c.format for c in store.checkpoints("narrow")] == ["narrow-test"]
    back = tiny_model()
    back.narrow = True
    store.restore("narrow@1", back)
    assert float(back.w.numpy()[0, 0]) == 3.0
