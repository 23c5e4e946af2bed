"""``ckptstore demo`` as ``make demo`` runs it: in the default store of the current directory, twice.

Every test here shares the two demo runs (a Keras model trained twice): the module is slow.
"""

from __future__ import annotations

import json

import pytest

import ckptstore
from tests.helpers.cli import as_json, cli, fails, ok
from tests.helpers.skips import require_tensorflow

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_twice(tmp_path_factory):
    """Run the demo twice in one directory (default store ./.ckptstore); return (cwd, outputs)."""
    require_tensorflow()
    cwd = tmp_path_factory.mktemp("demo")
    outputs = []
    for _ in range(2):
        r = cli("demo", cwd=cwd)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "Traceback" not in r.stderr
        outputs.append(r.stdout)
    return cwd, outputs


def test_demo_reports_what_it_did_and_how_to_explore(demo_twice):
    cwd, (first, second) = demo_twice
    assert first.startswith("ckptstore demo: run demo-")
    for phrase in ("trained a 8-32-1 Keras MLP (learning rate 0.01) for 300 steps", "saved 12 checkpoints", "as 'best'",
                   "alias 'best-frozen'", "outputs match the restored model", "wrote the loss plot",
                   "Explore it:", "ckptstore restore best --to demo-restore"):
        assert phrase in first
    assert "(moved from demo-" in second and "(moved from" not in first
    assert (cwd / "demo-loss.png").read_bytes()[:4] == b"\x89PNG"


def test_demo_leaves_a_store_the_library_reads(demo_twice):
    cwd, _ = demo_twice
    with ckptstore.open_store(cwd / ".ckptstore", create=False) as store:
        runs = store.runs()
        assert len(runs) == 2 and all(r.status == "finished" and r.name.startswith("demo-") for r in runs)
        second = runs[0].name  # newest first
        assert store.get_run(second).retention["max_to_keep"] == 3
        kept = store.checkpoints(second)
        assert 3 <= len(kept) <= 4 and kept[-1].step == 300
        best = store.checkpoint("best")
        assert best.run == second and "best" in best.aliases
        [alias] = store.aliases("best")
        assert [e.action for e in alias.history] == ["move", "set"]
        frozen = store.resolve("best-frozen")
        assert frozen.ref.startswith("export:") and frozen.run == second and frozen.step == best.step
        assert store.verify().ok
        steps = store.steps(second, keys=["loss"])
        assert len(steps) == 300
        # the second run is the next setting of the demo's grid: the plot compares two curves
        assert runs[1].params["lr"] != runs[0].params["lr"]
        assert store.steps(second, keys=["loss"])[-1].metrics != store.steps(runs[1].name, keys=["loss"])[-1].metrics


def test_cli_commands_work_on_the_demo_store(demo_twice, tmp_path):
    tf = require_tensorflow()
    cwd, _ = demo_twice
    runs = as_json("runs", "list", cwd=cwd)
    name = runs[0]["name"]  # newest first
    assert "best" in ok("checkpoints", name, cwd=cwd)
    assert {v["name"] for v in as_json("aliases", cwd=cwd)} == {"best", "best-frozen"}
    out = ok("restore", "best", "--to", str(tmp_path / "restored"), cwd=cwd)
    assert "model.ckpt-" in out
    with ckptstore.open_store(cwd / ".ckptstore", create=False) as store:
        best_step = store.checkpoint("best").step  # the lowest loss: not always the last step
    assert tf.train.latest_checkpoint(str(tmp_path / "restored")).endswith(f"-{best_step}")
    ok("export", "best-frozen", "--to", str(tmp_path / "model.pb"), cwd=cwd)
    assert json.loads((tmp_path / "model.pb.json").read_text())["lineage"]["run"] == name


#: Runs the CLI as if the packages ``{missing}`` (fill in with ``.format``) were not installed:
#: a finder ahead of the real ones refuses them, as a missing package would.
MISSING = """
import runpy, sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {missing!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Missing())
sys.argv = ["ckptstore", *sys.argv[1:]]
runpy.run_module("ckptstore", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(("missing", "says"), [
    (("tensorflow", "keras"), "error: this operation needs TensorFlow: pip install tensorflow-cpu"),
    (("keras",), "error: the demo needs Keras, which comes with TensorFlow (no module named 'keras'): pip install"),
], ids=["no-tensorflow", "no-keras"])
def test_demo_without_tensorflow_says_what_to_install(tmp_path, missing, says):
    line = fails("demo", cwd=tmp_path, code=MISSING.format(missing=missing))
    assert line.startswith(says), line
    assert not (tmp_path / ".ckptstore").exists()  # refused before anything was made
