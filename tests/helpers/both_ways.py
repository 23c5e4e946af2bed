"""A CLI command run both ways, on the quick path (``sqlite3``) and on the store's
(``CKPTSTORE_QUICK=0``), each on its own copy of one store and with its own output directory
``{out}``: the two must print the same, write the same and leave the same store behind."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from tests.helpers.cli import IMPORTS_CHECK, cli, imported
from tests.helpers.hardening import tree


class Way(NamedTuple):
    store: Path
    out: Path
    done: subprocess.CompletedProcess[str]


def both_ways(
    stored: Path, tmp_path: Path, args: list[str], prepare: Callable[[Path, Path], None] | None = None
) -> tuple[Way, Way]:
    """``args`` (``{out}`` in them: a path of each copy's own) on two copies of ``stored``; the
    quick path's run reports the heavy modules it imported (``imported(quick.done.stderr)``).
    ``prepare(store, out)`` runs on each copy first (damage, an existing target)."""
    ways = []
    for name, env, code in (("quick", None, IMPORTS_CHECK), ("store", {"CKPTSTORE_QUICK": "0"}, None)):
        copy = tmp_path / name / "store"
        shutil.copytree(stored, copy)
        out = tmp_path / name / "out"
        if prepare is not None:
            prepare(copy, out)
        done = cli(*[a.replace("{out}", str(out)) for a in args], store=copy, env=env, code=code)
        ways.append(Way(copy, out, done))
    return ways[0], ways[1]


def assert_same(quick: Way, normal: Way) -> None:
    """The same exit status, output and error (paths aside), the same files written at
    ``{out}`` and nothing else beside it, the same store files afterwards."""

    def words(text: str, way: Way) -> str:
        return text.replace(str(way.store.resolve()), "STORE").replace(str(way.out.parent), "HERE").strip()

    q_err = words(quick.done.stderr.rsplit("\nIMPORTED", 1)[0], quick)
    assert (quick.done.returncode, words(quick.done.stdout, quick), q_err) == (
        normal.done.returncode, words(normal.done.stdout, normal), words(normal.done.stderr, normal)
    )
    assert tree(quick.out, mtimes=False) == tree(normal.out, mtimes=False)
    # Beside the target nothing is left (temporary files and directories moved or removed).
    assert sorted(p.name for p in quick.out.parent.iterdir()) == sorted(p.name for p in normal.out.parent.iterdir())
    stores = [{k: v for k, v in tree(w.store, mtimes=False).items() if not k.startswith("store.db")} for w in (quick, normal)]
    assert stores[0] == stores[1]


def store_answered(quick: Way) -> bool:
    """Whether the quick path's run left the command to the store (it imported SQLAlchemy)."""
    return "sqlalchemy" in imported(quick.done.stderr)


def corrupt_objects(store: Path, out: Path) -> None:
    """Flip a byte of every stored object larger than 16 bytes (a ``prepare``)."""
    from tests.helpers.damage import flip_byte

    for p in sorted((store / "objects").rglob("*")):
        if p.is_file() and p.stat().st_size > 16:
            flip_byte(p, 0)


def existing(name: str) -> Callable[[Path, Path], None]:
    """A ``prepare`` that leaves a file of the user's at ``{out}/name``."""

    def prepare(store: Path, out: Path) -> None:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("the user's own\n")

    return prepare
