"""``ckptstore alias NAME REF``, ``unalias NAME``, ``aliases [NAME]``, and the old spellings
(``tag REF NAME``, ``untag``, ``versions``): still working for scripts, hidden from ``--help``,
each with one warning line on stderr and the stdout it always had. Real subprocesses."""

from __future__ import annotations

import json

import pytest

import ckptstore
from tests.helpers.cli import cli, fails, ok
from tests.helpers.skips import require_tensorflow

require_tensorflow()


@pytest.fixture
def aliased(sqlite_store, tiny_model, tmp_path):
    """A store with checkpoints r@1 and r@2 and no alias, closed so subprocesses can use it."""
    run = sqlite_store.start_run("r")
    model = tiny_model()
    run.save(model, 1)
    run.save(model, 2)
    run.finish()
    sqlite_store.close()
    return str(tmp_path / "store")


def _warned(r, old: str, new: str) -> None:
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines() == [f"warning: 'ckptstore {old}' is deprecated; use 'ckptstore {new}'"]


def test_alias_unalias_aliases_set_move_list_and_remove(aliased):
    assert ok("alias", "prod", "r@1", "-m", "first", store=aliased).strip() == "prod -> r@1"
    assert ok("alias", "prod", "r@latest", store=aliased).strip() == "prod -> r@2 (was r@1)"
    [prod] = json.loads(ok("aliases", "--json", store=aliased))
    assert (prod["name"], prod["target"], prod["kind"]) == ("prod", "r@2", "checkpoint")
    assert "history (newest first)" in ok("aliases", "prod", store=aliased)
    assert ok("unalias", "prod", "-m", "retired", store=aliased).strip() == "removed alias prod (was r@2)"
    assert "no aliases yet (create one with 'ckptstore alias NAME REF')" in ok("aliases", store=aliased)
    with ckptstore.open_store(aliased, create=False) as store:
        [gone] = store.aliases("prod")
        assert [e.action for e in gone.history] == ["remove", "move", "set"]
        assert gone.history[0].message == "retired"


def test_unknown_aliases_are_one_error_line_naming_the_new_command(aliased):
    assert "no alias named 'nope'" in fails("unalias", "nope", store=aliased)
    assert "see 'ckptstore aliases'" in fails("aliases", "nope", store=aliased)


def test_the_old_spellings_still_work_with_a_warning_on_stderr(aliased):
    r = cli("tag", "r@1", "best", "-m", "old script", store=aliased)
    _warned(r, "tag REF NAME", "alias NAME REF")
    assert r.stdout.strip() == "best -> r@1"  # REF first, as tag always took it
    for quick in ("1", "0"):  # the quick path (sqlite3) and Typer's
        r = cli("versions", "--json", store=aliased, env={"CKPTSTORE_QUICK": quick})
        _warned(r, "versions", "aliases")
        assert [a["name"] for a in json.loads(r.stdout)] == ["best"]
    r = cli("untag", "best", store=aliased)
    _warned(r, "untag", "unalias")
    assert r.stdout.strip() == "untagged best (was r@1)"  # what scripts parse, unchanged
    with ckptstore.open_store(aliased, create=False) as store:
        assert store.aliases() == []


def test_help_lists_the_new_commands_only(tmp_path):
    aliased = tmp_path / "s"
    page = ok("--help", store=aliased)
    commands = {line.split()[0] for line in page.split("Commands:")[1].splitlines() if line.startswith("  ") and not line.startswith("   ")}
    assert {"alias", "unalias", "aliases"} <= commands
    assert not {"tag", "untag", "versions"} & commands
    assert "Usage: ckptstore alias [OPTIONS] {NAME} {REF}" in ok("alias", "--help", store=aliased)
    assert "Deprecated" in ok("tag", "--help", store=aliased)


def test_moving_an_alias_without_a_message_keeps_its_message(aliased):
    ok("alias", "prod", "r@1", "-m", "serving model", store=aliased)
    ok("alias", "prod", "r@2", store=aliased)  # moved, no -m
    [prod] = json.loads(ok("aliases", "--json", store=aliased))
    assert (prod["target"], prod["message"]) == ("r@2", "serving model")
    with ckptstore.open_store(aliased, create=False) as store:
        [info] = store.aliases("prod")
        assert [(e.action, e.message) for e in info.history] == [("move", None), ("set", "serving model")]
    ok("alias", "prod", "r@1", "-m", "rolled back", store=aliased)
    assert json.loads(ok("aliases", "--json", store=aliased))[0]["message"] == "rolled back"


def test_the_checkpoints_table_says_the_state_the_json_says(aliased):
    ok("alias", "prod", "r@1", store=aliased)
    cks = json.loads(ok("checkpoints", "r", "--json", store=aliased))
    assert [(c["state"], c["pinned"]) for c in cks] == [("committed", True), ("committed", False)]
    rows = [line.split("  ") for line in ok("checkpoints", "r", store=aliased, env={"COLUMNS": "200"}).splitlines()]
    states = [[cell.strip() for cell in row if cell.strip().startswith("committed")] for row in rows[1:]]
    assert states == [["committed, pinned"], ["committed"]]
