"""``export REF --to FILE|DIR`` on the CLI's quick path (``flows/export_out.py`` over ``sqlite3``).

As for ``restore``: the quick path writes the file and its sidecar (or the SavedModel directory)
itself when the REF resolves and the files check out, words an unknown REF or a conflict at the
target as the store does, and leaves damage to the store. Each case runs both ways, in real
subprocesses, on copies of one store: the output, what was written and the store afterwards
must be the same.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import ckptstore
from tests.helpers.both_ways import assert_same, both_ways, corrupt_objects, existing, store_answered
from tests.helpers.cli import imported
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()


@pytest.fixture(scope="module")
def stored(tmp_path_factory, new_sqlite_store_files, seed_session, tiny_model) -> Path:
    """A closed store: run ``seed`` with a frozen graph at step 1 (export:1, alias ``prod-pb``),
    a SavedModel at step 2 (export:2) and a checkpoint at step 1 (alias ``ck``); run ``k`` with
    a .keras export (export:3)."""
    path = tmp_path_factory.mktemp("export-out") / "store"
    shutil.copytree(new_sqlite_store_files, path)
    module = tiny_model(2.0)
    serve = tf.function(lambda x: {"y": tf.matmul(x, module.w) + module.b},
                        input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    with ckptstore.open_store(str(path)) as store:
        with store.start_run("seed") as run:
            run.save(seed_session, 1)
            store.set_alias("prod-pb", run.freeze(seed_session, ["op_to_store"], step=1))
            run.export_saved_model(module, step=2, signatures=serve)
            store.set_alias("ck", "seed@1")
        with store.start_run("k") as run:
            model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])
            run.export_keras(model, step=1)
    return path


WRITTEN = [
    ["export:1", "--to", "{out}/model.pb"],
    ["prod-pb", "--to", "{out}/"],  # a directory named with a trailing slash gets export-1.pb
    ["seed@1", "--to", "{out}/frozen.pb"],
    ["seed@latest", "--to", "{out}/serving/1"],  # the SavedModel, as a directory
    ["k@1", "--to", "{out}/model.keras"],
]


@pytest.mark.slow
@pytest.mark.parametrize("args", WRITTEN, ids=" ".join)
def test_the_quick_path_writes_what_the_store_writes(stored, tmp_path, args):
    quick, normal = both_ways(stored, tmp_path, ["export", *args])
    assert_same(quick, normal)
    assert quick.done.returncode == 0, quick.done.stderr
    assert not ({"sqlalchemy", "tensorflow"} & imported(quick.done.stderr))
    written = sorted(str(p.relative_to(quick.out)) for p in quick.out.rglob("*") if p.is_file())
    sidecar = next(p for p in written if p.endswith(".json"))
    assert json.loads((quick.out / sidecar).read_text())["digest_algorithm"] == "blake3"
    if args[0] == "seed@latest":
        assert "serving/1/saved_model.pb" in written and "serving/1/ckptstore-export.json" in written


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, prepare, store_answers",
    [
        (["export:1", "--to", "{out}/model.pb"], existing("model.pb"), False),
        (["export:1", "--to", "{out}/model.pb"], existing("model.pb.json"), False),  # the sidecar's name
        (["export:1", "--to", "{out}/model.pb", "--force"], existing("model.pb"), False),
        (["seed@latest", "--to", "{out}/sm"], existing("sm/keep.txt"), False),  # not an empty directory
        (["export:99", "--to", "{out}/x.pb"], None, False),
        (["seed@5", "--to", "{out}/x.pb"], None, False),  # no export at that step: says where they are
        (["ck", "--to", "{out}/x.pb"], None, False),  # an alias of a checkpoint, not an export
        (["nope@1", "--to", "{out}/x.pb"], None, False),
        (["export:1", "--to", "{out}/model.pb"], corrupt_objects, True),  # damage: the store's to word
        (["export:1", "--to", "{out}/model.keras"], None, False),  # a GraphDef named .keras
        (["k@1", "--to", "{out}/model.pb"], None, False),  # a .keras zip named .pb
    ],
    ids=["conflict", "conflict-sidecar", "force", "occupied-dir", "unknown-id", "no-export-at-step",
         "checkpoint-alias", "unknown-run", "corrupt", "pb-as-keras", "keras-as-pb"],
)
def test_errors_are_worded_as_the_store_words_them(stored, tmp_path, args, prepare, store_answers):
    quick, normal = both_ways(stored, tmp_path, ["export", *args], prepare)
    assert_same(quick, normal)
    assert store_answered(quick) == store_answers, quick.done.stderr
