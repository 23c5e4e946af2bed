"""Every ```python block of README.md and docs/*.md runs in a test, and is valid Python.

Where each one runs (``RUN_BY``, checked below, so a new block needs a home):

* README's "Keras in 5 minutes": ``tests/docs/test_readme_keras.py``, block by block, a crash and
  a resume included.
* docs/python-api.md's "The library" and "SavedModel and .keras exports": here, as one script
  in a fresh directory (``test_the_library_script_runs_as_written``).
* docs/python-api.md's "Preemption-safe training": ``tests/test_preemption.py``, each run twice.
* docs/distributed.md: ``tests/test_distributed_jobs.py``, each on real ``tf.distribute`` workers.
* ``>>>`` transcripts (docs/cli.md): here, statement by statement on a copy of the docs store
  (``tests/docs/conftest.py``), each statement's printed value or exception compared with the
  lines under it, with the console examples' placeholders (run names, ``/home/me/project``,
  timestamps) plus ``wall_time=``/``replaced_at=`` numbers and the name ``start_run()`` picks.

None needs PostgreSQL, S3 or a server: their pages show those steps as ```sh blocks, which
``tests/cli/test_commands.py`` (PostgreSQL), ``tests/files`` (S3) and ``tests/cli/test_ui_command.py``
cover. The TF1/TF2 drop-in diffs (```diff) are ``tests/docs/test_tutorial.py``'s programs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.docs import DOC_FILES, ROOT, DocsStore, env, matches, normalise

BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

#: (file, the section a block is in) -> the test that runs its blocks as written
RUN_BY = {
    ("README.md", "Keras in 5 minutes"): "tests/docs/test_readme_keras.py",
    ("python-api.md", "The library"): "tests/docs/test_python_blocks.py",
    ("python-api.md", "SavedModel and .keras exports"): "tests/docs/test_python_blocks.py",
    ("python-api.md", "Preemption-safe training"): "tests/test_preemption.py",
    ("distributed.md", "*"): "tests/test_distributed_jobs.py",
}


def _python_blocks(path: Path) -> list[tuple[str, str]]:
    """Each python block of a file with the title of the section it is in."""
    text = path.read_text(encoding="utf-8")
    heads = [(m.start(), m.group(1).strip()) for m in re.finditer(r"^#{2,3} (.*)$", text, re.M)]
    found = []
    for m in BLOCK.finditer(text):
        section = next((title for start, title in reversed(heads) if start < m.start()), "")
        found.append((section, m.group(1)))
    return found


def _is_transcript(block: str) -> bool:
    return block.lstrip().startswith(">>>")


def _transcript(block: str) -> list[tuple[str, list[str]]]:
    """The statements of a ``>>>`` transcript, each with the output lines documented under it."""
    statements: list[tuple[list[str], list[str]]] = []
    for line in block.splitlines():
        if line.startswith(">>> "):
            statements.append(([line[4:]], []))
        elif line.startswith("... ") and statements and not statements[-1][1]:
            statements[-1][0].append(line[4:])
        elif statements:
            statements[-1][1].append(line)
    return [("\n".join(code) + "\n", out) for code, out in statements]


def _statements(block: str) -> list[str]:
    """The code of a block: itself, or the statements of a ``>>>`` transcript."""
    return [code for code, _ in _transcript(block)] if _is_transcript(block) else [block]


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_python_blocks_compile(path: Path) -> None:
    for number, (_, block) in enumerate(_python_blocks(path), 1):
        for code in _statements(block):
            try:
                compile(code, f"{path.name} python block {number}", "exec")
            except SyntaxError as e:
                pytest.fail(f"{path.name}, python block {number}: {e}\n{code}")


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_every_python_block_is_run_by_a_test(path: Path) -> None:
    for section, block in _python_blocks(path):
        if _is_transcript(block):
            continue  # test_transcripts_print_what_they_show
        runner = RUN_BY.get((path.name, section)) or RUN_BY.get((path.name, "*"))
        assert runner, f"{path.name}, section {section!r}: a python block no test runs (add it to RUN_BY)"
        # the runner reads the blocks from the page itself, so they cannot drift apart
        assert path.name in (ROOT / runner).read_text(encoding="utf-8"), (path.name, runner)


def test_transcripts_are_split_into_statements() -> None:
    assert _transcript(">>> with x:\n...     y()\n>>> z\n'out'\n...\n") == [("with x:\n    y()\n", []), ("z\n", ["'out'", "..."])]


# --------------------------------------------------------------------------- >>> transcripts

# Runs each statement in one interpreter, as a user types them: an expression's repr is printed
# (None is not), an exception as "Type: message"; a marker line before each statement.
DRIVER = """
import ast, json, sys
import ckptstore
namespace = {"ckptstore": ckptstore, "store": ckptstore.open_store()}
for code in json.load(sys.stdin):
    print(MARK, flush=True)
    try:
        tree = ast.parse(code)
        if len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr):
            value = eval(compile(ast.Expression(tree.body[0].value), "<doc>", "eval"), namespace)
            if value is not None:
                print(repr(value))
        else:
            exec(compile(tree, "<doc>", "exec"), namespace)
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}")
"""
MARK = "----- ckptstore docs statement -----"
TRANSCRIPT_FILES = [p for p in DOC_FILES if any(_is_transcript(b) for _, b in _python_blocks(p))]


@pytest.mark.slow  # the docs store is the demo, run twice (TensorFlow)
@pytest.mark.parametrize("path", TRANSCRIPT_FILES, ids=lambda p: p.name)
def test_transcripts_print_what_they_show(path: Path, docs_store: DocsStore, tmp_path: Path) -> None:
    cwd = tmp_path / "work"
    shutil.copytree(docs_store.path, cwd, symlinks=True)
    statements = [s for _, b in _python_blocks(path) if _is_transcript(b) for s in _transcript(b)]
    code = [docs_store.to_real(c, cwd) for c, _ in statements]
    r = subprocess.run([sys.executable, "-c", f"MARK = {MARK!r}\n" + DRIVER], cwd=cwd, env=env(), text=True,
                       input=json.dumps(code), capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    outputs = docs_store.to_doc(r.stdout, cwd).split(MARK + "\n")[1:]
    assert len(outputs) == len(statements), r.stdout
    failures = [f">>> {c}--- documented:\n" + "\n".join(expected) + "\n--- real:\n" + out
                for (c, expected), out in zip(statements, outputs, strict=True)
                if not matches(normalise(expected), normalise(out.splitlines()))]
    assert not failures, f"{path.name}: {len(failures)} statement(s) print otherwise\n\n" + "\n\n".join(failures)


# --------------------------------------------------------------------------- python-api.md's script


@pytest.mark.slow  # one interpreter importing TensorFlow, 500 small steps, three exports
def test_the_library_script_runs_as_written(tmp_path: Path) -> None:
    import ckptstore

    blocks = dict(_python_blocks(ROOT / "docs" / "python-api.md"))
    script = blocks["The library"] + blocks["SavedModel and .keras exports"]
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env(), text=True, capture_output=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "tf.Tensor(" in r.stdout  # the frozen graph's answer
    with ckptstore.open_store(tmp_path / ".ckptstore") as store:
        assert [c.step for c in store.checkpoints("linear")] == [300, 400, 500]
        assert store.checkpoint("prod").step == 500 and store.best("linear", "loss").step == 500
        assert [(e.kind, e.step) for e in store.exports("linear")] == [
            ("tf2-function", 500), ("saved-model", 500), ("keras", 500)]
        assert store.resolve("serving").kind == "saved-model"
    assert (tmp_path / "out" / "model.ckpt-400.index").exists()  # linear@~450
    assert (tmp_path / "deploy" / "1" / "saved_model.pb").exists()
