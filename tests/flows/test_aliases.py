"""Aliases on SQLite and PostgreSQL: set, move, remove, history, and the protection an
alias gives its target against retention, gc and deletion."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers.models import empty_session, run_op
from tests.helpers.processes import run_py
from tests.helpers.skips import require_tensorflow

require_tensorflow()

from ckptstore import Retention  # noqa: E402
from ckptstore.errors import (  # noqa: E402
    ConflictError,
    InvalidNameError,
    InvalidRefError,
    UnknownAliasError,
    UnknownRefError,
    UnknownRunError,
)
from ckptstore.records import CheckpointInfo, ExportInfo  # noqa: E402


@pytest.fixture
def mnist(store, seed_session):
    """A run 'mnist' with checkpoints at steps 10, 20, 30."""
    run = store.start_run("mnist")
    for step in (10, 20, 30):
        run.save(seed_session, step)
    return run


def _events(store, name):
    return [(e.action, e.old_target, e.new_target, e.message) for e in store.aliases(name)[0].history]


# --------------------------------------------------------------------------- tagging and resolving


def test_tag_names_a_checkpoint_that_resolve_returns(store, mnist):
    info = store.set_alias("best", "mnist@20", message="lowest loss")
    assert (info.name, info.target, info.kind, info.message) == ("best", "mnist@20", "checkpoint", "lowest loss")
    target = store.resolve("best")
    assert isinstance(target, CheckpointInfo) and target.ref == "mnist@20"
    assert target.aliases == ["best"] and target.pinned
    assert [c.aliases for c in store.checkpoints("mnist")] == [[], ["best"], []]
    assert _events(store, "best") == [("set", None, "mnist@20", "lowest loss")]


def test_tag_accepts_every_kind_of_reference(store, mnist, seed_session):
    export = mnist.freeze(seed_session, ["op_to_store"], step=30)
    assert store.set_alias("newest", "mnist@latest").target == "mnist@30"
    assert store.set_alias("below25", "mnist@~25").target == "mnist@20"
    assert store.set_alias("prod", export.ref).target == export.ref
    # Another alias: the new alias points at that alias's current target, not at the alias.
    assert store.set_alias("pinned", "below25").target == "mnist@20"
    store.set_alias("below25", "mnist@10")
    assert store.resolve("pinned").ref == "mnist@20"
    resolved = store.resolve("prod")
    assert isinstance(resolved, ExportInfo) and resolved.aliases == ["prod"]
    assert [(a.name, a.target, a.kind) for a in store.aliases()] == [
        ("below25", "mnist@10", "checkpoint"),
        ("newest", "mnist@30", "checkpoint"),
        ("pinned", "mnist@20", "checkpoint"),
        ("prod", export.ref, "export"),
    ]


def test_moving_an_alias_between_three_targets_shows_the_full_history(store, mnist, seed_session):
    export = mnist.freeze(seed_session, ["op_to_store"], step=30)
    store.set_alias("prod", "mnist@10", message="first")
    store.set_alias("prod", "mnist@20", message="better")
    info = store.set_alias("prod", export.ref, message="frozen for serving")
    assert (info.target, info.kind, info.message) == (export.ref, "export", "frozen for serving")
    history = store.aliases("prod")[0].history
    assert [(e.action, e.old_target, e.new_target, e.message) for e in history] == [
        ("move", "mnist@20", export.ref, "frozen for serving"),
        ("move", "mnist@10", "mnist@20", "better"),
        ("set", None, "mnist@10", "first"),
    ]
    assert history[0].at >= history[1].at >= history[2].at
    assert history[0].at.tzinfo is not None
    # The old targets are free again, the new one is protected.
    assert [c.aliases for c in store.checkpoints("mnist")] == [[], [], []]
    assert store.resolve(export.ref).aliases == ["prod"]


def test_tagging_the_same_target_again_records_no_event_but_keeps_a_new_message(store, mnist):
    store.set_alias("best", "mnist@10", message="v1")
    again = store.set_alias("best", "mnist@10")
    assert again.message == "v1"  # no message given: the old one stays
    updated = store.set_alias("best", "mnist@10", message="v1, re-evaluated")
    assert updated.message == "v1, re-evaluated"
    assert updated.updated_at >= again.updated_at
    # Via another ref kind to the same checkpoint: still the same target, still one event.
    store.set_alias("best", "mnist@~15")
    assert _events(store, "best") == [("set", None, "mnist@10", "v1")]


def test_untag_frees_the_target_and_keeps_the_history(store, mnist):
    store.set_alias("best", "mnist@10")
    store.set_alias("best", "mnist@20")
    store.remove_alias("best", message="retired")
    with pytest.raises(UnknownAliasError, match="best"):
        store.resolve("best")
    assert store.aliases() == []
    gone = store.aliases("best")[0]
    assert (gone.kind, gone.target, gone.message) == ("removed", "", "retired")
    assert [(e.action, e.old_target, e.new_target) for e in gone.history] == [
        ("remove", "mnist@20", None),
        ("move", "mnist@10", "mnist@20"),
        ("set", None, "mnist@10"),
    ]
    # The name can be used again; its history continues.
    store.set_alias("best", "mnist@30")
    assert [e.action for e in store.aliases("best")[0].history] == ["set", "remove", "move", "set"]
    store.delete_checkpoint("mnist@20")  # no longer protected


def test_unknown_aliases_are_clear_errors(store, mnist):
    with pytest.raises(UnknownAliasError, match="'nope'"):
        store.remove_alias("nope")
    with pytest.raises(UnknownAliasError, match="'nope'"):
        store.aliases("nope")
    with pytest.raises(UnknownAliasError, match="'nope'"):
        store.set_alias("other", "nope")


BAD_NAMES = ["a/b", "a\\b", "v@1", "export:3", "prod:v2", "-prod", "x" * 201, "", " prod", "..", "latest", "a\x00b"]


def test_alias_names_are_validated(store, mnist):
    for name in BAD_NAMES:
        with pytest.raises(InvalidNameError):
            store.set_alias(name, "mnist@10")
    assert store.aliases() == []
    assert [c.aliases for c in store.checkpoints("mnist")] == [[], [], []]


def test_longest_and_unicode_alias_names_are_accepted(store, mnist):
    for name in ("x" * 200, "modèle-prod", "v1.2_rc"):
        assert store.set_alias(name, "mnist@10").name == name
        assert store.resolve(name).ref == "mnist@10"


BAD_REFS = [
    ("mnist@", InvalidRefError),
    ("@3", InvalidRefError),
    ("mnist@-1", InvalidRefError),
    ("mnist@~x", InvalidRefError),
    ("export:x", InvalidRefError),
    ("ghost@3", UnknownRunError),
    ("mnist@15", UnknownRefError),
    ("mnist@~5", UnknownRefError),
    ("export:999", UnknownRefError),
    ("ghost", UnknownAliasError),
]


def test_bad_refs_are_refused_without_recording_anything(store, mnist):
    for ref, error in BAD_REFS:
        with pytest.raises(error):
            store.set_alias("prod", ref)
    assert store.aliases() == []
    with pytest.raises(UnknownAliasError):
        store.aliases("prod")


# --------------------------------------------------------------------------- protection


def test_retention_does_not_delete_a_tagged_checkpoint(store, seed_session):
    run = store.start_run("r", retention=Retention(max_to_keep=1))
    run.save(seed_session, 10)
    store.set_alias("best", "r@10")
    for step in (20, 30, 40):
        run.save(seed_session, step)
    # max_to_keep=1 keeps only 40, but an alias points at 10.
    assert [(c.step, c.aliases) for c in store.checkpoints("r")] == [(10, ["best"]), (40, [])]
    assert store.apply_retention("r") == []
    # Once removed, the next application of the rule removes it.
    store.remove_alias("best")
    assert store.apply_retention("r") == [10]
    assert [c.step for c in store.checkpoints("r")] == [40]


def test_aliases_protect_targets_from_deletion(store, mnist, seed_session):
    export = mnist.freeze(seed_session, ["op_to_store"], step=10)
    store.set_alias("best", "mnist@10")
    store.set_alias("prod", export.ref)
    with pytest.raises(ConflictError, match="best"):
        store.delete_checkpoint("mnist@10")
    with pytest.raises(ConflictError, match="best, prod"):
        store.delete_run("mnist")
    assert [c.step for c in store.checkpoints("mnist")] == [10, 20, 30]
    store.remove_alias("best")
    with pytest.raises(ConflictError, match="prod"):
        store.delete_run("mnist")
    store.remove_alias("prod")
    assert store.delete_run("mnist") == 3
    # History outlives its targets and the run.
    assert [(e.action, e.old_target) for e in store.aliases("prod")[0].history] == [
        ("remove", export.ref), ("set", None),
    ]


def test_gc_keeps_what_aliases_point_at(store, mnist, seed_session):
    export = mnist.freeze(seed_session, ["op_to_store"], step=20)
    store.set_alias("best", "mnist@20")
    store.set_alias("prod", export.ref)
    store.set_retention("mnist", Retention(max_to_keep=1))
    assert store.apply_retention("mnist") == [10]
    report = store.gc()
    assert report.removed_objects == 0  # retention already released what it deleted
    assert store.verify().ok
    sess = empty_session()
    store.restore("best", sess)
    assert run_op(sess) == 26.0
    assert float(store.load_frozen("prod")(x=5.0, y=5.0)) == 26.0


# --------------------------------------------------------------------------- concurrency

_TAGGER = r"""
import sys, time
import ckptstore
uri, root, target, start = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
store = ckptstore.open_store(uri, root=root)
while time.time() < start:
    time.sleep(0.001)
