"""Every console example in README.md and docs/*.md, run against a real store and compared with
its real output, so that no example can go stale.

What is checked: each fenced block opened with ```console. In it, a line ``$ ckptstore ARGS``
is a command (run as ``python -m ckptstore ARGS`` in a real subprocess, split as a POSIX shell
splits it), ``$ echo $?`` prints the exit status of the command before it, and every other line
up to the next ``$`` line is the documented output (stdout and stderr, as a terminal shows them
interleaved). Blocks of any other language (```text, ```sh, ```python) are not run: benchmark
figures, a server's start-up line, multi-host examples. A ``$`` line that is neither of the two
forms fails the test (write such an example as ```text, or make it checkable).

The store: the demo run twice (``ckptstore demo`` in an empty directory, as ``make demo`` does;
its second call's output is what a documented ``$ ckptstore demo`` is compared with), then
``ckptstore import old-run --run seed-saver`` of a directory written by
``tf.compat.v1.train.Saver`` (a scalar ``b`` saved at steps 1000 and 2000). Each file's blocks run
in order, on a fresh copy of that store: a file may move aliases or delete runs without
touching another file's examples.

Exact, except these declared placeholders, applied to the documented and the real output alike:

* ``DOC_RUNS``: the demo's run names hold the time they were made. The docs use the two names
  below; the real runs, in the order they were made, stand in for them (commands included).
  They have the same length, so columns stay aligned.
* ``DOC_DIR``: the directory the commands run in (the store is its ``.ckptstore``) is written
  ``/home/me/project`` in the docs, as error messages name the store by its absolute path.
* Timestamps (``2026-12-06 10:15:00``, ISO ``2026-12-06T10:15:00.123456+00:00``, and a JSON
  ``"wall_time"`` in seconds since the epoch) compare as ``<TIME>``, and the demo's own duration
  ``(4.2 s)`` as ``(<SECONDS> s)``.
* A line that is exactly ``...`` stands for any number of lines (zero included): it cuts a long
  listing or JSON record.
* Trailing spaces are ignored.

``CKPTSTORE_DOCS_UPDATE=1`` rewrites every console block with the real output instead of comparing
(names mapped back to ``DOC_RUNS``) where it differs; an example that matches is left as it is.
Read the diff before committing.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers.skips import require_tensorflow

pytestmark = pytest.mark.slow  # the store is the demo, run twice (TensorFlow)

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOC_RUNS = ("demo-20261206-101500", "demo-20261206-101506")
DOC_DIR = "/home/me/project"
UPDATE = os.environ.get("CKPTSTORE_DOCS_UPDATE") == "1"

BLOCK = re.compile(r"^```console\n(.*?)^```\n", re.S | re.M)
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:\d{2})?")
SECONDS = re.compile(r"\(\d+\.\d+ s\)")
WALL_TIME = re.compile(r'"wall_time": [0-9.e+]+')
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


@dataclass
class Command:
    line: str  # after "$ "
    expected: list[str] = field(default_factory=list)


@dataclass
class Block:
    path: Path
    start: int  # character offset of the block's body in its file
    end: int
    commands: list[Command]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CKPTSTORE_") and k != "COLUMNS"}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1", "PYTHONHASHSEED": "0"})
    return env


def _ckptstore(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ckptstore", *args], cwd=cwd, env=_env(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)


def blocks(path: Path) -> list[Block]:
    """The console blocks of one file, each split into its commands and their documented output."""
    found = []
    for match in BLOCK.finditer(path.read_text(encoding="utf-8")):
        commands: list[Command] = []
        for line in match.group(1).splitlines():
            if line.startswith("$ "):
                commands.append(Command(line[2:]))
            elif not commands:
                raise AssertionError(f"{path.name}: a console block starts with output, not '$ ': {line!r}")
            else:
                commands[-1].expected.append(line)
        found.append(Block(path, match.start(1), match.end(1), commands))
    return found


def normalise(lines: list[str]) -> list[str]:
    return [WALL_TIME.sub('"wall_time": <TIME>', SECONDS.sub("(<SECONDS> s)", TIMESTAMP.sub("<TIME>", line))).rstrip()
            for line in lines]


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


@pytest.fixture(scope="session")
def docs_store(tmp_path_factory: pytest.TempPathFactory) -> DocsStore:
    require_tensorflow()
    cwd = tmp_path_factory.mktemp("docs-store")
    outputs = []
    for _ in range(2):
        r = subprocess.run([sys.executable, "-m", "ckptstore", "demo"], cwd=cwd, env=_env(), text=True,
                           capture_output=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        outputs.append(r.stdout)
    runs = tuple(sorted(set(DEMO_NAME.findall(outputs[0] + outputs[1]))))
    assert len(runs) == 2, runs
    r = subprocess.run([sys.executable, "-c", SAVER_SCRIPT], cwd=cwd, env=_env(), text=True, capture_output=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    r = _ckptstore(["import", "old-run", "--run", "seed-saver"], cwd)
    assert r.returncode == 0, r.stdout
    return DocsStore(cwd, runs, outputs[1])


def _run_block_commands(block: Block, store: DocsStore, cwd: Path, last: list[int]) -> list[list[str]]:
    """Run a block's commands in ``cwd``; return each one's real output lines (names as documented)."""
    outputs = []
    for command in block.commands:
        if command.line == "echo $?":
            out = f"{last[0]}\n"
        else:
            args = shlex.split(store.to_real(command.line, cwd))
            assert args[0] == "ckptstore", (
                f"{block.path.name}: '$ {command.line}' is not a ckptstore command nor 'echo $?': "
                "write that example as a ```text block"
            )
            if args[1:] == ["demo"]:
                out, last[0] = store.demo_output, 0  # the fixture ran it; a third run would change the store
            else:
                r = _ckptstore(args[1:], cwd)
                out, last[0] = r.stdout, r.returncode
        outputs.append(store.to_doc(out, cwd).splitlines())
    return outputs


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_console_examples_print_what_they_show(path: Path, docs_store: DocsStore, tmp_path: Path) -> None:
    found = blocks(path)
    if not found:
        pytest.skip(f"{path.name} has no console examples")
    cwd = tmp_path / "work"
    shutil.copytree(docs_store.path, cwd, symlinks=True)
    last = [0]
    failures = []
    text = path.read_text(encoding="utf-8")
    rewritten, offset = text, 0
    for block in found:
        outputs = _run_block_commands(block, docs_store, cwd, last)
        if UPDATE:
            # an example that still matches keeps its text (and its '...' cuts)
            body = "".join(f"$ {c.line}\n" + "".join(
                f"{line}\n" for line in (c.expected if matches(normalise(c.expected), normalise(out)) else out))
                for c, out in zip(block.commands, outputs, strict=True))
            rewritten = rewritten[: block.start + offset] + body + rewritten[block.end + offset:]
            offset += len(body) - (block.end - block.start)
            continue
        for command, actual in zip(block.commands, outputs, strict=True):
            if not matches(normalise(command.expected), normalise(actual)):
                failures.append(f"$ {command.line}\n--- documented:\n" + "\n".join(command.expected)
                                + "\n--- real:\n" + "\n".join(actual))
    if UPDATE:
        path.write_text(rewritten, encoding="utf-8")
        return
    assert not failures, f"{path.name}: {len(failures)} example(s) differ from real output\n\n" + "\n\n".join(failures)


def test_matching_rules() -> None:
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"]) and matches(["a", "...", "b"], ["a", "b"])
    assert not matches(["a", "b"], ["a", "c"]) and not matches(["a"], ["a", "b"])
    assert normalise(["2026-11-24 12:29:41  x", "at 2026-11-24T12:29:48.880253+00:00 (4.2 s)  ",
                      '{"wall_time": 1795523388.8689914}']) == ["<TIME>  x", "at <TIME> (<SECONDS> s)", '{"wall_time": <TIME>}']
    [block] = blocks_of("$ ckptstore runs list\nname\n$ echo $?\n0\n")
    assert [(c.line, c.expected) for c in block.commands] == [("ckptstore runs list", ["name"]), ("echo $?", ["0"])]


def blocks_of(body: str) -> list[Block]:
    """``blocks`` of a text, for the test of the rules."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.md"
        path.write_text(textwrap.dedent(f"text\n```console\n{body}```\n"), encoding="utf-8")
        return blocks(path)
