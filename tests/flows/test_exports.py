"""Frozen exports with real TensorFlow: the seed's pb scenario, TF1 and TF2 freezing, loading as
a callable or into a TF1 graph, export for deployment, digests, lineage and bad input.

Everything that writes or reads export rows, aliases or lineage runs on SQLite and PostgreSQL
(the `store` fixture); checks that only exercise TensorFlow run on SQLite alone."""

from __future__ import annotations

import json
import sys

import blake3
import numpy as np
import pytest

from tests.helpers.damage import flip_byte
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()

from ckptstore import Retention  # noqa: E402
from ckptstore.errors import (  # noqa: E402
    CkptstoreError,
    ConflictError,
    CorruptFileError,
    MissingFileError,
    UnknownAliasError,
    UnknownRefError,
    UnknownRunError,
)
from ckptstore.tf.frozen import FrozenFunction  # noqa: E402


class Classifier(tf.Module):
    """A tiny model whose serving function returns a dict, as SavedModel signatures do."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = tf.keras.layers.Dense(2)
        self.dense.build((None, 3))

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="features")])
    def serve(self, x):
        logits = self.dense(x)
        return {"logits": logits, "probs": tf.nn.softmax(logits)}


@pytest.fixture(scope="module")
def classifier():
    return Classifier()


@pytest.fixture(scope="module")
def keras_model():
    tf.keras.utils.set_random_seed(1)
    return tf.keras.Sequential(
        [tf.keras.Input((3,)), tf.keras.layers.Dense(4, activation="relu"), tf.keras.layers.Dense(2)]
    )


INPUT = np.random.RandomState(0).randn(5, 3).astype("float32")


# --------------------------------------------------------------------------- the seed's pb scenario


def test_seed_graph_frozen_tagged_and_loaded_back_by_its_alias(store, seed_session):
    with store.start_run("seed") as run:
        run.save(seed_session, 1000)
        export = run.freeze(seed_session, ["op_to_store"], step=1000)
    store.set_alias("prod", export.ref, message="the seed's pb")

    graph = store.import_frozen("prod")
    with tf.compat.v1.Session(graph=graph) as sess:
        b, out = sess.run(["b:0", "op_to_store:0"], {"x:0": 5.0, "y:0": 5.0})
    assert float(b) == 1.0
    assert float(out) == 26.0
    # The frozen graph holds no variables: b is a constant now.
    assert graph.get_operation_by_name("b").type == "Const"
    assert not graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES)

    frozen = store.load_frozen("prod")
    assert float(frozen(x=5.0, y=5.0)) == 26.0
    assert float(frozen(5.0, 5.0)) == 26.0
    assert float(frozen(2.0, y=3.0)) == 7.0


# --------------------------------------------------------------------------- TF1 freezing


def test_tf1_freeze_records_inputs_outputs_size_digest_and_lineage(store, seed_session):
    run = store.start_run("r")
    ck = run.save(seed_session, 10)
    export = run.freeze(seed_session, ["op_to_store:0"], step=10)
    assert export.kind == "tf1-graphdef"
    assert export.inputs == [
        {"name": "x", "tensor": "x:0", "dtype": "float32", "shape": None},
        {"name": "y", "tensor": "y:0", "dtype": "float32", "shape": None},
    ]
    assert export.outputs == [{"name": "op_to_store:0", "tensor": "op_to_store:0", "key": None, "dtype": "float32", "shape": None}]
    stored = store.files.path_of(export.digest)
    data = stored.read_bytes()
    assert blake3.blake3(data).hexdigest() == export.digest
    assert export.size == len(data)
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(data)
    assert export.node_count == len(graph_def.node)
    # Pruned to what op_to_store needs: the other output of the graph is not in the export.
    assert "diff" not in {n.name for n in graph_def.node}
    assert export.tf_version == tf.__version__
    assert (export.run, export.step, export.checkpoint_id) == ("r", 10, ck.id)
    # A step without a checkpoint has no checkpoint lineage; no step, no lineage at all.
    later = run.freeze(seed_session, ["op_to_store"], step=11)
    assert (later.step, later.checkpoint_id) == (11, None)
    unstepped = run.freeze(seed_session, ["op_to_store"])
    assert (unstepped.step, unstepped.checkpoint_id) == (None, None)
    # The same graph freezes to the same bytes: one stored file for the three exports.
    assert later.digest == unstepped.digest == export.digest
    assert sum(1 for _ in store.files.object_digests()) == len({f.digest for f in ck.files} | {export.digest})


def test_tf1_freeze_with_several_outputs_returns_them_in_order(store, seed_session):
    graph = seed_session.graph
    export = store.start_run("r").freeze(
        seed_session, [graph.get_tensor_by_name("diff:0"), graph.get_operation_by_name("op_to_store")]
    )
    assert [o["key"] for o in export.outputs] == [0, 1]
    diff, out = store.load_frozen(export.ref)(x=5.0, y=3.0)
    assert (float(diff), float(out)) == (2.0, 16.0)


def test_tf1_freeze_refuses_bad_output_names(sqlite_store, seed_session):
    run = sqlite_store.start_run("r")
    with pytest.raises(CkptstoreError, match="output_names"):
        run.freeze(seed_session)
    with pytest.raises(CkptstoreError, match="no tensor 'nope:0'"):
        run.freeze(seed_session, ["nope"])
    assert sqlite_store.exports() == []


def test_freezing_uninitialized_variables_is_a_clear_error(sqlite_store):
    g = tf.Graph()
    with g.as_default():
        v = tf.Variable(3.0, name="v")
        tf.identity(v * 2.0, name="out")
    with tf.compat.v1.Session(graph=g) as sess:
        with pytest.raises(CkptstoreError, match="cannot freeze"):
            sqlite_store.start_run("r").freeze(sess, ["out"])
    assert sqlite_store.exports() == []
    assert sqlite_store.gc().removed_objects == 0


# --------------------------------------------------------------------------- TF2 freezing


def test_frozen_tf2_function_returns_the_live_models_outputs(store, classifier):
    export = store.start_run("tf2").freeze(classifier.serve, step=5)
    assert export.kind == "tf2-function"
    assert export.inputs == [{"name": "features", "tensor": "features:0", "dtype": "float32", "shape": [None, 3]}]
    assert [(o["key"], o["shape"]) for o in export.outputs] == [("logits", [None, 2]), ("probs", [None, 2])]
    live = classifier.serve(tf.constant(INPUT))
    frozen = store.load_frozen(export.ref)
    assert isinstance(frozen, FrozenFunction) and frozen.input_names == ["features"]
    for result in (frozen(INPUT), frozen(features=INPUT)):
        assert sorted(result) == ["logits", "probs"]
        np.testing.assert_allclose(result["logits"].numpy(), live["logits"].numpy(), rtol=1e-6)
        np.testing.assert_allclose(result["probs"].numpy(), live["probs"].numpy(), rtol=1e-6)


def test_frozen_keras_model_matches_the_live_model(sqlite_store, keras_model):
    serve = tf.function(lambda x: keras_model(x), input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    export = sqlite_store.start_run("keras").freeze(serve)
    out = sqlite_store.load_frozen(export.ref)(INPUT)
    np.testing.assert_allclose(out.numpy(), keras_model(INPUT).numpy(), rtol=1e-6)
    # The frozen graph lives on in a TF1 session too.
    graph = sqlite_store.import_frozen(export.ref, name="m")
    with tf.compat.v1.Session(graph=graph) as sess:
        got = sess.run("m/" + export.outputs[0]["tensor"], {"m/x:0": INPUT})
    np.testing.assert_allclose(got, keras_model(INPUT).numpy(), rtol=1e-6)


def test_concrete_function_with_tuple_output_and_named_arguments(sqlite_store):
    scale = tf.Variable(2.0)

    @tf.function
    def stats(a, b):
        return a + b, a * b * scale

    concrete = stats.get_concrete_function(tf.TensorSpec([2], tf.float32), tf.TensorSpec([2], tf.float32))
    export = sqlite_store.start_run("r").freeze(concrete)
    assert [i["name"] for i in export.inputs] == ["a", "b"]
    total, product = sqlite_store.load_frozen(export.ref)(b=[1.0, 2.0], a=[3.0, 4.0])
    assert total.numpy().tolist() == [4.0, 6.0]
    assert product.numpy().tolist() == [6.0, 16.0]


def test_freeze_refuses_what_it_cannot_freeze(sqlite_store, classifier, seed_session):
    run = sqlite_store.start_run("r")

    @tf.function
    def no_signature(x):
        return x

    with pytest.raises(CkptstoreError, match="input_signature"):
        run.freeze(no_signature)
    with pytest.raises(CkptstoreError, match="cannot freeze a dict"):
        run.freeze({"not": "a model"})
    with pytest.raises(CkptstoreError, match="only for TF1"):
        run.freeze(classifier.serve, ["probs"])
    with pytest.raises(CkptstoreError, match="step"):
        run.freeze(seed_session, ["op_to_store"], step=-1)
    assert sqlite_store.exports() == []


def test_calling_a_frozen_function_wrongly_says_what_it_takes(sqlite_store, seed_session):
    export = sqlite_store.start_run("r").freeze(seed_session, ["op_to_store"])
    frozen = sqlite_store.load_frozen(export.ref)
    with pytest.raises(TypeError, match="missing inputs y"):
        frozen(5.0)
    with pytest.raises(TypeError, match="no input 'z'"):
        frozen(x=1.0, y=2.0, z=3.0)
    with pytest.raises(TypeError, match="takes 2 inputs"):
        frozen(1.0, 2.0, 3.0)
    with pytest.raises(TypeError, match="given twice"):
        frozen(1.0, x=2.0)


# --------------------------------------------------------------------------- references


def test_exports_are_found_by_id_alias_and_run_step(store, seed_session, classifier):
    run = store.start_run("r")
    first = run.freeze(seed_session, ["op_to_store"], step=100)
    second = run.freeze(classifier.serve, step=200)
    store.set_alias("serving", second.ref)
    assert store.load_frozen("r@100").export.id == first.id
    assert store.load_frozen("r@~199").export.id == first.id
    assert store.load_frozen("r@latest").export.id == second.id
    assert store.load_frozen("serving").export.id == second.id
    assert [e.id for e in store.exports()] == [first.id, second.id]
    assert [e.aliases for e in store.exports("r")] == [[], ["serving"]]
    with pytest.raises(UnknownRefError, match="no export at step 150 .*100, 200"):
        store.load_frozen("r@150")
    with pytest.raises(UnknownRefError, match="no export 99"):
        store.load_frozen("export:99")
    with pytest.raises(UnknownAliasError):
        store.load_frozen("nope")
    with pytest.raises(UnknownRunError):
        store.exports("ghost")


def test_a_checkpoint_is_not_a_frozen_graph(store, seed_session, tmp_path):
    run = store.start_run("r")
    run.save(seed_session, 10)
    store.set_alias("best", "r@10")
    with pytest.raises(UnknownRefError, match="'best' names the checkpoint r@10, not an export"):
        store.load_frozen("best")
    with pytest.raises(UnknownRefError, match="no export"):
        store.import_frozen("r@10")
    with pytest.raises(CkptstoreError, match="not an export"):
        store.export_frozen("best", tmp_path / "out" / "model.pb")
    assert not (tmp_path / "out").exists()
    # Once that checkpoint is frozen, its alias names the export, as r@10 does.
    frozen = run.freeze(seed_session, ["op_to_store"], step=10)
    written = store.export_frozen("best", tmp_path / "out" / "model.pb")
    assert json.loads(written.with_name(written.name + ".json").read_text())["export"] == frozen.ref
    assert written.read_bytes() == store.export_frozen("r@10", tmp_path / "again" / "model.pb").read_bytes()


# --------------------------------------------------------------------------- integrity and lifecycle


def test_loading_verifies_the_digest_first(store, seed_session, tmp_path):
    export = store.start_run("r").freeze(seed_session, ["op_to_store"])
    flip_byte(store.files.path_of(export.digest))
    with pytest.raises(CorruptFileError, match=f"export-{export.id}.pb"):
        store.load_frozen(export.ref)
    with pytest.raises(CorruptFileError):
        store.import_frozen(export.ref)
    with pytest.raises(CorruptFileError):
        store.export_frozen(export.ref, tmp_path / "out.pb")
    assert not (tmp_path / "out.pb").exists()
    report = store.verify()
    assert [(p.kind, p.export) for p in report.problems] == [("corrupt", export.id)]
    store.files.path_of(export.digest).unlink()
    with pytest.raises(MissingFileError):
        store.load_frozen(export.ref, verify=False)


def test_import_frozen_into_an_existing_graph_with_a_prefix(sqlite_store, seed_session):
    export = sqlite_store.start_run("r").freeze(seed_session, ["op_to_store"])
    graph = tf.Graph()
    with graph.as_default():
        tf.constant(3.0, name="x")  # clashes with the frozen 'x' without a prefix
    assert sqlite_store.import_frozen(export.ref, graph, name="frozen") is graph
    with tf.compat.v1.Session(graph=graph) as sess:
        assert float(sess.run("frozen/op_to_store:0", {"frozen/x:0": 5.0, "frozen/y:0": 5.0})) == 26.0
        assert float(sess.run("x:0")) == 3.0


def test_import_frozen_refuses_names_the_graph_already_has(sqlite_store, seed_session):
    # TensorFlow alone would import the frozen op_to_store as op_to_store_1, and
    # get_tensor_by_name("op_to_store:0") would then find the graph's own op, not the frozen one.
    export = sqlite_store.start_run("r").freeze(seed_session, ["op_to_store"])
    graph = tf.Graph()
    with graph.as_default():
        tf.constant(3.0, name="x")
        tf.constant(4.0, name="op_to_store")
    before = [op.name for op in graph.get_operations()]
    with pytest.raises(ConflictError, match=r"has ops named x, op_to_store; pass a name prefix \(e.g. name='frozen'\)"):
        sqlite_store.import_frozen(export.ref, graph)
    assert [op.name for op in graph.get_operations()] == before

    # A prefix used before is refused too, where TensorFlow would quietly switch to frozen_1/.
    sqlite_store.import_frozen(export.ref, graph, name="frozen")
    before = [op.name for op in graph.get_operations()]
    with pytest.raises(ConflictError, match=r"frozen/x, .*another name prefix than 'frozen' \(e.g. name='frozen_1'\)"):
        sqlite_store.import_frozen(export.ref, graph, name="frozen")
    assert [op.name for op in graph.get_operations()] == before
    # The suggested prefix works, and lands where it says even inside an open name scope.
    with graph.as_default(), tf.compat.v1.name_scope("outer"):
        sqlite_store.import_frozen(export.ref, graph, name="frozen_1")
    with tf.compat.v1.Session(graph=graph) as sess:
        feeds = {"frozen_1/x:0": 2.0, "frozen_1/y:0": 3.0, "frozen/x:0": 5.0, "frozen/y:0": 5.0}
        assert sess.run(["frozen_1/op_to_store:0", "frozen/op_to_store:0", "op_to_store:0"], feeds) == [7.0, 26.0, 4.0]
    with pytest.raises(CkptstoreError, match="'no good' is not a valid name prefix"):
        sqlite_store.import_frozen(export.ref, graph, name="no good")


def test_export_for_deployment_writes_the_pb_and_a_sidecar(store, seed_session, tmp_path):
    run = store.start_run("r")
    run.save(seed_session, 7)
    export = run.freeze(seed_session, ["op_to_store"], step=7)
    store.set_alias("prod", export.ref)
    path = store.export_frozen("prod", tmp_path / "deploy" / "model.pb")
    assert path == tmp_path / "deploy" / "model.pb"
    data = path.read_bytes()
    assert data == store.files.path_of(export.digest).read_bytes()
    meta = json.loads((tmp_path / "deploy" / "model.pb.json").read_text())
    assert meta["digest"] == blake3.blake3(data).hexdigest() == export.digest
    assert meta["lineage"] == {"run": "r", "step": 7, "checkpoint": "r@7"}
    assert meta["inputs"] == export.inputs and meta["outputs"] == export.outputs
    assert (meta["export"], meta["kind"], meta["tf_version"], meta["size"]) == (export.ref, "tf1-graphdef", tf.__version__, len(data))
    assert meta["aliases"] == ["prod"] and meta["created_at"].endswith("+00:00")
    # A deployed copy is a file of its own, writable, and vanilla TensorFlow reads it.
    assert path.stat().st_ino != store.files.path_of(export.digest).stat().st_ino
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(data)
    with tf.Graph().as_default() as g:
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=g) as sess:
            assert float(sess.run("op_to_store:0", {"x:0": 5.0, "y:0": 5.0})) == 26.0
    # A directory receives export-ID.pb; no temporary files are left behind.
    into_dir = store.export_frozen(export.ref, tmp_path / "deploy")
    assert into_dir.name == f"export-{export.id}.pb"
    assert sorted(p.name for p in (tmp_path / "deploy").iterdir()) == sorted(
        ["model.pb", "model.pb.json", into_dir.name, into_dir.name + ".json"]
    )


def test_an_export_outlives_the_checkpoint_it_was_frozen_from(store, seed_session):
    run = store.start_run("r", retention=Retention(max_to_keep=1))
    run.save(seed_session, 1)
    export = run.freeze(seed_session, ["op_to_store"], step=1)
    assert export.checkpoint_id is not None
    run.save(seed_session, 2)  # retention deletes step 1
    assert [c.step for c in store.checkpoints("r")] == [2]
    after = store.resolve(export.ref)
    assert (after.step, after.checkpoint_id) == (1, None)
    assert store.gc().removed_objects == 0
    assert float(store.load_frozen(export.ref)(5.0, 5.0)) == 26.0


def test_deleting_the_run_removes_its_exports_and_their_files(store, seed_session):
    export = store.start_run("r").freeze(seed_session, ["op_to_store"])
    path = store.files.path_of(export.digest)
    assert path.exists()
    store.delete_run("r")
    assert store.exports() == []
    assert not path.exists()
    assert store.verify().ok


def test_freeze_flushes_buffered_metrics_first(store, seed_session):
    run = store.start_run("r", flush_every=10_000, flush_seconds=3600)
    run.log(3, loss=0.5)
    run.freeze(seed_session, ["op_to_store"], step=3)
    assert store.steps("r")[0].metrics == {"loss": 0.5}


# --------------------------------------------------------------------------- the TensorFlow guard


def test_tensorflow_tests_skip_without_tensorflow_but_fail_in_ci(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` raise ImportError
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="TensorFlow cannot be imported"):
        require_tensorflow()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the TensorFlow tests"):
        require_tensorflow()
