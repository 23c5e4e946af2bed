"""Command-line failures are one line naming what and where, exit non-zero, and change nothing."""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers.hardening import (
    HUGE_TEXT,
    TMP_SUFFIX,
    as_plain_user,
    ckpt,
    ckpt_many,
    one_line_error,
    shown,
    tree,
)
from tests.helpers.populated import state_of
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()

import ckptstore  # noqa: E402

# =========================================================================== 7. one line for every failure


@pytest.mark.slow
def test_cli_permission_denied_is_one_line_naming_the_place(populated, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    before = tree(ro)
    try:
        prefix = as_plain_user()
        for args in (("restore", "r@1", "--to", str(ro / "out")), ("export", "export:1", "--to", str(ro / "model.pb"))):
            r = ckpt(*args, store=populated, prefix=prefix)
            line = one_line_error(r, str(ro))
            assert "permission denied" in line.lower(), line
        assert tree(ro) == before
    finally:
        os.chmod(ro, 0o755)


@pytest.mark.slow
def test_cli_numbers_out_of_range_are_one_line_and_change_nothing(populated, tmp_path, new_seed_graph):
    src = tmp_path / "saver"
    src.mkdir()
    g, sess, _ = new_seed_graph()
    with g.as_default():
        tf.compat.v1.train.Saver().save(sess, str(src / "model.ckpt"), global_step=7)
    for p in list(src.glob("model.ckpt-7.*")):
        p.rename(src / p.name.replace("model.ckpt-7", f"model.ckpt-{HUGE_TEXT}"))
    (src / "checkpoint").write_text(f'model_checkpoint_path: "model.ckpt-{HUGE_TEXT}"\n')
    before, before_tree = state_of(populated), tree(tmp_path / "saver")
    calls = [
        (("steps", "r", "--from", HUGE_TEXT), 2),
        (("steps", "r", "--to", HUGE_TEXT), 2),
        (("at", HUGE_TEXT), 2),
        (("vars", f"r@{HUGE_TEXT}"), 1),
        (("restore", f"r@{HUGE_TEXT}", "--to", str(tmp_path / "out")), 1),
        (("export", f"export:{HUGE_TEXT}", "--to", str(tmp_path / "x.pb")), 1),
        (("alias", "v", f"r@{HUGE_TEXT}"), 1),
        (("import", str(src), "--run", "imported"), 1),
    ]
    results = ckpt_many([(args, {"store": populated}) for args, _ in calls])
    for (_, code), r in zip(calls, results):
        one_line_error(r, codes=(code,))
    assert state_of(populated) == before  # no run "imported", no objects
    assert tree(src) == before_tree
    assert not (tmp_path / "out").exists() and not (tmp_path / "x.pb").exists()


# =========================================================================== 9. verify never stops early


@pytest.mark.slow
def test_cli_verify_json_reports_every_problem(populated, tiny_model):
    from tests.helpers.damage import flip_byte, truncate

    with ckptstore.open_store(str(populated), create=False) as s:
        run = s.run("r")
        cks = [run.save(tiny_model(float(i)), i) for i in range(10, 15)]
        data = [s.files.local_path(next(f for f in c.files if f.role == "data").digest) for c in cks]
    data[0].unlink()
    truncate(data[1])
    flip_byte(data[2], 0)
    os.chmod(data[3], 0o000)
    (populated / "objects" / "ee").mkdir(exist_ok=True)
    (populated / "objects" / "ee" / ("e" * 62)).write_bytes(b"nobody's")
    (populated / "staging" / f"save-1-999999-0123456789ab{TMP_SUFFIX}").mkdir()
    try:
        r = ckpt("verify", "--json", store=populated, prefix=as_plain_user())
        assert r.returncode == 1, shown(r)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, shown(r)
        report = json.loads(r.stdout)
        found = {(p["kind"], p.get("checkpoint")) for p in report["problems"]}
        assert {("missing", "r@10"), ("corrupt", "r@11"), ("corrupt", "r@12"), ("unreadable", "r@13")} <= found, found
        assert {k for k, _ in found} >= {"missing", "corrupt", "unreadable", "unexpected", "stale-staging"}, found
        assert report["ok"] is False
        assert not any(c == "r@14" for _, c in found)
    finally:
        os.chmod(data[3], 0o444)


@pytest.mark.slow
def test_cli_verify_of_a_damaged_database_is_reported_without_a_traceback(tmp_path, tiny_model):
    loc = tmp_path / "store"
    with ckptstore.open_store(str(loc)) as s, s.start_run("r", flush_every=10**9) as run:
        for step in range(3000):
            run.log(step, loss=float(step), acc=-float(step))
        run.save(tiny_model(), 3000)
    db = loc / "store.db"
    pages = db.stat().st_size // 4096
    with open(db, "r+b") as f:
        f.seek((pages // 2) * 4096)
        f.write(bytes(range(256)) * 16)
    r = ckpt("verify", "--json", store=loc)
    assert r.returncode == 1, shown(r)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, shown(r)
    if r.stdout.strip():
        report = json.loads(r.stdout)
        assert any(p["kind"] == "database" for p in report["problems"]), report
    else:
        assert "store.db" in r.stderr, r.stderr


# =========================================================================== 13. errors name the store


@pytest.mark.slow
def test_cli_errors_about_missing_things_name_the_store(populated, tmp_path):
    where = str(populated.resolve())
    calls = [
        ("runs", "show", "nope"),
        ("restore", "nope@1", "--to", "x"),
        ("alias", "v", "nope@1"),
        ("aliases", "nope"),
        ("restore", "nosuchalias", "--to", "x"),
        ("vars", "r@99"),
    ]
    before = state_of(populated)
    results = ckpt_many([(args, {"store": "store", "cwd": tmp_path}) for args in calls])
    for r in results:
        one_line_error(r, where)
    assert not (tmp_path / "x").exists()
    assert state_of(populated) == before
