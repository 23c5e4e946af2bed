"""The docs store: built once per session (the demo run twice, a TF1 Saver directory imported),
copied by each test that runs documented examples on it."""

from __future__ import annotations

import pytest

from tests.helpers.docs import DocsStore, build_docs_store
from tests.helpers.skips import require_tensorflow


@pytest.fixture(scope="session")
def docs_store(tmp_path_factory: pytest.TempPathFactory) -> DocsStore:
    require_tensorflow()
    return build_docs_store(tmp_path_factory.mktemp("docs-store"))
