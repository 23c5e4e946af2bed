"""One argv layer: every option is defined once, on the Typer commands.

The read commands' plain command lines are parsed by ``cli/quick.py`` from the Click objects
Typer builds from those definitions (without Typer's pydantic conversion), and read a SQLite
store through ``sqlite3``; everything else is Typer's. ``CKPTSTORE_QUICK=0`` makes Typer parse
every command line and the store read it. A table of command lines, the usual ones and the odd
ones (an option given twice, ``--opt=value``, ``--``, bad values, unknown options and names),
runs in real subprocesses both ways: each is accepted or refused as the table says, by the
parser the table says, with the same status and the same bytes on stdout and stderr.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import ckptstore
from tests.helpers.cli import IMPORTS_CHECK, cli, imported

# Answered by cli/quick.py, left to Typer's parse, or to Typer's before it converts any value
# (so pydantic's import does not tell).
Q, T, T_EARLY = True, False, None

#: (command line, exit status, who parses it): status 0 answered, 1 a user error (one line),
#: 2 bad usage (one line).
TABLE: list[tuple[list[str], int, bool | None]] = [
    (["runs", "list"], 0, Q),
    (["runs", "list", "--json", "--status=finished", "--tag", "team=vision", "--tag=x=", "--name", "mlp*"], 0, Q),
    (["runs", "list", "--name", "zzz", "--name", "mlp*", "--limit", "1"], 0, T),  # Click takes the last
    (["runs", "list", "--where", "params.lr = 0.1", "--sort", "-name", "--limit", "0"], 0, Q),
    (["runs", "list", "--status", "crashed"], 0, Q),
    (["runs", "list", "--status", "bogus"], 2, T),
    (["runs", "list", "--limit", "-1"], 2, T),
    (["runs", "list", "--limit", "x"], 2, T),
    (["runs", "list", "--limit", "+1"], 0, T),
    (["runs", "list", "--tag", "novalue"], 2, Q),
    (["runs", "list", "--json=1"], 2, T),
    (["runs", "list", "--nmae", "x"], 2, T),
    (["runs", "list", "--nam", "mlp"], 2, T),
    (["runs", "list", "extra"], 2, T),
    (["runs", "list", "--where", "params.lr =< 1"], 1, Q),
    (["runs", "list", "--help"], 0, T),
    (["runs", "show", "mlp"], 0, Q),
    (["runs", "show", "--json", "mlp"], 0, Q),  # options anywhere, as Click allows
    (["runs", "show"], 2, T),
    (["runs", "show", "a", "b"], 2, T),
    (["runs", "show", "nope"], 1, Q),
    (["runs", "compare", "mlp", "mlp-wide", "--json"], 0, Q),
    (["runs", "compare", "mlp", "nope"], 1, Q),
    (["runs", "compare"], 2, T),
    (["runs", "compare", "mlp*", "--transpose", "--columns", "params.lr,metrics.loss.best"], 0, Q),
    (["runs", "compare", "mlp*", "--columns", "lr"], 1, Q),
    (["steps", "mlp", "-m", "loss", "--from", "5", "--to=7"], 0, Q),
    (["steps", "mlp", "--metric=acc", "-m", "loss", "--json"], 0, Q),
    (["steps", "mlp", "-mloss"], 0, T),
    (["steps", "--", "mlp"], 0, T),
    (["steps", "mlp", "--from", "-1"], 2, T),
    (["steps", "mlp", "--from", "99999999999999999999"], 2, T),
    (["steps", "mlp", "--to"], 2, T),
    (["steps"], 2, T),
    (["steps", "nope"], 1, Q),
    (["at", "10"], 0, Q),
    (["at", "12", "--nearest", "-m", "loss", "--run", "mlp*", "-p", "lr", "--param", "lr"], 0, Q),
    (["at", "10", "--nearest", "--no-nearest"], 0, T),
    (["at", "10", "--sort", "-metrics.loss", "-m", "acc", "--json"], 0, Q),
    (["at", "10", "--sort", "params.lr,name", "-p", "lr"], 0, Q),
    (["at", "10", "--sort", "loss"], 1, Q),  # did you mean metrics.loss.min?
    (["at", "10", "--sort", "metrics.los"], 0, Q),  # a note names the nearest
    (["at", "-1"], 2, T),
    (["at", "x"], 2, T),
    (["checkpoints", "mlp", "-m", "loss"], 0, Q),
    (["checkpoints", "mlp", "--json"], 0, Q),
    (["checkpoints", "nope"], 1, Q),
    (["vars", "mlp@10"], 1, Q),  # no checkpoints in this store
    (["vars", "bogus@@"], 1, Q),
    (["vars", "mlp@10", "--diff", "mlp@20"], 1, Q),
    (["aliases"], 0, Q),
    (["aliases", "--json"], 0, Q),
    (["aliases", "nope"], 1, Q),
    (["aliases", "a", "b"], 2, T),
    (["versions"], 0, Q),  # the deprecated spelling: the same answer and a warning, on both paths
    (["exports"], 0, Q),
    (["exports", "mlp", "--json"], 0, Q),
    (["exports", "nope"], 1, Q),
    # Writes and maintenance (issue 26): parsed without pydantic too; they open the store.
    (["alias", "prod", "mlp@10"], 1, Q),
    (["alias", "prod", "mlp@10", "-m", "why"], 1, Q),
    (["unalias", "nope"], 1, Q),
    (["runs", "delete", "nope", "--yes"], 1, Q),
    (["runs", "delete", "mlp"], 1, Q),  # not on a terminal: needs --yes
    (["verify"], 0, Q),
    (["gc", "--dry-run"], 0, Q),
    (["du"], 0, Q),
    (["du", "nope"], 1, Q),
    (["root", "show"], 0, Q),
    (["db", "current"], 0, Q),
    (["db", "current", "--json"], 0, Q),
    (["db", "history"], 0, Q),
    (["db", "history", "--json"], 0, Q),
    (["db", "upgrade"], 0, Q),  # nothing to do: said without Alembic
    # Errors of commands that then open the store: the quick reader checks what they name first.
    (["restore", "nope@1", "--to", "r"], 1, Q),
    (["restore", "mlp@1"], 2, T),  # a required option missing
    (["import", "somewhere"], 2, T),
    (["restore", "mlp@latest", "--to", "r", "--link", "bogus"], 1, Q),  # --link first, as the library checks
    (["vars", "mlp@1", "--diff", "nope@1"], 1, Q),
    (["plot", "nope", "-m", "loss", "-o", "x.png"], 1, Q),
    (["plot", "nope", "-m", "loss", "-o", "x.txt"], 1, Q),  # the format first, as the library checks
    (["tensorboard", "nope*", "--logdir", "tb"], 1, Q),
    (["tensorboard", "nope", "--logdir", "tb", "--interval", "1"], 2, T),
    (["--bogus"], 2, T_EARLY),
    (["--version"], 0, T_EARLY),
    (["--store", "not-a-store-here", "runs", "list"], 1, Q),  # instead of the test's --store
    (["--store", "", "runs", "list"], 1, Q),
    (["--root", "files", "versions"], 0, Q),
]


#: Commands that open the store (SQLAlchemy) even when cli/quick.py parses them.
OPEN_THE_STORE = {"alias", "unalias", "verify", "gc"}


@pytest.fixture(scope="module")
def meta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("argv") / "store"
    with ckptstore.open_store(path) as store:
        with store.start_run("mlp", params={"lr": 0.1}, tags={"team": "vision", "x": ""}) as run:
            for step in range(1, 21):
                run.log(step, loss=1.0 / step, acc=step / 20)
        with store.start_run("mlp-wide", params={"lr": 0.01}) as run:
            run.log(10, loss=0.5)
    return path


@pytest.mark.slow
@pytest.mark.parametrize(("args", "status", "quick"), TABLE, ids=[" ".join(a) for a, _, _ in TABLE])
def test_each_command_line_is_accepted_or_refused_alike_both_ways(
    meta: Path, tmp_path: Path, args: list[str], status: int, quick: bool | None
) -> None:
    store = None if args[0] == "--store" else meta
    fast = cli(*args, store=store, code=IMPORTS_CHECK, cwd=tmp_path)
    typer = cli(*args, store=store, env={"CKPTSTORE_QUICK": "0"}, cwd=tmp_path)  # Typer's parse, the store's reads
    fast_err = fast.stderr.rsplit("\nIMPORTED", 1)[0].strip()
    assert (fast.returncode, fast.stdout, fast_err) == (typer.returncode, typer.stdout, typer.stderr.strip())
    assert fast.returncode == status, fast.stderr
    if status:
        assert len(fast_err.splitlines()) == 1 and fast_err.startswith("error:"), fast_err
    # Who parsed it: Typer converts values through pydantic, cli/quick.py does not.
    if quick is not None:
        assert ("pydantic" not in imported(fast.stderr)) == quick, fast.stderr
    if status == 0 and quick and args[0] not in OPEN_THE_STORE:
        assert not imported(fast.stderr) & {"sqlalchemy", "tensorflow"}, args  # read through sqlite3
    assert "tensorflow" not in imported(fast.stderr), args


def test_no_command_prints_the_help_on_stdout_with_usage_status(meta: Path) -> None:
    for args in (["runs"], []):
        r = cli(*args, store=meta)
        assert r.returncode == 2 and r.stdout.startswith("Usage: ckptstore") and r.stderr == "", args
