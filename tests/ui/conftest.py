"""Fixtures of the web-view tests: a Keras sweep's store served read-only on loopback, and
pages of the session's chromium (``browser``, in the root conftest) at desk and phone width."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import browser as chromium
from tests.helpers.skips import require_tensorflow
from tests.helpers.ui import Served, serve_in_thread, shared_keras_store, shared_store


@pytest.fixture(scope="session")
def keras_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tensorflow()
    return shared_keras_store(tmp_path_factory)


@pytest.fixture(scope="session")
def keras_served(keras_store: Path) -> Iterator[Served]:
    yield from serve_in_thread(keras_store)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    p = chromium.new_page(browser)
    try:
        yield p
    finally:
        p.context.close()


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    """A page 390 px wide (a phone held upright)."""
    p = chromium.new_page(browser, width=390, height=844)
    try:
        yield p
    finally:
        p.context.close()


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tensorflow()
    return shared_store(tmp_path_factory)
