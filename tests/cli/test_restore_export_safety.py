"""restore and export from the command line: never through a planted symlink, never over a user's file without --force, all or nothing when killed or out of disk."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.hardening import (
    TMP_SUFFIX,
    big_module,
    ckpt,
    cli_command,
    cli_env,
    ok,
    one_line_error,
    read_restored,
    shown,
    temp_leftovers,
    tmpfs,
    tree,
)
from tests.helpers.populated import checkpoint_of, export_of, object_bytes, state_of
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()

import ckptstore  # noqa: E402

W2 = np.full([3, 2], 2.0, np.float32)


# =========================================================================== 4. writes stay inside the target


@pytest.fixture
def around(tmp_path):
    work, outside = tmp_path / "work", tmp_path / "outside"
    work.mkdir()
    outside.mkdir()
    (outside / "victim").write_text("precious\n")
    return work, outside


@pytest.mark.parametrize(
    "which", ["checkpoint", pytest.param("index", marks=pytest.mark.slow), pytest.param("dangling", marks=pytest.mark.slow)]
)
def test_cli_restore_never_follows_a_planted_symlink_and_force_replaces_it(populated, around, which):
    work, outside = around
    ck = checkpoint_of(populated)
    out = work / "out"
    out.mkdir()
    name = {"checkpoint": "checkpoint", "dangling": "checkpoint"}.get(which) or next(f.file_name for f in ck.files if f.role == "index")
    os.symlink(outside / ("not-yet" if which == "dangling" else "victim"), out / name)
    before_out, before_outside, before_store = tree(out), tree(outside), state_of(populated)

    r = ckpt("restore", "r@1", "--to", str(out), store=populated)
    one_line_error(r, name)
    assert tree(out) == before_out and tree(outside) == before_outside and temp_leftovers(work) == []

    r = ckpt("restore", "r@1", "--to", str(out), "--force", store=populated)
    ok(r)
    assert tree(outside) == before_outside
    assert (out / name).is_file() and not (out / name).is_symlink()
    np.testing.assert_array_equal(read_restored(out, "model/w"), W2)
    assert state_of(populated) == before_store and temp_leftovers(work) == []


@pytest.mark.slow
def test_cli_restore_keeps_a_users_checkpoint_state_file_without_force(populated, around):
    work, _ = around
    out = work / "out"
    out.mkdir()
    (out / "checkpoint").write_text('model_checkpoint_path: "my-own-model"\n')
    before = tree(out)
    one_line_error(ckpt("restore", "r@1", "--to", str(out), store=populated), "checkpoint")
    assert tree(out) == before
    ok(ckpt("restore", "r@1", "--to", str(out), "--force", store=populated))
    np.testing.assert_array_equal(read_restored(out, "model/w"), W2)


@pytest.mark.parametrize(
    "which",
    ["symlink-pb", pytest.param("symlink-sidecar", marks=pytest.mark.slow), pytest.param("file-pb", marks=pytest.mark.slow),
     pytest.param("file-sidecar", marks=pytest.mark.slow)],
)
def test_cli_export_never_overwrites_without_force(populated, around, which):
    work, outside = around
    exp = export_of(populated)
    pb = work / "model.pb"
    planted = pb if which.endswith("-pb") else work / "model.pb.json"
    if which.startswith("symlink"):
        os.symlink(outside / "victim", planted)
    else:
        planted.write_text("the user's own\n")
    before_work, before_outside = tree(work), tree(outside)

    one_line_error(ckpt("export", "export:1", "--to", str(pb), store=populated), planted.name)
    assert tree(work) == before_work and tree(outside) == before_outside

    ok(ckpt("export", "export:1", "--to", str(pb), "--force", store=populated))
    assert tree(outside) == before_outside
    assert not pb.is_symlink() and pb.read_bytes() == object_bytes(populated, exp.digest)
    assert json.loads((work / "model.pb.json").read_text())["digest"] == exp.digest
    assert temp_leftovers(work) == []


# =========================================================================== 6. all-or-nothing restore


@pytest.mark.slow
@pytest.mark.parametrize("target_exists", [False, True], ids=["new-target", "existing-target"])
def test_cli_restore_killed_before_the_move_leaves_the_target_as_it_was(populated, tmp_path, target_exists):
    work = tmp_path / "work"
    work.mkdir()
    out = work / "out"
    if target_exists:
        out.mkdir()
        (out / "notes.txt").write_text("the user's\n")
    before_out, before_store = tree(out), state_of(populated)

    r = ckpt("restore", "r@1", "--to", str(out), store=populated, env={"CKPTSTORE_FAULT": "materialized"})
    assert r.returncode == -signal.SIGKILL, shown(r)
    assert tree(out) == before_out
    left = temp_leftovers(work)
    assert len(left) == 1 and left[0].startswith(".out."), os.listdir(work)
    assert state_of(populated) == before_store

    ok(ckpt("restore", "r@1", "--to", str(out), store=populated))
    np.testing.assert_array_equal(read_restored(out, "model/w"), W2)
    if target_exists:
        assert (out / "notes.txt").read_text() == "the user's\n"


def _wait_for_temp_dir(parent: Path, proc: subprocess.Popen, limit: float) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end and proc.poll() is None:
        if any(n.endswith(TMP_SUFFIX) for n in os.listdir(parent)):
            return True
        time.sleep(0.0005)
    return False


@pytest.mark.slow
def test_ctrl_c_during_restore_leaves_the_target_complete_or_absent(tmp_path, children):
    loc = tmp_path / "store"
    n = 8 * 1024 * 1024  # 32 MiB: the copy takes a while
    with ckptstore.open_store(str(loc)) as s, s.start_run("big") as run:
        run.save(big_module(n, 3.0), 1)
    rng = random.Random(16)
    outcomes = []
    for i in range(4):
        work = tmp_path / f"work{i}"
        work.mkdir()
        out = work / "out"
        proc = children.popen(cli_command("restore", "big@1", "--to", str(out), store=loc), env=cli_env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if i % 2 == 0:
            # Half the time, once the restore is writing: a few milliseconds into the copy.
            started = _wait_for_temp_dir(work, proc, 60)
            time.sleep(rng.uniform(0, 0.02))
        else:
            started = None
            time.sleep(rng.uniform(0.3, 2.5))  # any moment: start-up, opening, copying
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
        outcomes.append((i, started, proc.returncode))
        if out.exists():
            # Complete: vanilla TensorFlow reads every value.
            w = read_restored(out, "model/w")
            assert w is not None and w.shape == (n,) and bool(np.all(w == 3.0)), (i, proc.returncode, stderr[-500:])
        assert not [n_ for n_ in os.listdir(work) if n_ != "out" and not n_.endswith(TMP_SUFFIX)], os.listdir(work)
        # The retry works, whatever was left.
        ok(ckpt("restore", "big@1", "--to", str(out), store=loc))
        w = read_restored(out, "model/w")
        assert w.shape == (n,) and bool(np.all(w == 3.0))
        if started:
            assert "Traceback" not in stderr, stderr[-2000:]
    assert any(rc != 0 for _, _, rc in outcomes), f"no interrupt landed during a restore: {outcomes}"


def test_cli_restore_into_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    loc = tmp_path / "store"
    with ckptstore.open_store(str(loc)) as s, s.start_run("big") as run:
        run.save(big_module(64 * 1024, 1.0), 1)  # 256 KiB
    with tmpfs(tmp_path / "small", "64k") as mnt:
        line = one_line_error(ckpt("restore", "big@1", "--to", str(mnt / "out"), store=loc))
        assert "space" in line and str(mnt) in line, line
        assert os.listdir(mnt) == []
