"""The checkpoint state file and prefixes with quotes, spaces, unicode or backslashes, as TensorFlow reads them."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.helpers.hardening import (
    one_line,
    read_restored,
    store_state,
    tree,
)
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()

from ckptstore.errors import (  # noqa: E402
    CkptstoreError,
    NoCheckpointFoundError,
)
from ckptstore.tf import state as tfstate  # noqa: E402

# =========================================================================== 12. the checkpoint state file


PREFIXES = [
    "model.ckpt-1", 'we"ird-1', "it's-2", "back\\slash-3", "new\nline-4", "tab\there-5", "café-é-6",
    "日本-7", "ctl\x01\x7f-8", "trailing\\", '"', "\\\\", "sp ace #hash-9", "\\x41\\101-10",
]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_state_file_render_parse_round_trip_agrees_with_tensorflow(tmp_path, prefix):
    state = tfstate.CheckpointState(prefix, ["older-0", prefix])
    text = tfstate.render(state)
    assert tfstate.parse(text) == state
    assert len(text.splitlines()) == 3  # no raw newline from the name
    # TensorFlow's own reader sees the same names.
    (tmp_path / "checkpoint").write_text(text, encoding="utf-8")
    got = tf.train.get_checkpoint_state(str(tmp_path))
    assert got is not None
    assert got.model_checkpoint_path == os.path.join(str(tmp_path), prefix)
    assert list(got.all_model_checkpoint_paths) == [os.path.join(str(tmp_path), p) for p in ("older-0", prefix)]
    # And ours reads what TensorFlow writes.
    d = tmp_path / "tfwritten"
    d.mkdir()
    full = str(d / prefix)
    tf.compat.v1.train.update_checkpoint_state(str(d), full, [full])
    assert tfstate.parse((d / "checkpoint").read_text(encoding="utf-8")).model_checkpoint_path == full


def test_a_prefix_with_quotes_spaces_and_unicode_restores_for_vanilla_tensorflow(sqlite_store, tmp_path, tiny_model):
    prefix = 'we"ird name-é'
    with sqlite_store.start_run("r") as run:
        ck = run.save(tiny_model(4.0), 1, prefix=prefix)
    assert ck.prefix == prefix + "-1"
    out = tmp_path / "out"
    sqlite_store.materialize("r@1", out)
    assert tf.train.latest_checkpoint(str(out)) == str(out / ck.prefix)
    np.testing.assert_array_equal(read_restored(out, "model/w"), np.full([3, 2], 4.0, np.float32))


def test_a_prefix_with_a_backslash_is_refused_or_round_trips(sqlite_store, tmp_path, tiny_model):
    # TensorFlow itself cannot read a prefix with a backslash back (its reader takes the prefix
    # as a glob pattern), so refusing it up front is fine; accepting it must still write a state
    # file that names it exactly.
    prefix = 'we"ird\\name-é'
    run = sqlite_store.start_run("r")
    before = store_state(sqlite_store)
    try:
        ck = run.save(tiny_model(4.0), 1, prefix=prefix)
    except CkptstoreError as exc:
        assert "prefix" in one_line(exc)
        assert store_state(sqlite_store) == before
        return
    out = tmp_path / "out"
    sqlite_store.materialize(ck, out)
    assert tfstate.parse((out / "checkpoint").read_text(encoding="utf-8")).model_checkpoint_path == ck.prefix
    assert tf.train.get_checkpoint_state(str(out)).model_checkpoint_path == str(out / ck.prefix)


@pytest.mark.parametrize("relative", [False, True], ids=["absolute-paths", "relative-paths"])
def test_import_of_a_saver_directory_with_escaped_names(store, tmp_path, new_seed_graph, relative):
    src = tmp_path / "saver"
    src.mkdir()
    name = 'we"ird\nname-é 日本'
    g, sess, _ = new_seed_graph(b=3.0)
    with g.as_default():
        saver = tf.compat.v1.train.Saver(save_relative_paths=relative)
        saver.save(sess, str(src / name), global_step=5)
    text = (src / "checkpoint").read_text(encoding="utf-8")
    assert '\\"' in text and "\\n" in text  # TensorFlow escaped the quote and the newline
    before_src = tree(src)
    cks = store.import_checkpoints(src, run="imported")
    assert [(c.step, c.prefix) for c in cks] == [(5, name + "-5")]
    assert tree(src) == before_src
    out = tmp_path / "out"
    store.materialize("imported@5", out)
    assert tf.train.latest_checkpoint(str(out)) == str(out / (name + "-5"))
    assert float(read_restored(out, "b")) == 3.0


def test_import_of_a_saver_directory_with_a_backslash_in_a_name(store, tmp_path, new_seed_graph):
    # The state file holds "we\"ird\\name-é-5"; TensorFlow cannot read that prefix back itself.
    src = tmp_path / "saver"
    src.mkdir()
    name = 'we"ird\\name-é'
    g, sess, _ = new_seed_graph(b=3.0)
    with g.as_default():
        tf.compat.v1.train.Saver().save(sess, str(src / name), global_step=5)
    assert "\\\\" in (src / "checkpoint").read_text(encoding="utf-8")
    before_src, before = tree(src), store_state(store)
    try:
        cks = store.import_checkpoints(src, run="imported")
    except NoCheckpointFoundError as exc:
        assert name + "-5" in one_line(exc)
        assert store_state(store) == before and tree(src) == before_src
        return
    assert [(c.step, c.prefix) for c in cks] == [(5, name + "-5")]
    out = tmp_path / "out"
    store.materialize("imported@5", out)
    assert tfstate.parse((out / "checkpoint").read_text(encoding="utf-8")).model_checkpoint_path == name + "-5"
