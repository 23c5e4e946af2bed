"""Every console example in README.md and docs/*.md, run against a real store and compared with
its real output, so that no example can go stale.

What is checked: each fenced block opened with ```console. In it, a line ``$ ckptstore ARGS``
is a command (run as ``python -m ckptstore ARGS`` in a real subprocess, split as a POSIX shell
splits it), ``$ echo $?`` prints the exit status of the command before it, and every other line
up to the next ``$`` line is the documented output (stdout and stderr, as a terminal shows them
interleaved). Blocks of any other language (```text, ```sh, ```python) are not run: benchmark
figures, a server's start-up line, multi-host examples. A ``$`` line that is neither of the two
forms fails the test (write such an example as ```text, or make it checkable). A ``$ ckptstore``
line in a block of any other language fails test_console_prompts.py, so that no example escapes
this check by its block's language: one that cannot run here (S3, a server) shows its command in
the prose, or behind another prompt (``host-a$``), and says why it is not checked.

The store (``docs_store``, in tests/docs/conftest.py): the demo run twice (``ckptstore demo`` in
an empty directory, as ``make demo`` does; its second call's output is what a documented
``$ ckptstore demo`` is compared with), then
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
* A TensorBoard event file's name (``events.out.tfevents.1796578681.host.4242.1``) holds the
  time, the host and the process id: those compare as ``<TIME>``, ``<HOST>`` and ``<PID>``, its
  number (``.0`` is the HParams file at the root of ``--logdir``) exactly.
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
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers.docs import DOC_FILES, DocsStore, matches
from tests.helpers.docs import ckptstore_cli as _ckptstore
from tests.helpers.docs import normalise as _normalise

pytestmark = pytest.mark.slow  # the store is the demo, run twice (TensorFlow)

UPDATE = os.environ.get("CKPTSTORE_DOCS_UPDATE") == "1"

BLOCK = re.compile(r"^```console\n(.*?)^```\n", re.S | re.M)
EVENT_FILE = re.compile(r"\bevents\.out\.tfevents\.\d+\.\S+\.\d+\.(\d+)$")


def normalise(lines: list[str]) -> list[str]:
    """The helpers' placeholders, and the event files' names."""
    return [EVENT_FILE.sub(r"events.out.tfevents.<TIME>.<HOST>.<PID>.\1", line) for line in _normalise(lines)]



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
    assert normalise(["tb/r/events.out.tfevents.1796578681.my.host.4242.1"]) == ["tb/r/events.out.tfevents.<TIME>.<HOST>.<PID>.1"]
    [block] = blocks_of("$ ckptstore runs list\nname\n$ echo $?\n0\n")
    assert [(c.line, c.expected) for c in block.commands] == [("ckptstore runs list", ["name"]), ("echo $?", ["0"])]


def blocks_of(body: str) -> list[Block]:
    """``blocks`` of a text, for the test of the rules."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.md"
        path.write_text(textwrap.dedent(f"text\n```console\n{body}```\n"), encoding="utf-8")
        return blocks(path)
