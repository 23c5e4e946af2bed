"""The store the docs' examples run on, and how their documented output is compared with real
output: shared by ``tests/docs/test_console_examples.py`` (```console blocks) and
``tests/docs/test_python_blocks.py`` (``>>>`` transcripts). The fixture is ``docs_store`` in
``tests/docs/conftest.py``; the rules are in test_console_examples' docstring."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOC_RUNS = ("demo-20261206-101500", "demo-20261206-101506")
DOC_DIR = "/home/me/project"

TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:\d{2})?")
SECONDS = re.compile(r"\(\d+\.\d+ s\)")
WALL_TIME = re.compile(r'"wall_time": [0-9.e+]+')
# a record's repr in a >>> transcript: MetricChange(..., wall_time=1795930321.51, replaced_at=...)
REPR_TIME = re.compile(r"\b(wall_time|replaced_at)=[0-9.e+]+")
# the name start_run() picks for a run without one
NEW_RUN_NAME = re.compile(r"\brun-\d{8}-\d{6}-[0-9a-f]{4}\b")
DEMO_NAME = re.compile(r"demo-\d{8}-\d{6}")

SAVER_SCRIPT = """
import tensorflow as tf
tf.compat.v1.disable_eager_execution()
b = tf.compat.v1.get_variable("b", [], initializer=tf.compat.v1.constant_initializer(0.5))
saver = tf.compat.v1.train.Saver()
with tf.compat.v1.Session() as sess:
    sess.run(tf.compat.v1.global_variables_initializer())
    saver.save(sess, "old-run/model.ckpt", global_step=1000)
    sess.run(b.assign(1.5))
    saver.save(sess, "old-run/model.ckpt", global_step=2000)
"""


def env() -> dict[str, str]:
    """The environment the examples run in: no CKPTSTORE_ settings, no terminal width."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("CKPTSTORE_") and k != "COLUMNS"}
    e.update({"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1", "PYTHONHASHSEED": "0"})
    return e


def ckptstore_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m ckptstore ARGS`` in ``cwd``, stdout and stderr interleaved as a terminal shows them."""
    return subprocess.run([sys.executable, "-m", "ckptstore", *args], cwd=cwd, env=env(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)


def normalise(lines: list[str]) -> list[str]:
    """The declared placeholders applied, trailing spaces dropped."""
    out = []
    for line in lines:
        line = TIMESTAMP.sub("<TIME>", line)
        line = SECONDS.sub("(<SECONDS> s)", line)
        line = WALL_TIME.sub('"wall_time": <TIME>', line)
        line = REPR_TIME.sub(r"\1=<TIME>", line)
        out.append(NEW_RUN_NAME.sub("<NEW RUN>", line).rstrip())
    return out


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` is ``expected`` with each ``...`` line standing for any lines."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and expected[0] == actual[0] and matches(expected[1:], actual[1:])


@dataclass
class DocsStore:
    path: Path
    runs: tuple[str, ...]  # the demo runs, oldest first
    demo_output: str  # the second demo call's stdout

    def to_real(self, text: str, cwd: Path) -> str:
        for doc, real in zip(DOC_RUNS, self.runs, strict=True):
            text = text.replace(doc, real)
        return text.replace(DOC_DIR, str(cwd))

    def to_doc(self, text: str, cwd: Path) -> str:
        for doc, real in zip(DOC_RUNS, self.runs, strict=True):
            text = text.replace(real, doc)
        return text.replace(str(cwd), DOC_DIR)


def build_docs_store(cwd: Path) -> DocsStore:
    """The demo run twice in ``cwd`` (as ``make demo`` does), then ``ckptstore import old-run
    --run seed-saver`` of a directory written by ``tf.compat.v1.train.Saver``."""
    outputs = []
    for _ in range(2):
        r = subprocess.run([sys.executable, "-m", "ckptstore", "demo"], cwd=cwd, env=env(), text=True,
                           capture_output=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        outputs.append(r.stdout)
    runs = tuple(sorted(set(DEMO_NAME.findall(outputs[0] + outputs[1]))))
    assert len(runs) == 2, runs
    r = subprocess.run([sys.executable, "-c", SAVER_SCRIPT], cwd=cwd, env=env(), text=True, capture_output=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    r = ckptstore_cli(["import", "old-run", "--run", "seed-saver"], cwd)
    assert r.returncode == 0, r.stdout
    return DocsStore(cwd, runs, outputs[1])
