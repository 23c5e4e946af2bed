"""``restore REF --to DIR`` on the CLI's quick path (``flows/restore_dir.py`` over ``sqlite3``).

The quick path writes the directory itself when the REF resolves and the files check out, and
words an unknown REF or a conflict at DIR as the store does; anything that goes wrong while the
files are read (damage, a checkpoint deleted meanwhile) is the store's, which reads afresh and
says which it was. Each case runs both ways, in real subprocesses, on copies of one store: the
output, the directory written and the store afterwards must be the same.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import ckptstore
from tests.helpers.both_ways import assert_same, both_ways, corrupt_objects, existing, store_answered
from tests.helpers.cli import IMPORTS_CHECK, cli, imported
from tests.helpers.hardening import tree
from tests.helpers.skips import require_tensorflow

require_tensorflow()


@pytest.fixture(scope="module")
def stored(tmp_path_factory, new_sqlite_store_files, tiny_model, seed_session) -> Path:
    """A closed store: run ``a`` (TF2, steps 1 and 2, alias ``prod`` on step 2) and run ``seed``
    (TF1 Saver; step 2 saved without its meta graph)."""
    path = tmp_path_factory.mktemp("restore-dir") / "store"
    shutil.copytree(new_sqlite_store_files, path)
    with ckptstore.open_store(str(path)) as store:
        with store.start_run("a") as run:
            for step in (1, 2):
                run.save(tiny_model(float(step)), step)
        with store.start_run("seed") as run:
            run.save(seed_session, 1)
            run.save(seed_session, 2, write_meta_graph=False)
        store.set_alias("prod", "a@2")
    return path


WRITTEN = [
    ["a@2", "--to", "{out}"],
    ["prod", "--to", "{out}"],
    ["a@latest", "--to", "{out}", "--link", "hard"],
    ["a@best:loss", "--to", "{out}"],  # no such metric: an error worded by the shared read
    ["seed@1", "--to", "{out}"],
    ["seed@2", "--to", "{out}"],  # the run's nearest meta graph goes with it
]


@pytest.mark.slow
@pytest.mark.parametrize("args", WRITTEN, ids=" ".join)
def test_the_quick_path_writes_what_the_store_writes(stored, tmp_path, args):
    quick, normal = both_ways(stored, tmp_path, ["restore", *args])
    assert_same(quick, normal)
    assert not ({"sqlalchemy", "tensorflow"} & imported(quick.done.stderr))
    if quick.done.returncode == 0:
        names = sorted(p.name for p in quick.out.iterdir())
        assert "checkpoint" in names and any(n.endswith(".index") for n in names)
        if args[0] == "seed@2":
            assert any(n.endswith("-2.meta") for n in names), names


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, prepare, store_answers",
    [
        (["a@2", "--to", "{out}"], existing("checkpoint"), False),  # a state file of the user's
        (["a@2", "--to", "{out}", "--force"], existing("checkpoint"), False),
        (["nope@1", "--to", "{out}"], None, False),
        (["a@7", "--to", "{out}"], None, False),
        (["a@2", "--to", "{out}", "--link", "bogus"], None, True),  # the library refuses it first
        (["a@2", "--to", "{out}"], corrupt_objects, True),  # damage: the store reads afresh and says so
        (["a@2", "--to", "{out}/file"], existing("file"), False),  # DIR is a file
    ],
    ids=["conflict", "force", "unknown-run", "unknown-step", "bad-link", "corrupt", "dir-is-a-file"],
)
def test_errors_are_worded_as_the_store_words_them(stored, tmp_path, args, prepare, store_answers):
    quick, normal = both_ways(stored, tmp_path, ["restore", *args], prepare)
    assert_same(quick, normal)
    assert store_answered(quick) == store_answers, quick.done.stderr


def test_an_existing_identical_restore_is_left_as_it_is(stored, tmp_path):
    """Restoring again into the same directory: every file already holds the bytes (no force
    needed), on the quick path as on the store's."""
    out = tmp_path / "out"
    first = cli("restore", "prod", "--to", str(out), store=stored, code=IMPORTS_CHECK)
    assert first.returncode == 0, first.stderr
    before = tree(out)
    again = cli("restore", "prod", "--to", str(out), store=stored, code=IMPORTS_CHECK)
    assert again.returncode == 0, again.stderr
    assert "sqlalchemy" not in imported(again.stderr)
    assert tree(out) == before


@pytest.mark.slow
@pytest.mark.parametrize("command", [["restore", "prod", "--to", "{out}"], ["verify"], ["vars", "a@1", "--diff", "a@2", "--stats"]])
def test_a_root_given_with_the_command_is_the_stores_to_open(stored, tmp_path, command):
    """--root names another file area than the store directory's own: the quick path, which
    reads the directory's own files, leaves it to the store (which reads that root)."""
    quick, normal = both_ways(stored, tmp_path, ["--root", "{out}-root", *command])
    assert_same(quick, normal)
    assert store_answered(quick), quick.done.stderr
    assert quick.done.returncode == 1 and "missing" in quick.done.stderr  # nothing is stored there


@pytest.mark.slow
@pytest.mark.parametrize("quick", ["1", "0"])
def test_a_copy_restore_over_a_hard_linked_one_leaves_private_copies(stored, tmp_path, quick):
    """--link hard shares the stored objects' inodes; restoring the same checkpoint again with
    the default --link copy must leave files that are the user's own (editing one must never
    reach the store), with no --force needed since the bytes are the same."""
    store = tmp_path / "store"
    shutil.copytree(stored, store)
    out = tmp_path / "out"
    env = {"CKPTSTORE_QUICK": quick}
    assert cli("restore", "prod", "--to", str(out), "--link", "hard", store=store, env=env).returncode == 0
    linked = [p for p in out.iterdir() if p.name != "checkpoint"]
    assert linked and all(p.stat().st_nlink > 1 for p in linked)
    again = cli("restore", "prod", "--to", str(out), store=store, env=env)
    assert again.returncode == 0, again.stderr
    assert all(p.stat().st_nlink == 1 for p in out.iterdir())
    assert tree(out, mtimes=False).keys() == {p.name for p in out.iterdir()}
    verify = cli("verify", store=store)
    assert verify.returncode == 0, verify.stdout + verify.stderr
