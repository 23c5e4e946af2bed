"""SavedModel and .keras exports: stored content-addressed, aliased, with lineage, written out for
deployment and loaded back with TensorFlow's and Keras' own loaders, predicting what the live
model predicts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ckptstore.errors import CkptstoreError, ConflictError
from tests.helpers.processes import run_cli
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()


class Scaler(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = tf.Variable([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        self.b = tf.Variable([0.5, -0.5])

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(self, x):
        return {"y": tf.matmul(x, self.w) + self.b}


X = np.array([[1.0, 0.0, 2.0], [0.5, 0.5, 0.5]], np.float32)


def _keras_model():
    tf.keras.utils.set_random_seed(3)
    return tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(4, activation="relu"), tf.keras.layers.Dense(2)])


@pytest.mark.slow  # tf.saved_model.save traces and writes a few MB: seconds
def test_saved_model_export_loads_back_and_predicts_like_the_live_model(store):
    model = Scaler()
    run = store.start_run("sm")
    ck = run.save(model, 10)
    info = run.export_saved_model(model, step=10, signatures={"serving_default": model.serve})
    assert info.kind == "saved-model" and info.step == 10 and info.checkpoint_id == ck.id
    assert {"signature": "serving_default", "name": "x", "tensor": info.inputs[0]["tensor"], "dtype": "float32", "shape": [None, 3]} == info.inputs[0]
    assert [o["name"] for o in info.outputs] == ["y"]
    store.set_alias("prod-sm", info)
    loaded = store.load_saved_model("prod-sm")
    want = model.serve(tf.constant(X))["y"].numpy()
    np.testing.assert_allclose(loaded.signatures["serving_default"](x=tf.constant(X))["y"].numpy(), want)
    np.testing.assert_allclose(loaded.serve(tf.constant(X))["y"].numpy(), want)
    assert [e.ref for e in store.exports("sm")] == [info.ref]
    assert store.verify().ok


@pytest.mark.slow  # tf.saved_model.save traces and writes a few MB: seconds
def test_a_saved_model_is_a_file_set_whose_unchanged_files_are_stored_once(sqlite_store):
    from ckptstore.flows.deploy_exports import export_files

    model = Scaler()
    run = sqlite_store.start_run("sm")
    a = run.export_saved_model(model, step=1, signatures=model.serve)
    b = run.export_saved_model(model, step=2, signatures=model.serve)
    fa = {f.file_name: f.digest for f in export_files(sqlite_store.backend, a)}
    fb = {f.file_name: f.digest for f in export_files(sqlite_store.backend, b)}
    assert set(fa) == {"saved_model.pb", "fingerprint.pb", "variables/variables.index", "variables/variables.data-00000-of-00001"}
    # TensorFlow names traced functions uniquely per save, so the graph differs; the variables do not.
    assert fa["variables/variables.index"] == fb["variables/variables.index"]
    assert fa["variables/variables.data-00000-of-00001"] == fb["variables/variables.data-00000-of-00001"]
    assert a.size == sum(f.size for f in export_files(sqlite_store.backend, a))
    objects = {p.name for p in (sqlite_store.root / "objects").rglob("*") if p.is_file()}
    assert len(objects) == len(set(fa.values()) | set(fb.values())) + 2  # plus the two manifests


@pytest.mark.slow  # tf.saved_model.save traces and writes a few MB: seconds
def test_saved_model_is_written_out_as_a_directory_tensorflow_loads(store, tmp_path):
    model = Scaler()
    run = store.start_run("sm")
    info = run.export_saved_model(model, step=5, signatures=model.serve)
    out = store.export_to(info, tmp_path / "serving" / "1")
    assert (out / "saved_model.pb").is_file() and (out / "variables").is_dir()
    meta = json.loads((out / "ckptstore-export.json").read_text())
    assert meta["export"] == info.ref and meta["digest"] == info.digest and meta["lineage"]["step"] == 5
    loaded = tf.saved_model.load(str(out))
    np.testing.assert_allclose(
        loaded.signatures["serving_default"](x=tf.constant(X))["y"].numpy(), model.serve(tf.constant(X))["y"].numpy()
    )
    with pytest.raises(ConflictError, match="not empty"):
        store.export_to(info, out)
    assert store.export_to(info, out, force=True) == out
    assert not [p for p in (tmp_path / "serving").iterdir() if p.name != "1"]  # no temporary left


def test_keras_export_loads_back_and_predicts_like_the_live_model(store, tmp_path):
    model = _keras_model()
    run = store.start_run("k")
    info = run.export_keras(model, step=3)
    assert info.kind == "keras" and info.inputs[0]["shape"] == [None, 3] and info.outputs[0]["shape"] == [None, 2]
    store.set_alias("prod-keras", info)
    loaded = store.load_keras("prod-keras")
    np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-6)
    # load_model's own keywords pass through to it.
    again = store.load_keras("prod-keras", compile=False, safe_mode=True, custom_objects={})
    np.testing.assert_allclose(again.predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-6)
    path = store.export_to("prod-keras", str(tmp_path / "out") + "/")
    assert path.name == f"export-{info.id}.keras" and (tmp_path / "out" / f"export-{info.id}.keras.json").is_file()
    import keras

    np.testing.assert_allclose(keras.saving.load_model(path).predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-6)


@pytest.mark.slow  # tf.saved_model.save traces and writes a few MB: seconds
def test_deployment_exports_are_not_frozen_graphs(sqlite_store):
    model = Scaler()
    run = sqlite_store.start_run("sm")
    info = run.export_saved_model(model, signatures=model.serve)
    with pytest.raises(CkptstoreError, match="SavedModel"):
        sqlite_store.load_frozen(info)
    with pytest.raises(CkptstoreError, match="not a .keras"):
        sqlite_store.load_keras(info)


@pytest.mark.slow  # tf.saved_model.save traces and writes a few MB: seconds
def test_deleting_the_run_releases_every_file_of_its_saved_model(store):
    model = Scaler()
    run = store.start_run("sm")
    run.export_saved_model(model, signatures=model.serve)
    run.export_keras(_keras_model())
    store.delete_run("sm")
    store.gc()
    assert list(store.files.digests()) == []


@pytest.mark.slow
def test_cli_export_writes_a_saved_model_directory(sqlite_store, tmp_path):
    model = Scaler()
    info = sqlite_store.start_run("sm").export_saved_model(model, signatures=model.serve)
    sqlite_store.set_alias("prod", info)
    out = run_cli("export", "prod", "--to", str(tmp_path / "deploy"), store=sqlite_store.root)
    assert out.returncode == 0, out.stderr
    assert "SavedModel directory" in out.stdout
    loaded = tf.saved_model.load(str(tmp_path / "deploy"))
    np.testing.assert_allclose(
        loaded.signatures["serving_default"](x=tf.constant(X))["y"].numpy(), model.serve(tf.constant(X))["y"].numpy()
    )
