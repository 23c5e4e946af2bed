"""No ``$ ckptstore`` example escapes tests/docs/test_console_examples.py by its block's language.

That test runs the ```console blocks only. A ``$ ckptstore`` line (environment assignments before
``ckptstore`` included) in a block of any other language, or of none, fails here: make it a
```console block, or, when it cannot run against the docs store (S3, a server, a damaged file),
show the command in the prose or behind another prompt (``host-a$``) and say why it is not
checked. Fast (text only), unlike the console test, so the fast tier runs it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers.docs import DOC_FILES

ANY_BLOCK = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```\n", re.S | re.M)
# a prompt running ckptstore, environment assignments before it included
CKPTSTORE_PROMPT = re.compile(r"^\s*\$ +(?:\w+=\S*\s+)*ckptstore\b")


def unchecked_prompts(text: str) -> list[tuple[int, str, str]]:
    """``$ ckptstore`` lines in fenced blocks the test does not run: (line number, block language, line)."""
    found = []
    for match in ANY_BLOCK.finditer(text):
        if match.group(1) == "console":
            continue
        first = text.count("\n", 0, match.start(2)) + 1
        for i, line in enumerate(match.group(2).splitlines()):
            if CKPTSTORE_PROMPT.match(line):
                found.append((first + i, match.group(1) or "(none)", line))
    return found


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_no_ckptstore_prompt_escapes_the_check(path: Path) -> None:
    escaped = unchecked_prompts(path.read_text(encoding="utf-8"))
    assert not escaped, f"{path.name}: '$ ckptstore' outside a ```console block, so never run: " + "; ".join(
        f"line {n} (```{lang}): {line!r}" for n, lang, line in escaped)


def test_prompts_outside_console_blocks_are_found() -> None:
    text = ("x\n```text\n$ ckptstore verify\nok\n$ A= B=1 ckptstore gc\n  $ ckptstore ui\n```\n"
            "```\n$ ckptstore x\n```\n```console\n$ ckptstore runs list\n```\n"
            "```sh\n$ tensorboard --logdir tb/\nhost-a$ ckptstore verify\n$ ckptstores\n```\n")
    assert [(n, lang) for n, lang, _ in unchecked_prompts(text)] == [(3, "text"), (5, "text"), (6, "text"), (9, "(none)")]