for i in range(15):
    store.set_alias(f"race-{i}", target, message=target)
print("ok")
"""


@pytest.mark.slow
def test_processes_tagging_the_same_new_names_at_once_all_succeed(store_uri, store, mnist, children):
    uri, root = store_uri
    start = time.time() + 2.0
    procs = [children.python(_TAGGER, uri, str(root), target, str(start)) for target in ("mnist@10", "mnist@20", "mnist@30")]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        assert out.strip() == "ok"
    for i in range(15):
        info = store.aliases(f"race-{i}")[0]
        actions = [e.action for e in info.history]
        # Exactly one process created the alias; every later one moved it (or found it there).
        assert actions[-1] == "set" and set(actions[:-1]) <= {"move"}
        assert info.history[0].new_target == info.target == info.message
        chain = list(reversed(info.history))
        for before, after in zip(chain, chain[1:]):
            assert after.old_target == before.new_target


def test_alias_commands_and_export_to_a_file_do_not_import_tensorflow(sqlite_store, seed_session, tmp_path):
    run = sqlite_store.start_run("r")
    run.save(seed_session, 1)
    export = run.freeze(seed_session, ["op_to_store"], step=1)
    root = Path(sqlite_store.root)
    out = run_py(
        "import sys, ckptstore\n"
        f"s = ckptstore.open_store({str(root)!r})\n"
        "s.set_alias('best', 'r@1'); s.set_alias('best', 'r@latest', message='m'); s.aliases(); s.aliases('best')\n"
        f"s.set_alias('prod', {export.ref!r}); s.exports(); s.remove_alias('best')\n"
        f"s.export_frozen('prod', {str(tmp_path / 'model.pb')!r})\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "print('ok')"
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
    assert (tmp_path / "model.pb.json").is_file()


def test_the_old_names_tag_untag_versions_still_work_and_warn(store, mnist):
    with pytest.warns(DeprecationWarning, match=r"Store.tag\(ref, name\) is deprecated; use Store.set_alias\(name, ref\)"):
        info = store.tag("mnist@10", "best", message="old spelling")
    assert (info.name, info.target) == ("best", "mnist@10")
    with pytest.warns(DeprecationWarning, match="Store.aliases"):
        assert [a.name for a in store.versions()] == ["best"]
    with pytest.warns(DeprecationWarning, match="Store.remove_alias"):
        store.untag("best")
    assert store.aliases() == []
