"""The small populated store the command-line safety tests share (``tests/cli/conftest.py``
builds it once per module), and what they read back from a copy of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ckptstore
from tests.helpers.hardening import store_state


def build_populated(loc: Path, seed_session: Any, tiny_model: Any) -> None:
    """Run "r": metrics at steps 1..3, checkpoint r@1 (w = 2.0), export:1 of the seed graph at
    step 1; the alias "prod" -> r@1."""
    with ckptstore.open_store(str(loc)) as s:
        with s.start_run("r", params={"lr": 0.1}, tags={"team": "x"}) as run:
            for step in (1, 2, 3):
                run.log(step, loss=1.0 / step)
            run.save(tiny_model(2.0, 0.5), 1)
            run.freeze(seed_session, ["op_to_store"], step=1)
        s.set_alias("prod", "r@1", message="first")


def state_of(loc: Path) -> dict[str, Any]:
    with ckptstore.open_store(str(loc), create=False) as s:
        return store_state(s)


def checkpoint_of(loc: Path, ref: str = "r@1") -> Any:
    with ckptstore.open_store(str(loc), create=False) as s:
        return s.checkpoint(ref)


def export_of(loc: Path, ref: str = "export:1") -> Any:
    with ckptstore.open_store(str(loc), create=False) as s:
        return s.resolve(ref)


def object_bytes(loc: Path, digest: str) -> bytes:
    return (loc / "objects" / digest[:2] / digest[2:]).read_bytes()
