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


def _both_ways(stored: Path, tmp_path: Path, args: list[str], prepare=None) -> tuple:
    """Run ``restore ARGS`` (``{out}`` in them: a directory of each copy's own) on two copies
    of the store, the quick path's and the store's; their results, stores and outputs."""
    runs = []
    for name, env, code in (("quick", None, IMPORTS_CHECK), ("store", {"CKPTSTORE_QUICK": "0"}, None)):
        copy = tmp_path / name / "store"
        shutil.copytree(stored, copy)
        out = tmp_path / name / "out"
        if prepare is not None:
            prepare(copy, out)
        done = cli("restore", *[a.replace("{out}", str(out)) for a in args], store=copy, env=env, code=code)
        runs.append((copy, out, done))
    return runs


def _same(runs) -> None:
    (qs, qo, quick), (ns, no, normal) = runs

    def words(text: str, store: Path, out: Path) -> str:
        return text.replace(str(store.resolve()), "STORE").replace(str(out.parent), "HERE").strip()

    q_err = words(quick.stderr.rsplit("\nIMPORTED", 1)[0], qs, qo)
    assert (quick.returncode, words(quick.stdout, qs, qo), q_err) == (
        normal.returncode, words(normal.stdout, ns, no), words(normal.stderr, ns, no)
    )
    assert tree(qo, mtimes=False) == tree(no, mtimes=False)
    # Beside the target nothing is left (the temporary directory moved or removed).
    assert sorted(p.name for p in qo.parent.iterdir()) == sorted(p.name for p in no.parent.iterdir())
    stores = [{k: v for k, v in tree(s, mtimes=False).items() if not k.startswith("store.db")} for s in (qs, ns)]
    assert stores[0] == stores[1]


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
    runs = _both_ways(stored, tmp_path, args)
    _same(runs)
    quick = runs[0][2]
    assert "sqlalchemy" not in imported(quick.stderr) and "tensorflow" not in imported(quick.stderr)
    if quick.returncode == 0:
        out = runs[0][1]
        names = sorted(p.name for p in out.iterdir())
        assert "checkpoint" in names and any(n.endswith(".index") for n in names)
        if args[0] == "seed@2":
            assert "model.ckpt-2.meta" in names or any(n.endswith("-2.meta") for n in names), names


def _existing(name: str):
    def prepare(store: Path, out: Path) -> None:
        out.mkdir(parents=True)
        (out / name).write_text("the user's own\n")
    return prepare


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, prepare, store_answers",
    [
        (["a@2", "--to", "{out}"], _existing("checkpoint"), False),  # a state file of the user's
        (["a@2", "--to", "{out}", "--force"], _existing("checkpoint"), False),
        (["nope@1", "--to", "{out}"], None, False),
        (["a@7", "--to", "{out}"], None, False),
        (["a@2", "--to", "{out}", "--link", "bogus"], None, True),  # the library refuses it first
        (["a@2", "--to", "{out}"], "corrupt", True),  # damage: the store reads afresh and says so
    ],
    ids=["conflict", "force", "unknown-run", "unknown-step", "bad-link", "corrupt"],
)
def test_errors_are_worded_as_the_store_words_them(stored, tmp_path, args, prepare, store_answers):
    prepare = _corrupt_all if prepare == "corrupt" else prepare
    runs = _both_ways(stored, tmp_path, args, prepare)
    _same(runs)
    quick = runs[0][2]
    assert ("sqlalchemy" in imported(quick.stderr)) == store_answers, quick.stderr


def _corrupt_all(store: Path, out: Path) -> None:
    from tests.helpers.damage import flip_byte

    for p in sorted((store / "objects").rglob("*")):
        if p.is_file() and p.stat().st_size > 16:
            p.chmod(0o644)
            flip_byte(p, 0)


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
