"""README's "Keras in 5 minutes", block by block, as a user runs it: the blocks are read from the
README itself (so they cannot drift from what is tested), the training ones in one fresh
interpreter, then a crash (a process that resumed the run, logged past its latest checkpoint
and was SIGKILLed), then the resume block in another interpreter."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import ckptstore
from tests.helpers.skips import require_tensorflow

require_tensorflow()

pytestmark = pytest.mark.slow  # three interpreters importing TensorFlow

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Keras in 5 minutes", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


CRASH = """
import os, signal, ckptstore
store = ckptstore.open_store()
run = store.start_run("mlp", resume=True)
for step in range(run.next_step, run.next_step + 3):
    run.log(step, loss=123.0)
run.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_keras_in_5_minutes_runs_as_written(tmp_path: Path) -> None:
    setup, train, best, finetune, resume = _blocks()
    first = _run(setup + train + best + finetune, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert re.match(r"mlp@\d+ 0\.\d+", first.stdout.strip().splitlines()[-1])

    with ckptstore.open_store(tmp_path / ".ckptstore") as store:
        steps_before = [s.step for s in store.steps("mlp")]
        latest = store.checkpoint("mlp@latest").step
        assert store.checkpoint("prod").ref == store.best("mlp", "val_accuracy").ref
        assert [c.step for c in store.checkpoints("mlp-finetune")] == [8, 16]  # all 256 samples: 8 a epoch
    assert steps_before == list(range(1, 31)) and latest == 30  # 192 training samples / 32 = 6 a epoch

    crash = _run(CRASH, tmp_path)
    assert crash.returncode == -signal.SIGKILL

    second = _run(setup + resume, tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    with ckptstore.open_store(tmp_path / ".ckptstore") as store:
        rows = store.steps("mlp")
        assert [r.step for r in rows] == list(range(1, 49))  # 8 epochs, every step once
        assert {r.step: r.metrics["epoch"] for r in rows if "epoch" in r.metrics} == {6 * e: float(e) for e in range(1, 9)}
        assert 123.0 not in [r.metrics.get("loss") for r in rows]
        # What the crashed process logged after the checkpoint is kept, in the history.
        assert sorted({(h.step, h.value) for h in store.metric_history("mlp")}) == [(31, 123.0), (32, 123.0), (33, 123.0)]
        assert store.checkpoint("mlp@latest").step == 48
        assert store.get_run("mlp").status == "finished"
