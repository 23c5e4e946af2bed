"""``ckptstore tensorboard --follow``: a real training writer logs steps (and saves checkpoints)
while the follower appends them to the same event file; each step once, the file complete and
closed when the run ends or on Ctrl-C (exit 0). Read back with TensorBoard's own reader."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.tensorboard import hparams_view, markers, read_back, session_ends

pytest.importorskip("tensorboard", reason="TensorBoard export needs the tensorboard package")

#: The command line in a child process with a deadline of its own (``children.python``).
CLI = 'import runpy, sys; sys.argv = ["ckptstore", *sys.argv[1:]]; runpy.run_module("ckptstore", run_name="__main__")'


def wait_for(check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_following_appends_each_step_once_until_the_run_ends(store, store_uri, tmp_path: Path):
    import ckptstore
    from ckptstore.tensorboard import follow_event_files

    run = store.start_run("live", params={"lr": 0.1})
    run.log(0, loss=1.0)
    run.flush()
    started: list[list[Path]] = []
    result: dict[str, object] = {}
    stop = threading.Event()

    def follower() -> None:
        # A store of its own, as the command opens it; polls far more often than a user would.
        own = ckptstore.open_store(store_uri[0], root=store_uri[1])
        try:
            result["paths"] = follow_event_files(own, ["live"], tmp_path / "tb", interval=0.01, stop=stop,
                                                 on_new_files=started.append)
        except BaseException as exc:  # pragma: no cover - reported by the asserts below
            result["error"] = exc
        finally:
            own.close()

    thread = threading.Thread(target=follower)
    thread.start()
    try:
        wait_for(lambda: started)
        for step in range(1, 40):
            run.log(step, loss=1.0 / (step + 1))
            run.flush()
            if step % 4 == 0:
                time.sleep(0.02)
                # Keras logs validation metrics after the training ones, at the same step.
                run.log(step, val_loss=2.0 / (step + 1))
                run.flush()
            time.sleep(0.003)
        run.finish()
        thread.join(timeout=60)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert "error" not in result, result
    assert result["paths"] == started[0]
    assert [p.name for p in (tmp_path / "tb" / "live").iterdir()] == [started[0][0].name]  # one file
    got = read_back(tmp_path / "tb" / "live")
    assert [s for s, _, _ in got["loss"]] == list(range(40))
    assert [s for s, _, _ in got["val_loss"]] == list(range(4, 40, 4))
    assert session_ends(tmp_path / "tb" / "live") == 1
    # val_loss, first logged after the follow started, was added to the experiment config.
    experiment, groups = hparams_view(tmp_path / "tb")
    assert sorted(m.name.tag for m in experiment.metric_infos) == ["loss", "val_loss"]
    assert {m.name.tag: m.training_step for m in groups["live"].metric_values} == {"loss": 39, "val_loss": 36}
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 1  # rewritten, not added to


def test_following_a_glob_picks_up_the_runs_that_start_meanwhile(sqlite_store, tmp_path: Path):
    import ckptstore
    from ckptstore.tensorboard import follow_event_files

    first = sqlite_store.start_run("sweep-1", params={"lr": 0.1})
    first.log(0, loss=1.0)
    first.flush()
    started: list[list[Path]] = []
    errors: list[BaseException] = []
    own = ckptstore.open_store(str(tmp_path / "store"))

    def follower() -> None:
        try:
            follow_event_files(own, ["sweep-*"], tmp_path / "tb", interval=0.01, on_new_files=started.append)
        except BaseException as exc:  # pragma: no cover - reported by the asserts below
            errors.append(exc)

    thread = threading.Thread(target=follower)
    thread.start()
    try:
        wait_for(lambda: started)
        second = sqlite_store.start_run("sweep-2", params={"lr": 0.5, "width": 64})
        second.log(0, loss=2.0)
        second.flush()
        wait_for(lambda: len(started) == 2)
        for run in (first, second):
            run.log(1, loss=0.5)
            run.finish()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the follower did not stop"
    finally:
        own.close()  # (a follower still running would fail on its next look, and end)
    assert not errors, errors
    assert [[p.parent.name for p in paths] for paths in started] == [["sweep-1"], ["sweep-2"]]
    for name in ("sweep-1", "sweep-2"):
        assert [s for s, _, _ in read_back(tmp_path / "tb" / name)["loss"]] == [0, 1]
        assert session_ends(tmp_path / "tb" / name) == 1
    experiment, groups = hparams_view(tmp_path / "tb")  # the config was rewritten for the newcomer
    lr = next(h for h in experiment.hparam_infos if h.name == "lr")
    assert (lr.domain_interval.min_value, lr.domain_interval.max_value) == (0.1, 0.5)
    assert sorted(groups) == ["sweep-1", "sweep-2"]


def test_following_runs_that_ended_returns_at_once(sqlite_store, tmp_path: Path):
    from ckptstore.tensorboard import follow_event_files

    with sqlite_store.start_run("done") as run:
        run.log(3, loss=1.0)
    t0 = time.monotonic()
    [path] = follow_event_files(sqlite_store, ["done"], tmp_path / "tb", interval=60)
    assert time.monotonic() - t0 < 30
    assert [s for s, _, _ in read_back(path.parent)["loss"]] == [3]
    assert session_ends(path.parent) == 1


@pytest.mark.slow  # the command in a child process, checkpoints saved with TensorFlow meanwhile
def test_the_follow_command_marks_new_checkpoints_and_stops_cleanly_on_ctrl_c(sqlite_store, tiny_model, tmp_path,
                                                                              children):
    run = sqlite_store.start_run("live")
    for step in range(5):
        run.log(step, loss=1.0 / (step + 1))
    run.save(tiny_model(1.0), 4)
    proc = children.python(CLI, "--store", str(tmp_path / "store"), "tensorboard", "live", "--logdir",
                           str(tmp_path / "tb"), "--follow", "--interval", "0.05", deadline=120)
    run_dir = tmp_path / "tb" / "live"
    first = proc.stdout.readline().strip()
    assert Path(first).parent == run_dir, first + proc.stderr.read()
    for step in range(5, 10):
        run.log(step, loss=1.0 / (step + 1))
    run.save(tiny_model(2.0), 9)  # flushes the steps before it
    sqlite_store.set_alias("prod", "live@9")  # before the follower sees the checkpoint, or not: either is right
    wait_for(lambda: 9 in markers(run_dir))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Aborted" not in err
    assert err.splitlines()[-1] == "stopped; the files are complete up to here"
    assert [s for s, _, _ in read_back(run_dir)["loss"]] == list(range(10))
    assert markers(run_dir)[4] == "checkpoint `live@4`, not pinned"
    assert markers(run_dir)[9].startswith("checkpoint `live@9`, ")
    assert session_ends(run_dir) == 0  # the run still runs: stopping the follow does not end it
    run.finish()


#: A training process that logs 5 steps, says so, then hangs until killed.
DOOMED = """
import sys, time, ckptstore
store = ckptstore.open_store(sys.argv[1])
run = store.start_run("doomed")
for step in range(5):
    run.log(step, loss=1.0 / (step + 1))
run.flush()
print("logged", flush=True)
time.sleep(600)
"""


@pytest.mark.slow  # a training process of its own, killed
def test_following_stops_when_the_training_process_dies(sqlite_store, tmp_path: Path, children):
    from tensorboard.plugins.hparams import api_pb2

    from ckptstore.tensorboard import follow_event_files

    trainer = children.python(DOOMED, str(tmp_path / "store"), deadline=120)
    assert trainer.stdout.readline().strip() == "logged", trainer.stderr.read()
    result: dict[str, object] = {}
    thread = threading.Thread(target=lambda: result.update(
        paths=follow_event_files(sqlite_store, ["doomed"], tmp_path / "tb", interval=0.05)))
    thread.start()
    trainer.kill()  # SIGKILL: the run never says it ended; readers see it crashed
    trainer.wait(timeout=30)
    thread.join(timeout=60)
    assert not thread.is_alive(), "the follower did not stop"
    assert sqlite_store.get_run("doomed").status == "crashed"
    assert [s for s, _, _ in read_back(tmp_path / "tb" / "doomed")["loss"]] == list(range(5))
    _, groups = hparams_view(tmp_path / "tb")
    assert groups["doomed"].sessions[0].status == api_pb2.STATUS_FAILURE
