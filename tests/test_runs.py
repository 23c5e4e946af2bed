"""Opening stores and the life of a run: start, finish or fail, resume, list, look up, delete."""

from __future__ import annotations

import math
import re
import sqlite3
from pathlib import Path

import pytest

import ckptstore
from ckptstore.errors import InvalidNameError, StoreConfigError, UnknownRunError

# --------------------------------------------------------------------------- open_store


def test_open_store_defaults_to_dot_ckptstore_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CKPTSTORE_URI", raising=False)
    monkeypatch.delenv("CKPTSTORE_ROOT", raising=False)
    with ckptstore.open_store() as s:
        with s.start_run("here"):
            pass
        assert s.root == (tmp_path / ".ckptstore").resolve()
    assert (tmp_path / ".ckptstore" / "store.db").is_file()


def test_open_store_takes_the_location_from_ckptstore_uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CKPTSTORE_URI", str(tmp_path / "from-env"))
    with ckptstore.open_store() as s:
        with s.start_run("env"):
            pass
    assert (tmp_path / "from-env" / "store.db").is_file()
    assert not (tmp_path / ".ckptstore").exists()


def test_open_store_argument_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CKPTSTORE_URI", str(tmp_path / "from-env"))
    ckptstore.open_store(tmp_path / "explicit").close()
    assert (tmp_path / "explicit" / "store.db").is_file()
    assert not (tmp_path / "from-env").exists()


def test_open_store_with_a_sqlalchemy_sqlite_url_and_a_separate_root(tmp_path):
    url = f"sqlite:///{tmp_path / 'meta' / 'runs.db'}"
    with ckptstore.open_store(url, root=tmp_path / "files") as s:
        assert s.dialect == "sqlite"
        assert s.root == tmp_path / "files"
        with s.start_run("url"):
            pass
    assert (tmp_path / "meta" / "runs.db").is_file()


def test_open_store_sqlite_url_without_root_puts_files_beside_the_database(tmp_path):
    with ckptstore.open_store(f"sqlite:///{tmp_path / 'x.db'}") as s:
        assert s.root == tmp_path.resolve()


def test_open_store_refuses_a_file_as_the_location(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StoreConfigError, match="is a file"):
        ckptstore.open_store(tmp_path / "afile")


def test_open_store_refuses_a_malformed_url(tmp_path):
    with pytest.raises(StoreConfigError):
        ckptstore.open_store("nosuchdialect://whatever/db")


def test_sqlite_store_runs_in_wal_mode_with_a_busy_timeout(sqlite_store):
    with sqlite_store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    # WAL is a property of the file: a plain sqlite3 connection sees it too.
    path = sqlite_store.engine.url.database
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA journal_mode").fetchone() == ("wal",)


# --------------------------------------------------------------------------- start_run / finish


def test_a_run_that_ends_normally_is_finished_with_its_metrics(store):
    with store.start_run("ok", params={"lr": 0.01}, tags={"team": "vision"}) as run:
        assert store.get_run("ok").status == "running"
        for step in range(1, 4):
            run.log(step, loss=1.0 / step)
    info = store.get_run("ok")
    assert info.status == "finished"
    assert info.ended_at is not None and info.ended_at >= info.created_at
    assert info.params == {"lr": 0.01}
    assert info.tags == {"team": "vision"}
    assert [s.step for s in store.steps("ok")] == [1, 2, 3]


def test_a_run_that_raises_is_failed_and_keeps_every_logged_value(store):
    with pytest.raises(RuntimeError, match="diverged"):
        with store.start_run("boom", flush_every=1_000_000, flush_seconds=3600) as run:
            for step in range(100):
                run.log(step, loss=float(step))
            raise RuntimeError("diverged")
    info = store.get_run("boom")
    assert info.status == "failed"
    assert info.ended_at is not None
    assert len(store.steps("boom")) == 100
    assert info.last_step == 99


def test_keyboard_interrupt_marks_the_run_failed(store):
    with pytest.raises(KeyboardInterrupt):
        with store.start_run("ctrl-c") as run:
            run.log(1, loss=1.0)
            raise KeyboardInterrupt
    assert store.get_run("ctrl-c").status == "failed"
    assert store.steps("ctrl-c")[0].metrics == {"loss": 1.0}


