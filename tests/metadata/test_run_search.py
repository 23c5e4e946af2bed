"""Issue 17, the library: run identity, best by a metric, search and sort (both databases)."""

from __future__ import annotations

import pytest

import ckptstore
from ckptstore import KeepBest, Retention
from ckptstore.errors import QuerySyntaxError, RunExistsError, UnknownRefError, UnknownRunError
from ckptstore.names import parse_ref
from ckptstore.retention import resolve_mode

# --------------------------------------------------------------------------- run identity


def test_starting_a_used_name_is_refused_unless_resumed(store):
    with store.start_run("keras-mlp") as run:
        run.log(1, loss=1.0)
    ended = store.get_run("keras-mlp").ended_at
    with pytest.raises(RunExistsError, match="'keras-mlp' already exists.*resume=True"):
        store.start_run("keras-mlp")
    with pytest.raises(RunExistsError):
        store.start_run("keras-mlp", resume=False)
    # Nothing of the refused call changed the run.
    info = store.get_run("keras-mlp")
    assert (info.status, info.ended_at) == ("finished", ended)
    assert [s.metrics for s in store.steps("keras-mlp")] == [{"loss": 1.0}]
    with pytest.raises(UnknownRunError, match="no run named 'other' to resume"):
        store.start_run("other", resume="must")
    with store.start_run("other", resume=True):  # "allow": starts it when there is none
        pass
    with pytest.raises(Exception, match="resume must be"):
        store.start_run("x", resume="sometimes")


def test_a_resumed_run_relogs_steps_and_keeps_the_replaced_values(store):
    with store.start_run("r") as run:
        for step in (1, 2, 3):
            run.log(step, loss=1.0 / step)
    # The script restores step 1 and trains again (rewind): steps 2 and 3 get new values.
    with store.start_run("r", resume=True) as run:
        assert store.get_run("r").status == "running" and store.get_run("r").ended_at is None
        with pytest.raises(ckptstore.StepConflictError):
            run.log(2, loss=0.4)  # a resume alone continues after step 3
    with store.start_run("r", resume=True, overwrite=True) as run:
        run.log(2, loss=0.4)
        run.log(3, loss=0.3)
    assert [s.metrics["loss"] for s in store.steps("r")] == [1.0, 0.4, 0.3]
    history = store.metric_history("r")
    assert [(h.step, h.key, h.value) for h in history] == [(2, "loss", 0.5), (3, "loss", pytest.approx(1 / 3))]
    assert all(h.replaced_at >= h.wall_time for h in history)
    assert store.get_run("r").status == "finished"


def test_a_run_without_a_name_gets_a_new_readable_one(store):
    names = {store.start_run().name for _ in range(3)}
    assert len(names) == 3
    assert all(n.startswith("run-") for n in names)


def test_a_handle_on_a_finished_run_changes_neither_status_nor_times(store):
    with store.start_run("done") as run:
        run.log(1, loss=1.0)
    before = store.get_run("done")
    with store.run("done") as handle:
        handle.log(2, loss=0.5)  # a late evaluation is fine
    after = store.get_run("done")
    assert (after.status, after.ended_at, after.created_at) == (before.status, before.ended_at, before.created_at)
    assert [s.step for s in store.steps("done")] == [1, 2]


# --------------------------------------------------------------------------- best by a metric


@pytest.mark.parametrize("name,mode", [
    ("val_accuracy", "max"), ("acc", "max"), ("top_5_acc", "max"), ("auc", "max"), ("val_precision", "max"),
    ("recall", "max"), ("f1_score", "max"), ("mean_iou", "max"), ("mAP", "max"),
    ("loss", "min"), ("val_loss", "min"), ("mae", "min"), ("error_rate", "min"), ("perplexity", "min"),
])
def test_keep_best_auto_infers_the_direction_from_the_name(name, mode):
    assert resolve_mode(name) == mode
    assert KeepBest(name).mode == mode
    assert Retention(keep_best=KeepBest(name)).to_json()["keep_best"]["mode"] == mode
    assert KeepBest(name, mode="min").mode == "min"


def test_the_retention_json_of_a_run_says_the_resolved_mode(store):
    with store.start_run("acc", retention=Retention(keep_best=KeepBest("val_accuracy"))):
        pass
    assert store.get_run("acc").retention["keep_best"] == {"metric": "val_accuracy", "k": 1, "mode": "max"}


def test_best_ref_parses():
    ref = parse_ref("mlp@best:val_loss")
    assert (ref.kind, ref.run, ref.metric, ref.mode) == ("best", "mlp", "val_loss", "auto")
    assert parse_ref("mlp@best:max:score").mode == "max"
    with pytest.raises(Exception, match="metric name"):
        parse_ref("mlp@best:")


def _three_checkpoints(store, tiny_model):
    model = tiny_model()
    with store.start_run("mlp") as run:
        for step, (loss, acc) in zip((10, 20, 30), ((0.5, 0.7), (0.2, 0.9), (0.3, 0.8))):
            run.log(step, val_loss=loss, val_accuracy=acc)
            run.save(model, step)
        run.log(40, val_loss=0.01, val_accuracy=0.99)  # no checkpoint there: never "best"


