"""Every ```python block of README.md and docs/*.md is valid Python (a ``>>>`` transcript: each
statement of it), so a renamed keyword or a typo in an example fails here even where no test runs
the block.

Blocks that tests run as written: README's "Keras in 5 minutes" (tests/docs/test_readme_keras.py),
docs/python-api.md's "Preemption-safe training" (tests/test_preemption.py), docs/distributed.md
(tests/test_distributed_jobs.py); the TF1/TF2 drop-in diffs are tests/docs/test_tutorial.py's
programs. The others are sketches over names they do not define (``loss_value``, ``ckpt``, a
store of MNIST runs), compiled only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _statements(block: str) -> list[str]:
    """The code of a block: itself, or the statements of a ``>>>`` transcript (output lines dropped)."""
    if not block.lstrip().startswith(">>>"):
        return [block]
    statements: list[list[str]] = []
    for line in block.splitlines():
        if line.startswith(">>> "):
            statements.append([line[4:]])
        elif line.startswith("... ") and statements:
            statements[-1].append(line[4:])
    return ["\n".join(s) + "\n" for s in statements]


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_python_blocks_compile(path: Path) -> None:
    blocks = BLOCK.findall(path.read_text(encoding="utf-8"))
    for number, block in enumerate(blocks, 1):
        for code in _statements(block):
            try:
                compile(code, f"{path.name} python block {number}", "exec")
            except SyntaxError as e:
                pytest.fail(f"{path.name}, python block {number}: {e}\n{code}")


def test_transcripts_are_split_into_statements() -> None:
    assert _statements(">>> with x:\n...     y()\n>>> z\n'out'\n") == ["with x:\n    y()\n", "z\n"]
