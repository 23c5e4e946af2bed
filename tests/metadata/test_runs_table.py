"""The runs table (``Store.runs_table``, ``metadata/runs_table.py``): columns of params, tags and
metric aggregates, sorted and filtered by the search language, default columns, did-you-mean;
the same answer on SQLite and PostgreSQL and through the CLI's quick reader (``sqlite3``)."""

from __future__ import annotations

import pytest

from ckptstore import KeepBest, Retention
from ckptstore.errors import QuerySyntaxError
from ckptstore.metadata.quick_reader import QuickReader

GRID = [(0.1, 32), (0.01, 32), (0.001, 64)]


def _grid(store) -> None:
    """Three Keras-like runs over learning rates and widths; grid-1 has the best val_accuracy."""
    for i, (lr, width) in enumerate(GRID):
        with store.start_run(f"grid-{i}", params={"lr": lr, "width": width, "epochs": 3}, tags={"team": "vision"},
                             retention=Retention(keep_best=KeepBest("val_accuracy"))) as run:
            for step in range(3):
                run.log(step, loss=1.0 / (step + 1 + i), val_accuracy=[0.5, 0.8, 0.6][i] + 0.01 * step)
    with store.start_run("other", tags={"seed": "3"}) as run:
        run.log(0, loss=2.0)


def _tables(reader) -> dict[str, object]:
    return {
        "default": reader.runs_table(name="grid-*"),
        "sorted": reader.runs_table(order_by="-metrics.val_accuracy.max", limit=2),
        "asked": reader.runs_table(columns="params.lr, metrics.loss.min, metrics.loss.last, tags.team, last_step",
                                   where="params.width = 32"),
        "misspelt": reader.runs_table(where="metrics.val_acc.max > 0.1"),
    }


def test_columns_sort_where_and_defaults(store):
    _grid(store)
    got = _tables(store)
    default = got["default"]
    # KeepBest's metric (by its mode), then the params that differ; epochs is the same everywhere.
    assert default.columns == ["metrics.val_accuracy.max", "params.lr", "params.width"]
    assert [r.name for r in default.runs] == ["grid-2", "grid-1", "grid-0"]
    assert [v["params.lr"] for v in default.values] == [0.001, 0.01, 0.1]
    assert [v["metrics.val_accuracy.max"] for v in default.values] == pytest.approx([0.62, 0.82, 0.52])
    ranked = got["sorted"]
    assert [r.name for r in ranked.runs] == ["grid-1", "grid-2"]
    assert ranked.columns[0] == "metrics.val_accuracy.max"  # what it is sorted by comes first
    asked = got["asked"]
    assert asked.columns == ["params.lr", "metrics.loss.min", "metrics.loss.last", "tags.team", "last_step"]
    assert {r.name: v for r, v in zip(asked.runs, asked.values)} == {
        "grid-1": {"params.lr": 0.01, "metrics.loss.min": pytest.approx(0.25), "metrics.loss.last": pytest.approx(0.25),
                   "tags.team": "vision", "last_step": 2},
        "grid-0": {"params.lr": 0.1, "metrics.loss.min": pytest.approx(1 / 3), "metrics.loss.last": pytest.approx(1 / 3),
                   "tags.team": "vision", "last_step": 2},
    }
    assert got["misspelt"].runs == []
    assert got["misspelt"].notes == ["no run has a metric 'val_acc' (did you mean metrics.val_accuracy.max?)"]
    # A run without the value shows None, and nothing is noted for a name some run has.
    t = store.runs_table(columns="params.lr, tags.seed", name="other")
    assert t.values == [{"params.lr": None, "tags.seed": "3"}] and t.notes == []


def test_an_unknown_field_suggests_the_store_s_name(store):
    _grid(store)
    with pytest.raises(QuerySyntaxError, match=r"^bad sort: unknown field 'val_accuracy'; did you mean metrics.val_accuracy.max\?$"):
        store.runs_table(order_by="val_accuracy")
    with pytest.raises(QuerySyntaxError, match="did you mean metrics.loss.min"):
        store.runs_table(where="los < 1")
    with pytest.raises(QuerySyntaxError, match="did you mean params.width"):
        store.runs_table(columns="widht")
    with pytest.raises(QuerySyntaxError, match="fields are name, status"):
        store.runs_table(columns="zzzz")  # nothing close: the grammar, as before
    assert store.runs_table(columns="params.lrr").notes == ["no run has a param 'lrr' (did you mean params.lr?)"]


def test_the_quick_reader_gives_the_same_table(sqlite_store, tmp_path):
    _grid(sqlite_store)
    expected = _tables(sqlite_store)
    with QuickReader.open(tmp_path / "store") as quick:
        assert _tables(quick) == expected
