"""One argv layer: Typer parses every command line, whichever driver then reads the store.

The read commands read a SQLite store through ``sqlite3`` (the quick reader) and any other store
through the library; ``CKPTSTORE_QUICK=0`` makes them use the library on SQLite too. A table of
command lines, the usual ones and the odd ones (an option given twice, ``--opt=value``, ``--``,
bad values, unknown options and names), runs in real subprocesses both ways: each is accepted or
refused as the table says, with the same status and the same bytes on stdout and stderr.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import ckptstore
from tests.helpers.cli import IMPORTS_CHECK, cli, imported

#: (command line, exit status): 0 answered, 1 a user error (one line), 2 bad usage (one line).
TABLE: list[tuple[list[str], int]] = [
    (["runs", "list"], 0),
    (["runs", "list", "--json", "--status=finished", "--tag", "team=vision", "--tag=x=", "--name", "mlp*"], 0),
    (["runs", "list", "--name", "zzz", "--name", "mlp*", "--limit", "1"], 0),  # Click takes the last
    (["runs", "list", "--where", "params.lr = 0.1", "--sort", "-name", "--limit", "0"], 0),
    (["runs", "list", "--status", "crashed"], 0),
    (["runs", "list", "--status", "bogus"], 2),
    (["runs", "list", "--limit", "-1"], 2),
    (["runs", "list", "--limit", "x"], 2),
    (["runs", "list", "--tag", "novalue"], 2),
    (["runs", "list", "--json=1"], 2),
    (["runs", "list", "--nmae", "x"], 2),
    (["runs", "list", "extra"], 2),
    (["runs", "list", "--where", "params.lr =< 1"], 1),
    (["runs", "show", "mlp"], 0),
    (["runs", "show", "--json", "mlp"], 0),  # options anywhere, as Click allows
    (["runs", "show"], 2),
    (["runs", "show", "a", "b"], 2),
    (["runs", "show", "nope"], 1),
    (["runs", "compare", "mlp", "mlp-wide", "--json"], 0),
    (["runs", "compare", "mlp", "nope"], 1),
    (["steps", "mlp", "-m", "loss", "--from", "5", "--to=7"], 0),
    (["steps", "mlp", "--metric=acc", "-m", "loss", "--json"], 0),
    (["steps", "--", "mlp"], 0),
    (["steps", "mlp", "--from", "-1"], 2),
    (["steps", "mlp", "--from", "99999999999999999999"], 2),
    (["steps", "mlp", "--to"], 2),
    (["steps"], 2),
    (["steps", "nope"], 1),
    (["at", "10"], 0),
    (["at", "12", "--nearest", "-m", "loss", "--run", "mlp*", "-p", "lr", "--param", "lr"], 0),
    (["at", "10", "--nearest", "--no-nearest"], 0),
    (["at", "-1"], 2),
    (["at", "x"], 2),
    (["checkpoints", "mlp", "-m", "loss"], 0),
    (["checkpoints", "mlp", "--json"], 0),
    (["checkpoints", "nope"], 1),
    (["vars", "mlp@10"], 1),  # no checkpoints in this store
    (["vars", "bogus@@"], 1),
    (["versions"], 0),
    (["versions", "--json"], 0),
    (["versions", "nope"], 1),
    (["versions", "a", "b"], 2),
    (["exports"], 0),
    (["exports", "mlp", "--json"], 0),
    (["exports", "nope"], 1),
    (["--bogus"], 2),
]


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
@pytest.mark.parametrize(("args", "status"), TABLE, ids=[" ".join(a) for a, _ in TABLE])
def test_each_command_line_is_accepted_or_refused_alike_by_both_readers(meta: Path, args: list[str], status: int) -> None:
    quick = cli(*args, store=meta, code=IMPORTS_CHECK)
    library = cli(*args, store=meta, env={"CKPTSTORE_QUICK": "0"})
    quick_err = quick.stderr.rsplit("\nIMPORTED", 1)[0].strip()
    assert (quick.returncode, quick.stdout, quick_err) == (library.returncode, library.stdout, library.stderr.strip())
    assert quick.returncode == status, quick.stderr
    if status:
        assert len(quick_err.splitlines()) == 1 and quick_err.startswith("error:"), quick_err
    else:
        # the read went through sqlite3: no SQLAlchemy, no TensorFlow
        assert not imported(quick.stderr) & {"sqlalchemy", "tensorflow"}, args


def test_no_command_prints_the_help_on_stdout_with_usage_status(meta: Path) -> None:
    for args in (["runs"], []):
        r = cli(*args, store=meta)
        assert r.returncode == 2 and r.stdout.startswith("Usage: ckptstore") and r.stderr == "", args