def test_starting_an_existing_name_resumes_and_merges_params_and_tags(store):
    with store.start_run("resumable", params={"lr": 0.1, "bs": 32}, tags={"a": "1", "b": "2"}) as run:
        run.log(1, loss=1.0)
    first = store.get_run("resumable")
    # A changed param is refused unless asked for, and nothing of the run changes.
    with pytest.raises(ckptstore.ParamsChangedError, match=r"lr 0.1 -> 0.05.*update_params=True"):
        store.start_run("resumable", params={"lr": 0.05}, resume=True)
    assert store.get_run("resumable").status == "finished"
    assert store.get_run("resumable").params == {"lr": 0.1, "bs": 32}
    with pytest.raises(ValueError):
        with store.start_run("resumable", params={"lr": 0.05}, tags={"b": "3", "c": "4"}, resume=True,
                             update_params=True) as run:
            assert store.get_run("resumable").status == "running"
            assert store.get_run("resumable").ended_at is None
            run.log(2, loss=0.5)
            raise ValueError("crash in the second session")
    assert store.get_run("resumable").status == "failed"
    with store.start_run("resumable", resume="must") as run:
        run.log(3, loss=0.25)
    info = store.get_run("resumable")
    assert info.id == first.id
    assert info.created_at == first.created_at
    assert info.status == "finished"
    assert info.params == {"lr": 0.05, "bs": 32}
    assert info.tags == {"a": "1", "b": "3", "c": "4"}
    assert [s.step for s in store.steps("resumable")] == [1, 2, 3]
    assert len(store.runs()) == 1


def test_a_run_without_a_name_gets_a_unique_generated_one(store):
    names = set()
    for _ in range(3):
        with store.start_run() as run:
            run.log(0, x=1.0)
            names.add(run.name)
    assert len(names) == 3
    for name in names:
        assert re.fullmatch(r"run-\d{8}-\d{6}-[0-9a-f]{4}", name), name
        assert store.get_run(name).status == "finished"


def test_params_that_are_not_json_are_kept_as_text(store):
    import numpy as np

    with store.start_run("p", params={"path": Path("/data"), "lr": np.float32(0.5), "layers": [1, 2]}):
        pass
    params = store.get_run("p").params
    assert params["lr"] == 0.5 and params["layers"] == [1, 2]
    assert "data" in params["path"]


def test_tag_values_are_stored_as_text(store):
    with store.start_run("t", tags={"seed": 7}):
        pass
    assert store.get_run("t").tags == {"seed": "7"}


@pytest.mark.parametrize("bad", ["", "a@b", "a/b", "-x", " pad", "x" * 201])
def test_bad_run_names_are_refused_before_anything_is_written(store, bad):
    with pytest.raises(InvalidNameError):
        store.start_run(bad)
    assert store.runs() == []


# --------------------------------------------------------------------------- listing and lookup


@pytest.fixture
def three_runs(store):
    with store.start_run("resnet-a", tags={"team": "vision", "gpu": "a100"}) as run:
        run.log(10, loss=0.5)
    with pytest.raises(RuntimeError):
        with store.start_run("resnet-b", tags={"team": "vision"}) as run:
            run.log(20, loss=0.7)
            raise RuntimeError
    with store.start_run("bert_1", tags={"team": "nlp"}) as run:
        run.log(5, loss=0.9)
    return store


def test_runs_are_listed_newest_first_with_their_last_step(three_runs):
    runs = three_runs.runs()
    assert [r.name for r in runs] == ["bert_1", "resnet-b", "resnet-a"]
    assert [r.last_step for r in runs] == [5, 20, 10]
    assert [r.checkpoints for r in runs] == [0, 0, 0]
    assert [r.name for r in three_runs.runs(order_by="created")] == ["resnet-a", "resnet-b", "bert_1"]


def test_runs_filter_by_status(three_runs):
    assert [r.name for r in three_runs.runs(status="failed")] == ["resnet-b"]
    assert [r.name for r in three_runs.runs(status="finished")] == ["bert_1", "resnet-a"]
    assert three_runs.runs(status="running") == []
    with pytest.raises(ValueError, match="status must be one of"):
        three_runs.runs(status="done")


def test_runs_filter_by_tags_all_of_which_must_match(three_runs):
    assert [r.name for r in three_runs.runs(tags={"team": "vision"})] == ["resnet-b", "resnet-a"]
    assert [r.name for r in three_runs.runs(tags={"team": "vision", "gpu": "a100"})] == ["resnet-a"]
    assert three_runs.runs(tags={"team": "audio"}) == []


