"""Fixtures of the command-line tests: a populated store built once per test module, and a
private copy of it per test."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.populated import build_populated


@pytest.fixture(scope="module")
def populated_template(tmp_path_factory: pytest.TempPathFactory, seed_session: Any, tiny_model: Any) -> Path:
    loc = tmp_path_factory.mktemp("template") / "store"
    build_populated(loc, seed_session, tiny_model)
    assert not (loc / "store.db-wal").exists()
    return loc


@pytest.fixture
def populated(populated_template: Path, tmp_path: Path) -> Path:
    """A copy of the populated store of this module, the test's to change."""
    loc = tmp_path / "store"
    shutil.copytree(populated_template, loc, symlinks=True)
    return loc
