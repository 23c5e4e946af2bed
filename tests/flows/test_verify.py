"""verify reports every problem in one pass and never stops early."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.helpers.hardening import (
    TMP_SUFFIX,
    as_plain_user,
    one_line,
)
from tests.helpers.processes import child_env, with_deadline
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()

import ckptstore  # noqa: E402
from ckptstore.errors import (  # noqa: E402
    StoreOpenError,
)

# =========================================================================== 9. verify never stops early


def _damaged_store(store, tiny_model):
    """Four checkpoints, and their data files deleted, truncated, flipped and made unreadable;
    plus an unexpected object and a stale staging directory. Returns the unreadable object."""
    from tests.helpers.damage import flip_byte, truncate

    run = store.start_run("r")
    cks = [run.save(tiny_model(float(i)), i) for i in range(1, 6)]
    run.finish()
    data = [next(f for f in ck.files if f.role == "data") for ck in cks]
    assert len({f.digest for f in data}) == 5
    path = [store.files.local_path(f.digest) for f in data]
    path[0].unlink()  # r@1: missing
    truncate(path[1])  # r@2: corrupt
    flip_byte(path[2], 0)  # r@3: corrupt
    os.chmod(path[3], 0o000)  # r@4: unreadable (to a user permission bits bind)
    stray = store.files.objects / "ee" / ("e" * 62)
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"nobody's")
    (store.files.staging_root / f"save-1-999999-0123456789ab{TMP_SUFFIX}").mkdir()
    return path[3]


VERIFY_CHILD = textwrap.dedent(
    """
    import json, sys, ckptstore
    try:
        with ckptstore.open_store(sys.argv[1], create=False) as s:
            r = s.verify()
        print(json.dumps({"ok": r.ok, "problems": [[p.kind, p.checkpoint] for p in r.problems]}))
    except Exception as exc:
        print(json.dumps({"error": type(exc).__name__ + ": " + str(exc)}))
    """
)


@pytest.mark.slow
def test_verify_reports_every_problem_in_one_pass(sqlite_store, tiny_model):
    unreadable = _damaged_store(sqlite_store, tiny_model)
    try:
        found = {(p.kind, p.checkpoint) for p in sqlite_store.verify().problems}
        # As root the 000 file is still readable: every other problem, in one report.
        assert {("missing", "r@1"), ("corrupt", "r@2"), ("corrupt", "r@3")} <= found, found
        assert {k for k, _ in found} >= {"missing", "corrupt", "unexpected", "stale-staging"}, found
        assert ("corrupt", "r@5") not in found and ("missing", "r@5") not in found

        # As a user whom permission bits bind, the unreadable file is one more problem, not the end.
        r = subprocess.run([*as_plain_user(), sys.executable, "-c", with_deadline(VERIFY_CHILD, 170), str(sqlite_store.root)],
                           capture_output=True, text=True, env=child_env(), timeout=180)
        assert r.returncode == 0, r.stderr[-2000:]
        got = json.loads(r.stdout.strip().splitlines()[-1])
        assert "error" not in got, got
        kinds = {tuple(p) for p in got["problems"]}
        assert {("missing", "r@1"), ("corrupt", "r@2"), ("corrupt", "r@3"), ("unreadable", "r@4")} <= kinds, kinds
        assert {k for k, _ in kinds} >= {"missing", "corrupt", "unreadable", "unexpected", "stale-staging"}, kinds
        assert got["ok"] is False
    finally:
        os.chmod(unreadable, 0o444)


def test_a_damaged_database_page_is_reported_or_refused_in_one_line(tmp_path, tiny_model):
    loc = tmp_path / "store"
    with ckptstore.open_store(str(loc)) as s, s.start_run("r", flush_every=10**9) as run:
        for step in range(3000):
            run.log(step, loss=float(step), acc=-float(step))
        run.save(tiny_model(), 3000)
    db = loc / "store.db"
    assert not (loc / "store.db-wal").exists()
    pages = db.stat().st_size // 4096
    assert pages > 20, pages
    with open(db, "r+b") as f:
        f.seek((pages // 2) * 4096)
        f.write(bytes(range(256)) * 16)
    try:
        with ckptstore.open_store(str(loc), create=False) as s:
            report = s.verify()
    except StoreOpenError as exc:
        assert "store.db" in one_line(exc)
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"a damaged database raised {type(exc).__name__}: {exc}")
    assert any(p.kind == "database" for p in report.problems), report.problems
    assert not report.ok
