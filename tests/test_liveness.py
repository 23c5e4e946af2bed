"""Run liveness (issue 22): a run whose process ended without ``finish()`` is finished (or failed),
one whose process died reads as ``crashed`` to every reader, and resuming it works.

Real training processes (no TensorFlow needed: a run that logs) are ended for real: normal exit,
an uncaught exception, SIGKILL. Their heartbeat runs every 0.2 s (``CKPTSTORE_HEARTBEAT``), so a
dead run is seen within a second. A reader of the same host knows at once that a killed process is
gone; readers on other hosts only have the heartbeat, which the tests play by making the reader
believe it runs on another host.
"""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

import pytest

import ckptstore
from ckptstore import liveness
from ckptstore.errors import InvalidOptionError, RunExistsError
from ckptstore.metadata import quick
from tests.helpers.cli import as_json
from tests.helpers.processes import run_py

BEAT = {"CKPTSTORE_HEARTBEAT": "0.2"}  # readers give up after 0.6 s without a heartbeat

_TRAIN = textwrap.dedent(
    """
    import sys, time, ckptstore
    uri, root, name, how = sys.argv[1:5]
    store = ckptstore.open_store(uri, root=root)

    def train():  # returns without finishing its run: the handle is garbage at once
        run = store.start_run(name, params={"lr": 0.1})
        for step in range(1, 6):
            run.log(step, loss=1.0 / step)
        run.flush()

    train()
    if how == "raise":
        raise RuntimeError("diverged outside any with-block")
    if how in ("kill", "live"):
        print("training", flush=True)
        time.sleep(600)
    # "end": the script just ends, run and store left open
    """
)


def _start(children, uri: str, root: Path, name: str, how: str):
    """A training process at work on run ``name`` (it printed "training")."""
    proc = children.python(_TRAIN, uri, str(root), name, how, env=BEAT)
    assert proc.stdout.readline().strip() == "training", proc.stderr.read()
    return proc


