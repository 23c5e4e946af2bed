"""What every flow works on: one store's database and its object area."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import StoreConfigError
from ..files.area import ObjectArea
from ..metadata.engine import Database


@dataclass(frozen=True)
class Backend:
    db: Database
    area: ObjectArea | None

    @property
    def files(self) -> ObjectArea:
        """The object area; a clear error for a database-only store (PostgreSQL without a root)."""
        if self.area is None:
            raise StoreConfigError("this store has no file root: pass root= to open_store or set CKPTSTORE_ROOT")
        return self.area