def test_best_checkpoint_by_a_metric_and_its_ref(store, tiny_model, tmp_path):
    _three_checkpoints(store, tiny_model)
    assert store.best("mlp", "val_loss").step == 20
    assert store.best("mlp", "val_accuracy").step == 20
    assert store.best("mlp", "val_accuracy", mode="min").step == 10
    assert store.checkpoint("mlp@best:val_loss").step == 20
    assert store.checkpoint("mlp@best:min:val_accuracy").step == 10
    # Everywhere a REF works: tag, variables, materialize.
    assert store.set_alias("prod", "mlp@best:val_accuracy").target == "mlp@20"
    assert [v.name for v in store.variables("mlp@best:val_loss")]
    prefix = store.materialize("mlp@best:val_loss", tmp_path / "out")
    assert prefix.name.endswith("20")
    with pytest.raises(UnknownRefError, match="never logged a metric 'nope'"):
        store.best("mlp", "nope")


# --------------------------------------------------------------------------- search and sort


def _runs(store):
    specs = [
        ("a", {"lr": 0.01, "opt": "adam"}, {"team": "vision"}, [0.5, 0.15, 0.3]),
        ("b", {"lr": 0.1, "opt": "sgd"}, {"team": "nlp", "baseline": "yes"}, [0.9, 0.6, 0.4]),
        ("c", {"lr": 0.01, "opt": "sgd"}, {"team": "vision"}, [0.8, 0.25, 0.1]),
        ("d", {"opt": "adam"}, {}, []),
    ]
    for name, params, tags, losses in specs:
        with store.start_run(name, params=params, tags=tags) as run:
            for step, loss in enumerate(losses, 1):
                run.log(step, val_loss=loss, val_accuracy=1 - loss)
    return [s[0] for s in specs]


def names(runs):
    return [r.name for r in runs]


def test_search_filters_on_params_tags_and_metrics(store):
    _runs(store)
    assert names(store.runs()) == ["d", "c", "b", "a"]  # newest first
    assert names(store.runs(where="params.lr = 0.01 and metrics.val_loss.min < 0.2")) == ["c", "a"]
    assert names(store.runs(where="params.lr = 0.01 and metrics.val_loss.min < 0.12")) == ["c"]
    assert names(store.runs(where="params.opt = 'sgd'")) == ["c", "b"]
    assert names(store.runs(where="params.opt = adam or tags.team = nlp")) == ["d", "b", "a"]
    assert names(store.runs(where="tag = 'baseline'")) == ["b"]
    assert names(store.runs(where="tag != 'baseline' and (status = finished)")) == ["d", "c", "a"]
    assert names(store.runs(where="metrics.val_loss.last >= 0.3")) == ["b", "a"]
    assert names(store.runs(where="metrics.val_loss > 0.3")) == ["b"]  # .last by default
    assert names(store.runs(where="metrics.val_accuracy.max > 0.8")) == ["c", "a"]
    assert names(store.runs(where="metrics.val_accuracy.best > 0.8")) == ["c", "a"]
    assert names(store.runs(where="params.lr = null")) == ["d"]
    assert names(store.runs(where="not params.lr = 0.01")) == ["d", "b"]
    assert names(store.runs(where="name = 'a' or name = \"b\"")) == ["b", "a"]
    assert names(store.runs(where="created >= '2000-01-01' and last_step >= 3")) == ["c", "b", "a"]


def test_search_sorts_and_limits(store):
    _runs(store)
    assert names(store.runs(order_by="metrics.val_loss.min")) == ["c", "a", "b", "d"]
    assert names(store.runs(order_by="-metrics.val_loss.min")) == ["b", "a", "c", "d"]  # missing: last
    assert names(store.runs(order_by="metrics.val_loss.min desc", limit=2)) == ["b", "a"]
    assert names(store.runs(order_by=["params.lr", "-name"])) == ["c", "a", "b", "d"]
    assert names(store.runs(order_by="name")) == ["a", "b", "c", "d"]
    assert names(store.runs(limit=1)) == ["d"]
    assert names(store.runs(name="[ab]", limit=1)) == ["b"]


@pytest.mark.parametrize("where,col,needle", [
    ("params.lr =< 0.01", 12, "expected a value"),
    ("params.lr = 0.01 and", 21, "expected a field"),
    ("foo = 1", 1, "unknown field 'foo'"),
    ("metrics.loss < 'low'", 16, "metrics compare with numbers"),
    ("(status = finished", 19, "expected ')'"),
    ("params.lr = 1 1", 15, "expected 'and', 'or' or the end"),
    ("name = 'x' ; drop table runs", 12, "unexpected character ';'"),
])
def test_a_bad_search_is_one_error_naming_the_column(store, where, col, needle):
    with pytest.raises(QuerySyntaxError) as info:
        store.runs(where=where)
    message = str(info.value)
    assert f"column {col}:" in message and needle in message and "\n" not in message


def test_search_text_is_never_sql(store):
    _runs(store)
    assert store.runs(where="name = 'a''; DROP TABLE runs; --'") == []
    assert store.runs(where="params.\"x') OR 1=1 --\" = 1") == []
    assert len(store.runs()) == 4


def test_a_store_at_revision_0001_upgrades_and_then_keeps_metric_history(store_uri):
    import ckptstore
    from ckptstore.metadata import versions

    uri, root = store_uri
    with ckptstore.open_store(uri, root=root) as s:
        with s.start_run("old") as run:
            run.log(1, loss=1.0)
        versions.run_downgrade(s.engine, "0001")
        assert versions.current_revision(s.engine) == "0001"
    with ckptstore.open_store(uri, root=root) as s:  # upgrades to head
        assert s.revision == versions.HEAD_REVISION
        with s.start_run("old", resume=True, overwrite=True) as run:
            run.log(1, loss=0.5)
        assert s.steps("old")[0].metrics == {"loss": 0.5}
        assert [(h.step, h.value) for h in s.metric_history("old")] == [(1, 1.0)]
        assert [r.name for r in s.runs(where="metrics.loss < 1")] == ["old"]
