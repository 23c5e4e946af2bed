"""The ported upstream tests: the drop-ins record into one store for the session (each test's
directories become runs of it), found as the default store through ``$CKPTSTORE_URI``."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def upstream_store_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("upstream") / ".ckptstore")


@pytest.fixture(autouse=True)
def _default_store(upstream_store_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CKPTSTORE_URI", upstream_store_uri)
