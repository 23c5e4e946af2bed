"""The static checks gate the tests: ``make test``, ``make test-fast`` and CI run ruff and mypy first."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def _targets() -> dict[str, tuple[list[str], list[str]]]:
    """Makefile target -> (prerequisites, recipe lines)."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    current = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        m = re.match(r"^([A-Za-z][\w-]*):(?!=)\s*(.*)$", line)
        if m:
            current = m.group(1)
            out[current] = (m.group(2).replace("|", " ").split(), [])
        elif line.startswith("\t") and current:
            out[current][1].append(line.strip())
    return out


def test_make_test_and_test_fast_run_the_static_checks_first():
    targets = _targets()
    assert "check" in targets["test"][0] and "check" in targets["test-fast"][0]
    recipe = " ; ".join(targets["check"][1])
    assert "ruff check" in recipe and "mypy" in recipe
    assert "make test" in (ROOT / ".ci" / "run").read_text()  # CI goes through the same target


def test_mypy_runs_on_the_package_with_no_arguments():
    # `mypy` alone (as `make check` calls it) must check the package: the config says what.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["packages"] == ["ckptstore"]
    ruff = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]["select"]
    assert {"F", "B"} <= set(ruff)  # pyflakes and bugbear at least