def test_runs_filter_by_name_glob(three_runs):
    assert [r.name for r in three_runs.runs(name="resnet-*")] == ["resnet-b", "resnet-a"]
    assert [r.name for r in three_runs.runs(name="resnet-?")] == ["resnet-b", "resnet-a"]
    assert [r.name for r in three_runs.runs(name="bert_1")] == ["bert_1"]
    # '_' and '%' are literal characters in names, not SQL wildcards.
    assert three_runs.runs(name="bert%") == []
    assert three_runs.runs(name="bert-1") == []
    assert [r.name for r in three_runs.runs(name="*_*")] == ["bert_1"]
    assert [r.name for r in three_runs.runs(name="resnet-[a]")] == ["resnet-a"]
    assert [r.name for r in three_runs.runs(name="res*-[!a]")] == ["resnet-b"]
    # Case-sensitive on both databases (SQLite's LIKE alone would not be).
    assert three_runs.runs(name="RESNET-*") == []


def test_runs_filters_combine(three_runs):
    assert [r.name for r in three_runs.runs(status="finished", tags={"team": "vision"}, name="res*")] == ["resnet-a"]


def test_get_run_of_an_unknown_name_is_a_clear_error(store):
    with pytest.raises(UnknownRunError, match="no run named 'ghost'"):
        store.get_run("ghost")


def test_a_run_with_nothing_logged_has_no_last_step(store):
    with store.start_run("empty"):
        pass
    assert store.get_run("empty").last_step is None


def test_delete_run_removes_it_with_its_metrics_and_tags(three_runs):
    s = three_runs
    assert s.delete_run("resnet-a") == 0
    assert [r.name for r in s.runs()] == ["bert_1", "resnet-b"]
    with pytest.raises(UnknownRunError):
        s.steps("resnet-a")
    with s.read() as conn:
        from sqlalchemy import text

        assert conn.execute(text("SELECT count(*) FROM metrics")).scalar() == 2
        assert conn.execute(text("SELECT count(*) FROM run_tags WHERE key = 'gpu'")).scalar() == 0
    with pytest.raises(UnknownRunError):
        s.delete_run("resnet-a")
    # The name is free again.
    with s.start_run("resnet-a") as run:
        run.log(1, loss=1.0)
    assert s.get_run("resnet-a").last_step == 1


def test_store_run_handle_logs_without_changing_status(store):
    with store.start_run("handle") as run:
        run.log(1, loss=1.0)
    h = store.run("handle")
    h.log(2, loss=0.5)
    h.flush()
    assert store.get_run("handle").status == "finished"
    assert [s.step for s in store.steps("handle")] == [1, 2]


def test_set_status_changes_a_run_status(store):
    with store.start_run("s"):
        pass
    store.set_status("s", "failed")
    assert store.get_run("s").status == "failed"
    store.set_status("s", "running")
    assert store.get_run("s").ended_at is None
    with pytest.raises(ValueError):
        store.set_status("s", "paused")


def test_created_and_ended_times_are_timezone_aware(store):
    with store.start_run("tz"):
        pass
    info = store.get_run("tz")
    assert info.created_at.tzinfo is not None and info.ended_at.tzinfo is not None
    assert math.isclose(info.created_at.utcoffset().total_seconds(), 0)



# --------------------------------------------------------------------------- the live-run registry


def test_a_handle_is_not_kept_alive_by_its_store_but_its_unwritten_values_are(sqlite_store):
    import gc
    import weakref

    saver = sqlite_store.start_run("saver")
    saver.finish()
    ref = weakref.ref(saver)
    del saver
    gc.collect()
    assert ref() is None  # the store holds handles weakly

    logger = sqlite_store.start_run("logger", flush_every=10**9, flush_seconds=10**9)
    logger.log(1, loss=0.5)
    ref = weakref.ref(logger)
    del logger
    gc.collect()
    assert ref() is None
    sqlite_store.live_runs.flush_all()  # what close() and interpreter exit do
    assert [s.metrics for s in sqlite_store.steps("logger")] == [{"loss": 0.5}]


def test_finish_refuses_an_unknown_status_as_set_status_does(sqlite_store):
    from ckptstore.errors import InvalidOptionError

    run = sqlite_store.start_run("r")
    with pytest.raises(InvalidOptionError) as finishing:
        run.finish("bogus")
    with pytest.raises(InvalidOptionError) as setting:
        sqlite_store.set_status("r", "bogus")
    assert str(finishing.value) == str(setting.value)
    assert sqlite_store.get_run("r").status == "running"