def _kill(proc) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _status_within(store: ckptstore.Store, name: str, want: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while True:
        status = store.get_run(name).status
        if status == want or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


@pytest.fixture
def elsewhere(monkeypatch):
    """This process reads as if from another host: only heartbeats tell it who is alive."""
    monkeypatch.setattr(liveness, "_host", lambda: ("another-host", "-", "-"))


# --------------------------------------------------------------------------- ended without finish()


@pytest.mark.parametrize("how,code,status", [("end", 0, "finished"), ("raise", 1, "failed")])
def test_a_script_that_ends_without_finish_ends_its_run(store_uri, how, code, status):
    uri, root = store_uri
    out = run_py(_TRAIN, uri, str(root), "r", how, env=BEAT)
    assert out.returncode == code, out.stderr
    with ckptstore.open_store(uri, root=root) as s:
        info = s.get_run("r")
        assert (info.status, info.last_step) == (status, 5)
        assert info.ended_at is not None


_FORKS = textwrap.dedent(
    """
    import os, sys, ckptstore
    store = ckptstore.open_store(sys.argv[1])
    run = store.start_run("parent")
    run.log(1, loss=1.0)
    run.flush()
    pid = os.fork()
    if pid == 0:
        sys.exit(0)  # the child's interpreter exit runs atexit: the run is not the child's to end
    os.waitpid(pid, 0)
    print(store.get_run("parent").status, flush=True)
    """
)


@pytest.mark.slow
def test_a_forked_child_that_exits_leaves_its_parents_run_alone(sqlite_store):
    out = run_py(_FORKS, str(sqlite_store.root), env=BEAT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["running"]
    assert sqlite_store.get_run("parent").status == "finished"  # ended by the parent's own exit


@pytest.mark.slow
def test_an_uncaught_keyboard_interrupt_fails_the_run(sqlite_store):
    code = _TRAIN.replace('raise RuntimeError("diverged outside any with-block")', "raise KeyboardInterrupt")
    out = run_py(code, str(sqlite_store.root), str(sqlite_store.root), "ctrl-c", "raise", env=BEAT)
    assert out.returncode != 0, out.stderr
    assert sqlite_store.get_run("ctrl-c").status == "failed"


def test_crashed_is_only_ever_derived_never_set(sqlite_store):
    sqlite_store.start_run("r")
    with pytest.raises(InvalidOptionError, match="status must be one of running, finished, failed"):
        sqlite_store.set_status("r", "crashed")


def test_closing_the_store_in_a_failing_with_block_fails_its_unfinished_runs(store):
    uri = str(store.url)
    with pytest.raises(ZeroDivisionError):
        with ckptstore.open_store(uri, root=store.root) as s:
            s.start_run("unfinished")
            raise ZeroDivisionError
    assert store.get_run("unfinished").status == "failed"


def test_a_handle_from_store_run_never_changes_the_status(sqlite_store):
    with sqlite_store.start_run("done") as run:
        run.log(1, loss=1.0)
    again = ckptstore.open_store(sqlite_store.root)
    handle = again.run("done")
    handle.log(2, loss=0.5)
    again.close()
    assert sqlite_store.get_run("done").status == "finished"
    assert sqlite_store.get_run("done").last_step == 2


def test_a_finished_run_is_never_ended_again(sqlite_store):
    run = sqlite_store.start_run("f")
    run.finish("failed")
    sqlite_store.heartbeat.end("finished")  # what close() and exit do
    assert sqlite_store.get_run("f").status == "failed"


# --------------------------------------------------------------------------- died


def test_a_killed_run_reads_crashed_from_another_process_and_resumes(store_uri, children, backend):
    uri, root = store_uri
    proc = _start(children, uri, root, "killed", "kill")
    with ckptstore.open_store(uri, root=root) as s:
        assert s.get_run("killed").status == "running"
    _kill(proc)

    # A reader of the same host knows at once; the library, search, and the command line agree.
    with ckptstore.open_store(uri, root=root) as s:
        info = s.get_run("killed")
        assert (info.status, info.last_step, info.ended_at) == ("crashed", 5, None)
        assert [r.name for r in s.runs(status="crashed")] == ["killed"]
        assert s.runs(status="running") == []
        assert [r.name for r in s.runs(where="status = crashed")] == ["killed"]
        assert [r.name for r in s.runs(where="status != running")] == ["killed"]
    if backend == "sqlite":
        assert [(r.name, r.status) for r in quick.list_runs(uri)] == [("killed", "crashed")]
        assert quick.list_runs(uri, status="crashed")[0].name == "killed"
    listed = as_json("runs", "list", store=uri)
    assert [(r["name"], r["status"]) for r in listed] == [("killed", "crashed")]
    assert as_json("runs", "list", "--status", "crashed", store=uri)[0]["name"] == "killed"
    assert as_json("runs", "show", "killed", store=uri)["status"] == "crashed"

    # Starting it again without resume is one line that says what became of it.
    with ckptstore.open_store(uri, root=root) as s, pytest.raises(RunExistsError, match=r"\(crashed\); pass resume=True"):
        s.start_run("killed")

    # Resumed, it is running again with a fresh heartbeat of its new process (this one).
    with ckptstore.open_store(uri, root=root) as s:
        run = s.start_run("killed", resume=True)
        assert s.get_run("killed").status == "running"
        assert as_json("runs", "list", "--status", "running", store=uri)[0]["name"] == "killed"
        run.log(6, loss=0.1)
        run.finish()
        info = s.get_run("killed")
        assert (info.status, info.last_step) == ("finished", 6)


def test_sigterm_without_a_handler_is_a_death_not_an_exit(sqlite_store, children):
    """SIGTERM's default action ends the process without atexit: nothing marks the run, and
    readers see it crashed (ckptstore installs no signal handler of its own)."""
    proc = _start(children, str(sqlite_store.root), sqlite_store.root, "terminated", "kill")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM
    info = sqlite_store.get_run("terminated")
    assert (info.status, info.ended_at) == ("crashed", None)


@pytest.mark.slow
def test_across_hosts_the_heartbeat_alone_tells_live_from_dead(store_uri, children, elsewhere):
    uri, root = store_uri
    proc = _start(children, uri, root, "remote", "live")
    with ckptstore.open_store(uri, root=root) as s:
        time.sleep(3 * 0.6)  # three timeouts: only heartbeats keep it running
        assert s.get_run("remote").status == "running"
        assert s.runs(status="crashed") == []
        _kill(proc)
        assert _status_within(s, "remote", "crashed", 10) == "crashed"
        assert [r.name for r in s.runs(where="status = crashed")] == ["remote"]


def test_a_reader_on_another_host_waits_for_the_heartbeat_timeout(sqlite_store, children, elsewhere):
    uri = str(sqlite_store.root)
    proc = _start(children, uri, sqlite_store.root, "away", "kill")
    _kill(proc)
    # The kill is not known here yet: the last heartbeat is at most one interval old.
    started = time.monotonic()
    assert _status_within(sqlite_store, "away", "crashed", 10) == "crashed"
    assert time.monotonic() - started < 5


def test_a_process_token_names_this_process_and_a_reused_pid_is_not_it():
    token = liveness.process_token()
    host, boot, pidns, pid, start = token.split(" ")
    assert int(pid) == os.getpid() and not liveness.gone_here(token)
    if start != "-":  # /proc tells when the process started: a pid reused later is someone else
        assert liveness.gone_here(" ".join((host, boot, pidns, pid, str(int(start) + 1))))
    assert not liveness.gone_here(" ".join(("some-other-host", boot, pidns, "1", "1")))
    assert not liveness.gone_here("not a token")


# --------------------------------------------------------------------------- settings


def test_heartbeat_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("CKPTSTORE_HEARTBEAT", "0.5")
    monkeypatch.delenv("CKPTSTORE_HEARTBEAT_TIMEOUT", raising=False)
    assert (liveness.interval(), liveness.timeout()) == (0.5, 1.5)
    monkeypatch.setenv("CKPTSTORE_HEARTBEAT_TIMEOUT", "4")
    assert liveness.timeout() == 4.0


@pytest.mark.parametrize("var,value", [("CKPTSTORE_HEARTBEAT", "0"), ("CKPTSTORE_HEARTBEAT", "soon"),
                                       ("CKPTSTORE_HEARTBEAT_TIMEOUT", "5")])
def test_a_bad_heartbeat_setting_is_one_clear_error_before_the_run_starts(sqlite_store, monkeypatch, var, value):
    monkeypatch.setenv("CKPTSTORE_HEARTBEAT", "10")
    monkeypatch.setenv(var, value)
    with pytest.raises(InvalidOptionError, match=var):
        sqlite_store.start_run("never")
    assert sqlite_store.runs() == []


# --------------------------------------------------------------------------- the web view


def test_the_ui_api_reports_a_killed_run_as_crashed_so_the_page_stops_polling(sqlite_store, children):
    """The runs page polls every 2 s only while a listed run is ``running`` (``isLive`` in
    ``static/common.js``): the API must say ``crashed`` for a run whose process died."""
    pytest.importorskip("starlette", reason="ckptstore ui needs starlette (the 'ui' extra)")
    pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    from ckptstore.ui import create_app

    with sqlite_store.start_run("done") as run:
        run.log(1, loss=1.0)
    proc = _start(children, str(sqlite_store.root), sqlite_store.root, "killed", "kill")
    reader = ckptstore.open_store(str(sqlite_store.root), readonly=True)
    try:
        with TestClient(create_app(reader)) as client:
            assert {r["name"]: r["status"] for r in client.get("/api/runs").json()} == {"done": "finished", "killed": "running"}
            _kill(proc)
            assert {r["name"]: r["status"] for r in client.get("/api/runs").json()} == {"done": "finished", "killed": "crashed"}
            assert [r["name"] for r in client.get("/api/runs", params={"status": "crashed"}).json()] == ["killed"]
            assert client.get("/api/run", params={"name": "killed"}).json()["run"]["status"] == "crashed"
            assert client.get("/api/runs", params={"status": "bogus"}).status_code == 400
    finally:
        reader.close()
    common = (Path(ckptstore.__file__).parent / "ui" / "static" / "common.js").read_text()
    assert 'export const isLive = (run) => run.status === "running";' in common
