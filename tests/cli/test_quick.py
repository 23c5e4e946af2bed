"""The SQLAlchemy-free read path gives exactly the store's answers."""

from __future__ import annotations

import textwrap

import pytest

import ckptstore
from ckptstore.metadata import quick
from tests.helpers.processes import run_py


@pytest.fixture
def populated(tmp_path):
    store = ckptstore.open_store(str(tmp_path / "s"))
    with store.start_run("resnet-a", params={"lr": 0.1, "layers": [1, 2]}, tags={"team": "vision"}) as r:
        r.log(5, loss=1.0)
    with store.start_run("resnet-b", tags={"team": "nlp", "size": "xl"}):
        pass
    try:
        with store.start_run("Resnet_c") as r:
            r.log(9, loss=float("nan"))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    store.start_run("live", tags={"team": "vision"}).log(1, x=1)
    store.close()
    return str(tmp_path / "s")


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"status": "finished"},
        {"status": "failed"},
        {"tags": {"team": "vision"}},
        {"tags": {"team": "nlp", "size": "xl"}},
        {"name": "resnet-*"},
        {"name": "resnet_?"},
        {"name": "live"},
        {"name": "nope"},
        {"status": "running", "tags": {"team": "vision"}},
    ],
)
def test_quick_runs_match_the_store(populated, filters):
    store = ckptstore.open_store(populated, create=False)
    store.runs()  # flush nothing, just to be sure the store is readable
    expected = store.runs(**filters)
    store.close()
    assert quick.list_runs(populated, **filters) == expected


def test_quick_path_declines_what_it_cannot_answer(tmp_path, populated):
    assert quick.list_runs(str(tmp_path / "missing")) is None
    assert quick.list_runs("postgresql+psycopg://u@h/db") is None
    assert quick.list_runs(populated, status="bogus") is None
    import sqlite3

    con = sqlite3.connect(f"{populated}/store.db")
    con.execute("UPDATE alembic_version SET version_num = '9999'")
    con.commit()
    con.close()
    assert quick.list_runs(populated) is None


def test_quick_listing_imports_neither_sqlalchemy_nor_tensorflow(populated):
    code = textwrap.dedent(
        """
        import sys
        from ckptstore.metadata import quick
        runs = quick.list_runs(sys.argv[1])
        print(len(runs), "sqlalchemy" in sys.modules, "tensorflow" in sys.modules)
        """
    )
    out = run_py(code, populated)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["4", "False", "False"]
