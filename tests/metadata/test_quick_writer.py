"""The CLI's alias writes through ``sqlite3`` (``QuickWriter``) do exactly what the store's do.

The same changes are applied to two copies of one store, one through ``QuickWriter`` and one
through ``Store``: the aliases and their history must come out equal (times aside). Errors are
worded as the store words them, or handed to the store (``Fallback``) with nothing written;
a store this writer does not handle (older schema, not SQLite) is left to the store. Real
subprocesses check the CLI both ways and that the quick path never imports SQLAlchemy.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest

import ckptstore
from ckptstore.errors import InvalidNameError, UnknownAliasError, UnknownRefError, UnknownRunError
from ckptstore.metadata.quick_reader import Fallback
from ckptstore.metadata.quick_writer import QuickWriter
from tests.helpers.cli import IMPORTS_CHECK, cli, imported
from tests.helpers.skips import require_tensorflow

require_tensorflow()


@pytest.fixture(scope="module")
def template(tmp_path_factory, new_sqlite_store_files, seed_session) -> Path:
    """A closed store: run 'r' with checkpoints at 1, 2, 3 and an export (export:1); no alias."""
    path = tmp_path_factory.mktemp("quick-writer") / "store"
    shutil.copytree(new_sqlite_store_files, path)
    with ckptstore.open_store(str(path)) as store:
        run = store.start_run("r")
        for step in (1, 2, 3):
            run.save(seed_session, step)
        run.freeze(seed_session, ["op_to_store"], step=3)
        run.finish()
    return path


@pytest.fixture
def twins(template, tmp_path) -> tuple[Path, Path]:
    """Two copies of the template: one for the quick writer, one for the store."""
    a, b = tmp_path / "quick", tmp_path / "store"
    shutil.copytree(template, a)
    shutil.copytree(template, b)
    return a, b


def _state(path: Path) -> list[tuple]:
    """Every alias and every history event, without times (the two copies ran at other times)."""
    con = sqlite3.connect(str(path / "store.db"))
    try:
        aliases = con.execute("SELECT name, checkpoint_id, export_id, message FROM aliases ORDER BY name").fetchall()
        events = con.execute(
            "SELECT id, alias_name, action, old_target, new_target, message FROM alias_events ORDER BY id"
        ).fetchall()
        stamps = [row[0] for row in con.execute("SELECT updated_at FROM aliases UNION ALL SELECT at FROM alias_events")]
    finally:
        con.close()
    # Stored as SQLAlchemy stores them on SQLite, whoever wrote them: the text order is time order.
    for stamp in stamps:
        assert len(stamp) == 26 and stamp[10] == " " and stamp[19] == ".", stamp
    return [*aliases, *events]


CHANGES = [
    ("set", "prod", "r@1", "first"),
    ("set", "prod", "r@1", None),  # same target, no message: nothing happens
    ("set", "prod", "r@1", "renamed"),  # same target, new message: kept, no event
    ("set", "prod", "r@2", None),  # a move without a message keeps the alias's
    ("set", "prod", "r@latest", "to the newest"),
    ("set", "best", "prod", None),  # an alias names the other's current target
    ("set", "shipped", "export:1", "the SavedModel"),
    ("set", "shipped", "r@~2", None),  # from an export to a checkpoint
    ("remove", "prod", None, "retired"),
    ("set", "prod", "r@1", None),  # the same name again, after its removal
]


def _apply(target, change) -> object:
    action, name, ref, message = change
    if action == "set":
        return target.set_alias(name, ref, message=message)
    return target.remove_alias(name, message=message)


def test_the_same_changes_leave_the_same_aliases_and_history(twins):
    quick_path, store_path = twins
    with ckptstore.open_store(str(store_path)) as store:
        store_results = [_apply(store, change) for change in CHANGES]
    writer = QuickWriter.open(quick_path)
    assert writer is not None
    with writer:
        quick_results = [_apply(writer, change) for change in CHANGES]
    assert _state(quick_path) == _state(store_path)
    # The same records back: the alias after each set, the old target after each remove.
    for mine, theirs in zip(quick_results, store_results):
        if isinstance(theirs, str):
            assert mine == theirs
        else:
            assert (mine.name, mine.target, mine.kind, mine.message) == (theirs.name, theirs.target, theirs.kind, theirs.message)
            assert [(e.action, e.old_target, e.new_target, e.message) for e in mine.history] == [
                (e.action, e.old_target, e.new_target, e.message) for e in theirs.history
            ]


@pytest.mark.parametrize(
    "change, error",
    [
        (("set", "x", "nope@1", None), UnknownRunError),
        (("set", "x", "r@7", None), UnknownRefError),
        (("set", "x", "r@best:loss", None), UnknownRefError),
        (("set", "x", "ghost", None), UnknownAliasError),
        (("set", "x", "export:9", None), UnknownRefError),
        (("set", "a:b", "r@1", None), InvalidNameError), (("set", "latest", "r@1", None), InvalidNameError),
        (("remove", "nope", None, None), UnknownAliasError),
    ],
)
def test_errors_are_the_stores_words_and_write_nothing(twins, change, error):
    quick_path, store_path = twins
    with ckptstore.open_store(str(store_path)) as store, pytest.raises(error) as theirs:
        _apply(store, change)
    before = _state(quick_path)
    with QuickWriter.open(quick_path) as writer, pytest.raises(error) as mine:
        _apply(writer, change)
    # The store names a directory store by its resolved path; so does the writer.
    assert str(mine.value) == str(theirs.value).replace(str(store_path.resolve()), str(quick_path.resolve()))
    assert _state(quick_path) == before


def test_a_store_named_by_url_leaves_its_errors_to_the_store(twins):
    quick_path, _ = twins
    with QuickWriter.open(f"sqlite:///{quick_path / 'store.db'}") as writer:
        with pytest.raises(Fallback):
            writer.set_alias("x", "nope@1")
        assert writer.set_alias("x", "r@1").target == "r@1"  # and writes what it can


def test_stores_it_does_not_handle_are_left_to_the_store(twins, tmp_path):
    quick_path, _ = twins
    assert QuickWriter.open(tmp_path / "missing") is None
    assert QuickWriter.open("postgresql+psycopg://u@127.0.0.1:1/db") is None
    con = sqlite3.connect(str(quick_path / "store.db"))
    with con:
        con.execute("UPDATE alembic_version SET version_num = '0007'")
    con.close()
    assert QuickWriter.open(quick_path) is None


def test_the_schema_is_checked_again_inside_the_transaction(twins):
    quick_path, _ = twins
    writer = QuickWriter.open(quick_path)
    assert writer is not None
    con = sqlite3.connect(str(quick_path / "store.db"))
    with con:  # "upgraded" by another process after the writer opened
        con.execute("UPDATE alembic_version SET version_num = '9999'")
    con.close()
    with writer, pytest.raises(Fallback):
        writer.set_alias("x", "r@1")
    assert _state(quick_path) == []


def test_it_waits_for_another_writer_instead_of_failing(twins):
    """The store's settings (busy timeout, BEGIN IMMEDIATE): a writer holding the lock makes
    this one wait, not fail with 'database is locked'."""
    quick_path, _ = twins
    holder = sqlite3.connect(str(quick_path / "store.db"), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release() -> None:
        time.sleep(0.5)
        holder.execute("COMMIT")
        released.set()

    threading.Thread(target=release).start()
    with QuickWriter.open(quick_path) as writer:
        assert writer.set_alias("prod", "r@1").target == "r@1"
    assert released.is_set()
    holder.close()


COMMAND_LINES = [
    ["alias", "prod", "r@1", "-m", "first"],
    ["alias", "prod", "r@1"],
    ["alias", "prod", "r@2"],
    ["alias", "best", "prod"],
    ["alias", "x", "nope@1"],
    ["alias", "x", "r@9"],
    ["alias", "a:b", "r@1"],
    ["unalias", "best", "-m", "done"],
    ["unalias", "nope"],
    ["tag", "r@3", "old"],
    ["untag", "old"],
    ["aliases", "prod"],
]


@pytest.mark.slow
def test_the_cli_prints_and_stores_the_same_both_ways_without_sqlalchemy(twins):
    quick_path, store_path = twins
    for args in COMMAND_LINES:
        quick = cli(*args, store=quick_path, code=IMPORTS_CHECK)
        normal = cli(*args, store=store_path, env={"CKPTSTORE_QUICK": "0"})
        quick_err = quick.stderr.rsplit("\nIMPORTED", 1)[0].strip().replace(str(quick_path.resolve()), "STORE")
        normal_err = normal.stderr.strip().replace(str(store_path.resolve()), "STORE")
        quick_out = quick.stdout.replace(str(quick_path.resolve()), "STORE")
        normal_out = normal.stdout.replace(str(store_path.resolve()), "STORE")
        if args[0] == "aliases":  # times differ between the copies
            quick_out, normal_out = quick_out.split("\n", 1)[0], normal_out.split("\n", 1)[0]
        assert (quick.returncode, quick_out, quick_err) == (normal.returncode, normal_out, normal_err), args
        if args[0] in ("alias", "unalias") and quick.returncode == 0:
            assert "sqlalchemy" not in imported(quick.stderr), args
    assert _state(quick_path) == _state(store_path)
