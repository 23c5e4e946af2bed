"""The reads written once (``metadata/reads.py``) give the same answers on every driver: through
SQLAlchemy on SQLite and PostgreSQL (the ``store`` fixture), and through ``sqlite3`` (the CLI's
quick reader) on the same SQLite store."""

from __future__ import annotations

import math

import pytest

from ckptstore.errors import UnknownRefError, UnknownRunError
from ckptstore.metadata import reads
from ckptstore.metadata.queries import sql_of
from ckptstore.metadata.quick_reader import Fallback, QuickReader


def _fill(store, tiny_model) -> None:
    """'mlp': loss every step 1-30, val_loss every 10, checkpoints at 10, 20, 30 (20 the best),
    'prod' on mlp@20; 'wide': loss at 10 and a NaN at 15; 'empty': nothing."""
    with store.start_run("mlp", params={"lr": 0.1}, tags={"team": "vision"}) as run:
        model = tiny_model()
        for step in range(1, 31):
            run.log(step, loss=1.0 / step)
            if step % 10 == 0:
                run.log(step, val_loss={10: 0.5, 20: 0.2, 30: 0.3}[step])
                run.save(model, step)
    with store.start_run("wide", params={"lr": 0.01}) as run:
        run.log(10, loss=0.5)
        run.log(15, loss=float("nan"))
    with store.start_run("empty"):
        pass
    store.tag("mlp@best:val_loss", "prod", message="best so far")


def _reads(reader) -> dict[str, object]:
    """Every read the CLI's read commands make, as the Store's methods of the same names."""
    return {
        "runs": reader.runs(),
        "runs sorted": reader.runs(where="params.lr < 1", order_by="-metrics.loss.min", limit=2),
        "get_run": reader.get_run("mlp"),
        "metric_keys": reader.metric_keys("mlp"),
        "compare": reader.compare_runs(["mlp", "wide"]),
        "steps": reader.steps("mlp", start=9, stop=11, keys=["loss", "val_loss"]),
        "steps open": reader.steps("wide"),
        "steps no keys": reader.steps("mlp", keys=[]),
        "at exact": reader.at_step(10),
        "at nearest": reader.at_step(25, nearest=True, keys=["val_loss"]),
        "at nearest all": reader.at_step(2**63 + 5, nearest=True),
        "at past bigint": reader.at_step(2**63 + 5),
        "checkpoints": reader.checkpoints("mlp"),
        "checkpoint_metric": reader.checkpoint_metric("mlp", "val_loss"),
        "variables best": reader.variables("mlp@best:val_loss"),
        "variables alias": reader.variables("prod"),
        "variables nearest": reader.variables("mlp@~25"),
        "exports": reader.exports(),
        "aliases": reader.aliases(),
        "aliases one": reader.aliases("prod"),
    }


def test_every_read_answers_the_same_on_each_database(store, tiny_model):
    _fill(store, tiny_model)
    got = _reads(store)
    assert got["metric_keys"] == ["loss", "val_loss"]
    assert [(s.step, s.metrics) for s in got["steps"]] == [(9, {"loss": 1 / 9}), (10, {"loss": 0.1, "val_loss": 0.5}), (11, {"loss": 1 / 11})]
    assert math.isnan(got["steps open"][1].metrics["loss"]) and got["steps no keys"] == []
    assert [(r.run, r.step, r.checkpoint_step) for r in got["at exact"]] == [("mlp", 10, 10), ("wide", 10, None)]
    assert [(r.run, r.step, r.metrics, r.checkpoint_step) for r in got["at nearest"]] == [("mlp", 20, {"val_loss": 0.2}, 20)]
    assert [(r.run, r.step) for r in got["at nearest all"]] == [("mlp", 30), ("wide", 15)] and got["at past bigint"] == []
    assert [c.step for c in got["checkpoints"]] == [10, 20, 30] and got["checkpoints"][1].aliases == ["prod"]
    assert got["checkpoint_metric"] == {10: 0.5, 20: 0.2, 30: 0.3}
    assert got["variables best"] == got["variables alias"] == got["variables nearest"]
    assert [(v.readable or v.name) for v in got["variables best"]] == sorted(v.readable or v.name for v in got["variables best"])
    assert [(a.name, a.target, a.message) for a in got["aliases"]] == [("prod", "mlp@20", "best so far")]
    assert got["aliases one"] == got["aliases"] and got["exports"] == []
    assert [r.name for r in got["runs sorted"]] == ["wide", "mlp"]  # min loss 0.5, then 1/30
    with store.read() as conn:
        assert reads.completion_names(sql_of(conn)) == {
            "runs": ["empty", "mlp", "wide"], "aliases": ["prod"], "steps": {"mlp": [10, 20, 30]},
            "metrics": {"mlp": ["loss", "val_loss"], "wide": ["loss"]},
        }
    with pytest.raises(UnknownRefError, match="its checkpoints are at steps 10, 20, 30"):
        store.variables("mlp@11")
    with pytest.raises(UnknownRefError, match="never logged a metric 'val_los': did you mean best:val_loss"):
        store.variables("mlp@best:val_los")


def test_the_quick_reader_runs_the_same_reads_through_sqlite3(sqlite_store, tiny_model, tmp_path):
    _fill(sqlite_store, tiny_model)
    expected = _reads(sqlite_store)
    with QuickReader.open(tmp_path / "store") as quick:
        got = _reads(quick)
        got["completion"] = reads.completion_names(quick.sql)
    with sqlite_store.read() as conn:
        expected["completion"] = reads.completion_names(sql_of(conn))
    # NaN != NaN: compare the one NaN apart
    assert math.isnan(got["steps open"][1].metrics.pop("loss")) and math.isnan(expected["steps open"][1].metrics.pop("loss"))
    assert got == expected


def test_the_quick_reader_leaves_what_it_cannot_answer_to_the_store(sqlite_store, tiny_model, tmp_path):
    _fill(sqlite_store, tiny_model)
    with QuickReader.open(tmp_path / "store") as quick:
        for read in (lambda: quick.variables("export:1"), lambda: quick.aliases("nope")):
            with pytest.raises(Fallback):
                read()
        with pytest.raises(UnknownRefError, match="its checkpoints are at steps 10, 20, 30"):
            quick.variables("mlp@11")  # the store resolves a REF with the same read
        # An unknown run of a directory store is worded here, as the store words it (issue 26:
        # an error line without SQLAlchemy's import).
        for read in (lambda: quick.steps("nope"), lambda: quick.get_run("nope"), lambda: quick.checkpoints("nope")):
            with pytest.raises(UnknownRunError) as quick_error:
                read()
            with pytest.raises(UnknownRunError) as store_error:
                sqlite_store.get_run("nope")
            assert str(quick_error.value) == str(store_error.value)
    # Named by a URL, the store is left to word it.
    with QuickReader.open(f"sqlite:///{tmp_path / 'store' / 'store.db'}") as quick:
        for read in (lambda: quick.steps("nope"), lambda: quick.get_run("nope"), lambda: quick.checkpoints("nope"),
                     lambda: quick.variables("mlp@11")):
            with pytest.raises(Fallback):
                read()
