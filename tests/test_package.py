"""The package's lazy attributes and records accepted as references."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.processes import run_py
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()


# =========================================================================== 14. the lazy keras attribute


@pytest.mark.slow
def test_keras_callback_is_an_attribute_of_the_package_in_a_fresh_interpreter():
    r = run_py("import ckptstore\nprint(ckptstore.keras.StoreCallback.__name__)", timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "StoreCallback"


# =========================================================================== 15. records as references


def test_records_the_api_returns_are_accepted_as_references(store, seed_session, tiny_model, tmp_path):
    run = store.start_run("r")
    ck = run.save(tiny_model(2.0, 0.5), 1)
    exp = run.freeze(seed_session, ["op_to_store"], step=1)
    run.finish()

    assert store.set_alias("prod", exp).target == exp.ref
    assert store.set_alias("v", ck).target == ck.ref
    assert store.checkpoint(ck).id == ck.id
    assert store.resolve(exp).id == exp.id
    assert [v.name for v in store.variables(ck)] == [v.name for v in store.variables(ck.ref)]
    assert float(store.load_frozen(exp)(x=5.0, y=5.0)) == 26.0

    target = tiny_model(0.0, 0.0)
    assert store.restore(ck, target).id == ck.id
    np.testing.assert_array_equal(target.w.numpy(), np.full([3, 2], 2.0, np.float32))
    np.testing.assert_array_equal(store.read_variable(ck, "model/w"), np.full([3, 2], 2.0, np.float32))

    prefix = store.materialize(ck, tmp_path / "out")
    assert tf.train.latest_checkpoint(str(tmp_path / "out")) == str(prefix)
    pb = store.export_frozen(exp, tmp_path / "model.pb")
    assert pb.read_bytes() == store.files.read_bytes(exp.digest)
    # A record taken from a listing works the same.
    listed = store.exports("r")[0]
    assert store.load_frozen(listed)(5.0, 5.0) is not None
    assert store.diff_variables(ck, store.checkpoints("r")[0]).changed == []
