"""The area contract (area_contract.py) on ckptstore's own backends: a local directory, and an
S3 bucket on moto's server (shared for the session, a new bucket per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ckptstore.files.area import ObjectArea
from ckptstore.files.registry import open_area
from tests.files.area_contract import AreaContract


class TestLocalArea(AreaContract):
    @pytest.fixture
    def area(self, tmp_path: Path) -> Iterator[ObjectArea]:
        area = open_area(tmp_path / "files")
        yield area
        area.close()


class TestS3Area(AreaContract):
    @pytest.fixture
    def area(self, s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ObjectArea]:
        monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache"))
        area = open_area(f"s3://{s3_server.new_bucket()}/contract")
        yield area
        area.close()
