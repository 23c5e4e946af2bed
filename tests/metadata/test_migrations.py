"""Schema versions: the Alembic revisions against the models, on SQLite and PostgreSQL.

How an "older store" is simulated: a test copies the migration environment, adds a revision
0099 after the real head (one small table) and points ``ckptstore.metadata.versions`` at the copy with
``HEAD_REVISION = "0099"``. A store created by the real code at its head is then, honestly, older
than the code that opens it, and the real upgrade path (lock, backup, ``alembic upgrade``) runs.

States of the version table and what opening does with them:

* no tables at all, or only an empty ``alembic_version`` (what ``downgrade base`` leaves):
  an empty database, created at head;
* ``alembic_version`` empty but other tables present: refused (StoreOpenError), since guessing
  a revision could corrupt data;
* a revision this code does not know (e.g. ``9999``): refused with SchemaTooNewError, untouched.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

import ckptstore
from ckptstore.errors import CkptstoreError, SchemaTooNewError, StoreOpenError
from ckptstore.metadata import schema
from ckptstore.metadata import versions as db
from ckptstore.metadata.engine import make_engine
from tests.helpers.processes import ROOT, with_deadline

HEAD = db.HEAD_REVISION  # the real head, before any test pretends otherwise


def _engine_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    return request.getfixturevalue("pg_server").new_database()


def _schema_diff(engine) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
        return compare_metadata(ctx, schema.metadata)


# --------------------------------------------------------------------------- round trip


def test_upgrade_head_on_an_empty_database_matches_the_models(backend, tmp_path, request):
    engine = make_engine(_engine_url(backend, tmp_path, request))
    try:
        db.run_upgrade(engine, "head")
        assert db.current_revision(engine) == db.HEAD_REVISION
        assert _schema_diff(engine) == []
        tables = set(inspect(engine).get_table_names())
        assert tables == set(schema.metadata.tables) | {"alembic_version"}
    finally:
        engine.dispose()


def test_downgrade_base_drops_every_table_and_upgrade_works_again(backend, tmp_path, request):
    engine = make_engine(_engine_url(backend, tmp_path, request))
    try:
        db.run_upgrade(engine, "head")
        db.run_downgrade(engine, "base")
        # Alembic keeps its (now empty) version table; nothing of ours is left.
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        assert db.current_revision(engine) is None
        db.run_upgrade(engine, "head")
        assert _schema_diff(engine) == []
    finally:
        engine.dispose()


def test_head_revision_constant_is_the_script_head():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(db.migrations_dir()))
    assert ScriptDirectory.from_config(cfg).get_heads() == [db.HEAD_REVISION]
    assert db.history()[-1][0] == db.HEAD_REVISION
    assert db.history()[0][1] is None  # the chain starts at base


def test_the_history_read_from_the_scripts_is_alembics(tmp_path, monkeypatch):
    """``db history`` reads the scripts without Alembic (metadata/revisions.py): the same
    revisions, order and messages as Alembic's own walk, and a broken chain is refused."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from ckptstore.metadata import revisions

    cfg = Config()
    cfg.set_main_option("script_location", str(db.migrations_dir()))
    walked = list(ScriptDirectory.from_config(cfg).walk_revisions())[::-1]
    assert revisions.history() == [(r.revision, r.down_revision, r.doc.strip()) for r in walked]

    # A second script on the same down_revision (a branch) is not a history to print.
    copy = tmp_path / "migrations"
    shutil.copytree(db.migrations_dir(), copy)
    last = sorted((copy / "versions").glob("0*.py"))[-1]
    text_ = last.read_text().replace(f"revision = '{db.HEAD_REVISION}'", "revision = 'zzzz'")
    (copy / "versions" / "9999_branch.py").write_text(text_)
    monkeypatch.setattr(revisions, "migrations_dir", lambda: copy)
    with pytest.raises(RuntimeError, match="branch"):
        revisions.history()


def test_a_database_downgraded_to_base_opens_as_a_new_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    db.run_upgrade(engine, "head")
    db.run_downgrade(engine, "base")
    engine.dispose()
    with ckptstore.open_store(url) as s:
        assert s.revision == db.HEAD_REVISION
        assert s.runs() == []


def test_0007_heartbeats_keep_every_run_and_metric_both_ways(backend, tmp_path, request):
    """Revision 0007 only adds (and its downgrade only drops) columns of ``runs``: no run, metric or
    checkpoint is lost, and a run left running before the upgrade still reads running (no
    heartbeat says it died)."""
    url = _engine_url(backend, tmp_path, request)
    engine = make_engine(url)
    try:
        db.run_upgrade(engine, "0006")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO runs (name, status, params, created_at) VALUES ('old', 'running', '{}', :t)"
            ), {"t": schema.utcnow()})
            rid = conn.execute(text("SELECT id FROM runs WHERE name = 'old'")).scalar_one()
            conn.execute(text("INSERT INTO metrics (run_id, step, key, value, wall_time) VALUES (:r, 3, 'loss', 0.5, 0)"), {"r": rid})
        db.run_upgrade(engine, "head")
        cols = {c["name"] for c in inspect(engine).get_columns("runs")}
        assert {"heartbeat_at", "heartbeat_timeout", "process"} <= cols
        with ckptstore.open_store(url, root=tmp_path / "files") as s:
            assert s.get_run("old").status == "running"
            assert s.runs(status="crashed") == []
        db.run_downgrade(engine, "0006")
        assert not {"heartbeat_at", "heartbeat_timeout", "process"} & {c["name"] for c in inspect(engine).get_columns("runs")}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT step, value FROM metrics")).all() == [(3, 0.5)]
            assert conn.execute(text("SELECT name, status FROM runs")).all() == [("old", "running")]
    finally:
        engine.dispose()


def test_0008_renames_alias_actions_and_rebuilds_checkpoints_without_losing_a_row(backend, tmp_path, request):
    """Revision 0008 rebuilds ``checkpoints`` (SQLite batch mode): with foreign keys on, that
    DROP would cascade into every checkpoint's files, so migrations run with them off and are
    checked before the commit. The alias history's actions become set/move/remove (one word),
    and a format the registry adds can be recorded; the downgrade restores both."""
    url = _engine_url(backend, tmp_path, request)
    engine = make_engine(url)
    digest = "ab" * 32
    try:
        db.run_upgrade(engine, "0007")
        with engine.begin() as conn:
            t = {"t": schema.utcnow()}
            conn.execute(text("INSERT INTO runs (name, status, params, created_at) VALUES ('r', 'finished', '{}', :t)"), t)
            conn.execute(text("INSERT INTO blobs (digest, size, created_at) VALUES (:d, 3, :t)"), {**t, "d": digest})
            conn.execute(text(
                "INSERT INTO checkpoints (run_id, step, format, state, prefix, total_bytes, created_at) "
                "SELECT id, 5, 'tf2-checkpoint', 'committed', 'ckpt-5', 3, :t FROM runs"
            ), t)
            conn.execute(text(
                "INSERT INTO checkpoint_files (checkpoint_id, role, file_name, size, digest) "
                "SELECT id, 'index', 'ckpt-5.index', 3, :d FROM checkpoints"
            ), {"d": digest})
            conn.execute(text("INSERT INTO aliases (name, checkpoint_id, updated_at) SELECT 'prod', id, :t FROM checkpoints"), t)
            for action, old, new in (("tag", None, "r@5"), ("untag", "r@5", None), ("tag", None, "r@5")):
                conn.execute(text(
                    "INSERT INTO alias_events (alias_name, action, old_target, new_target, at) VALUES ('prod', :a, :o, :n, :t)"
                ), {**t, "a": action, "o": old, "n": new})

        def rows() -> tuple[list, list, list]:
            with engine.connect() as conn:
                return (
                    conn.execute(text("SELECT action FROM alias_events ORDER BY id")).scalars().all(),
                    conn.execute(text("SELECT step, prefix FROM checkpoints")).all(),
                    conn.execute(text("SELECT file_name, digest FROM checkpoint_files")).all(),
                )

        db.run_upgrade(engine, "head")
        actions, checkpoints, files = rows()
        assert actions == ["set", "remove", "set"]
        assert checkpoints == [(5, "ckpt-5")] and files == [("ckpt-5.index", digest)]
        assert _schema_diff(engine) == []
        with ckptstore.open_store(url, root=tmp_path / "files") as s:
            assert [e.action for e in s.aliases("prod")[0].history] == ["set", "remove", "set"]
            assert s.checkpoints("r")[0].step == 5
        with engine.begin() as conn:  # a registered format's name is accepted now; an empty one is not
            conn.execute(text("UPDATE checkpoints SET format = 'my-format'"))
            conn.execute(text("UPDATE checkpoints SET format = 'tf2-checkpoint'"))
        with pytest.raises(Exception, match="(?i)check"), engine.begin() as conn:
            conn.execute(text("UPDATE checkpoints SET format = ''"))
        db.run_downgrade(engine, "0007")
        actions, checkpoints, files = rows()
        assert actions == ["tag", "untag", "tag"]
        assert checkpoints == [(5, "ckpt-5")] and files == [("ckpt-5.index", digest)]
        if backend == "sqlite":
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on for what follows
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- opening stores


def test_opening_a_new_store_creates_it_at_head(store_uri):
    uri, root = store_uri
    with ckptstore.open_store(uri, root=root) as s:
        assert s.revision == db.HEAD_REVISION
        assert db.current_revision(s.engine) == db.HEAD_REVISION
        assert _schema_diff(s.engine) == []


def test_reopening_a_store_at_head_makes_no_backup(tmp_path):
    with ckptstore.open_store(tmp_path / "s") as s:
        with s.start_run("a") as run:
            run.log(1, loss=1.0)
    with ckptstore.open_store(tmp_path / "s") as s:
        assert [r.name for r in s.runs()] == ["a"]
    assert list((tmp_path / "s").glob("store.db.backup-*")) == []


_REV_0002 = '''\
"""Test-only revision: a small extra table, so a store at the real head is older than the code."""
from alembic import op
import sqlalchemy as sa

revision = "0099"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("upgrade_probe", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("upgrade_probe")
'''


@pytest.fixture
def code_with_revision_0002(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make ``ckptstore.metadata.versions`` believe its head is 0099 (after the real head), with a real migration to get there."""
    scripts = tmp_path / "migrations-0002"
    shutil.copytree(db.migrations_dir(), scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "0099_upgrade_probe.py").write_text(_REV_0002.replace("{head}", HEAD))
    monkeypatch.setattr(db, "migrations_dir", lambda: scripts)
    monkeypatch.setattr(db, "HEAD_REVISION", "0099")
    return scripts


def test_an_older_sqlite_store_is_backed_up_then_upgraded(tmp_path, monkeypatch, request):
    loc = tmp_path / "old"
    with ckptstore.open_store(loc) as s:  # written by the real code, at its head
        with s.start_run("before-upgrade", params={"lr": 0.1}) as run:
            run.log(5, loss=0.25)
    assert db.HEAD_REVISION == HEAD

    request.getfixturevalue("code_with_revision_0002")
    with ckptstore.open_store(loc) as s:
        assert s.revision == "0099"
        assert db.current_revision(s.engine) == "0099"
        assert "upgrade_probe" in inspect(s.engine).get_table_names()
        assert s.get_run("before-upgrade").params == {"lr": 0.1}
        assert s.steps("before-upgrade")[0].metrics == {"loss": 0.25}

    backups = list(loc.glob(f"store.db.backup-{HEAD}-*"))
    assert len(backups) == 1, list(loc.iterdir())
    bk = sqlite3.connect(backups[0])
    try:
        assert bk.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one self-contained file
        assert bk.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
        assert bk.execute("SELECT name FROM runs").fetchall() == [("before-upgrade",)]
        assert bk.execute("SELECT value FROM metrics").fetchall() == [(0.25,)]
    finally:
        bk.close()

    # A second open finds the store at head: no second backup.
    with ckptstore.open_store(loc) as s:
        assert s.revision == "0099"
    assert len(list(loc.glob("store.db.backup-*"))) == 1


def test_an_older_postgres_store_is_upgraded(pg_server, tmp_path, request):
    url = pg_server.new_database()
    with ckptstore.open_store(url, root=tmp_path / "f") as s:
        with s.start_run("pg-old") as run:
            run.log(1, acc=0.5)
    request.getfixturevalue("code_with_revision_0002")
    with ckptstore.open_store(url, root=tmp_path / "f") as s:
        assert db.current_revision(s.engine) == "0099"
        assert s.steps("pg-old")[0].metrics == {"acc": 0.5}


def test_open_without_upgrade_refuses_an_older_store(tmp_path, request):
    loc = tmp_path / "old"
    ckptstore.open_store(loc).close()
    request.getfixturevalue("code_with_revision_0002")
    engine = make_engine(f"sqlite:///{loc / 'store.db'}")
    try:
        with pytest.raises(StoreOpenError, match=f"{HEAD}.*ckptstore db upgrade"):
            db.ensure_schema(engine, upgrade=False)
        assert db.current_revision(engine) == HEAD
    finally:
        engine.dispose()


def test_a_store_from_a_newer_ckptstore_is_refused_and_left_untouched(store_uri):
    uri, root = store_uri
    with ckptstore.open_store(uri, root=root) as s:
        with s.start_run("future") as run:
            run.log(3, loss=0.5)
        with s.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
        engine_url = s.url
    db_file = Path(uri) / "store.db" if "://" not in uri else None
    before = db_file.read_bytes() if db_file else None

    for create in (True, False):
        with pytest.raises(SchemaTooNewError) as err:
            ckptstore.open_store(uri, root=root, create=create)
        msg = str(err.value)
        assert "9999_from_the_future" in msg and "newer" in msg and db.HEAD_REVISION in msg
        assert "upgrade ckptstore" in msg and "\n" not in msg
    if db_file:
        assert db_file.read_bytes() == before

    engine = make_engine(engine_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "9999_from_the_future"
            assert conn.execute(text("SELECT name FROM runs")).scalars().all() == ["future"]
            assert conn.execute(text("SELECT step, key, value FROM metrics")).all() == [(3, "loss", 0.5)]
        with engine.begin() as conn:  # the code's own revision again: the store opens as before
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": db.HEAD_REVISION})
    finally:
        engine.dispose()
    if db_file:
        assert not list(db_file.parent.glob("store.db.backup-*"))  # no "upgrade" was attempted
    with ckptstore.open_store(uri, root=root) as s:
        assert s.steps("future")[0].metrics == {"loss": 0.5}


def test_emptied_version_table_over_existing_tables_is_refused(tmp_path):
    loc = tmp_path / "s"
    with ckptstore.open_store(loc) as s:
        with s.start_run("keep-me") as run:
            run.log(1, x=1.0)
    with sqlite3.connect(loc / "store.db") as c:
        c.execute("DELETE FROM alembic_version")
    with pytest.raises(StoreOpenError, match="schema version is missing"):
        ckptstore.open_store(loc)
    with sqlite3.connect(loc / "store.db") as c:
        assert c.execute("SELECT name FROM runs").fetchall() == [("keep-me",)]


def test_a_database_with_foreign_tables_is_not_taken_for_a_store(backend, tmp_path, request):
    if backend == "sqlite":
        (tmp_path / "s").mkdir()
        uri, url = str(tmp_path / "s"), f"sqlite:///{tmp_path / 's' / 'store.db'}"
    else:
        uri = url = request.getfixturevalue("pg_server").new_database()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE other_app (x INTEGER)"))
    try:
        with pytest.raises(StoreOpenError, match="not a ckptstore store"):
            ckptstore.open_store(uri, root=tmp_path / "files")
        assert inspect(engine).get_table_names() == ["other_app"]  # left as it was
    finally:
        engine.dispose()


def test_open_with_create_false_refuses_a_missing_store(tmp_path):
    with pytest.raises(StoreOpenError, match="no store"):
        ckptstore.open_store(tmp_path / "nothing-here", create=False)
    assert not (tmp_path / "nothing-here").exists()


@pytest.mark.slow
def test_two_processes_opening_a_new_sqlite_store_at_once_both_succeed(tmp_path, children):
    loc = tmp_path / "race"
    code = "import sys, ckptstore; s = ckptstore.open_store(sys.argv[1]); print(s.revision); s.close()"
    procs = [children.python(code, str(loc)) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.strip() == db.HEAD_REVISION


# --------------------------------------------------------------------------- packaging


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Build from a copy: the shared work tree is not littered with build/ and egg-info.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    for pkg in ("ckptstore", "migrations"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "-w", str(out), "--no-deps",
         "--no-build-isolation", "-q"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = out.glob("ckptstore-*.whl")
    return wheel


@pytest.mark.slow
def test_the_wheel_ships_the_migration_environment(built_wheel):
    names = zipfile.ZipFile(built_wheel).namelist()
    assert "ckptstore/migrations/env.py" in names
    assert "ckptstore/migrations/script.py.mako" in names
    assert any(n.startswith("ckptstore/migrations/versions/0001_") and n.endswith(".py") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "ckptstore = ckptstore.cli:main" in zipfile.ZipFile(built_wheel).read(entry_points).decode()


@pytest.mark.slow
def test_a_non_editable_install_creates_and_migrates_a_store(built_wheel, tmp_path):
    site = tmp_path / "site"
    # A real, non-editable pip install of the wheel (dependencies are the test venv's own).
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(site), str(built_wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    code = textwrap.dedent(
        """
        import sys, ckptstore
        from ckptstore.metadata import versions as db
        assert ckptstore.__file__.startswith(sys.argv[2]), ckptstore.__file__
        assert str(db.migrations_dir()).startswith(sys.argv[2]), db.migrations_dir()
        with ckptstore.open_store(sys.argv[1]) as s:
            with s.start_run("installed") as run:
                run.log(1, loss=0.5)
            print(s.revision, s.steps("installed")[0].metrics["loss"])
        """
    )
    # Run from an unrelated directory so the source checkout cannot be imported by accident.
    out = subprocess.run(
        [sys.executable, "-c", with_deadline(code, 130), str(tmp_path / "store"), str(site)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [db.HEAD_REVISION, "0.5"]
    # The console script pip wrote works on that store too.
    cli = subprocess.run(
        [str(site / "bin" / "ckptstore"), "--store", str(tmp_path / "store"), "db", "current"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.split()[0] == db.HEAD_REVISION


def test_every_library_error_here_is_a_ckptstore_error():
    assert issubclass(SchemaTooNewError, StoreOpenError)
    assert issubclass(StoreOpenError, CkptstoreError)


# --------------------------------------------------------------------------- constraints the database enforces


def _refused(store, sql: str, params: dict | None = None) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        with store.write() as conn:
            conn.execute(text(sql), params or {})


def _count(store, table: str) -> int:
    with store.read() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_the_database_refuses_negative_steps_duplicates_and_bad_states(store):
    with store.start_run("r") as run:
        run.log(1, loss=1.0)
    rid = store.get_run("r").id
    now = "2026-01-01 00:00:00+00:00"
    _refused(store, "INSERT INTO metrics (run_id, step, key, value, wall_time) VALUES (:r, -1, 'x', 1.0, 0)", {"r": rid})
    _refused(store, "INSERT INTO runs (name, status, params, created_at) VALUES ('r', 'running', '{}', :t)", {"t": now})
    _refused(store, "INSERT INTO runs (name, status, params, created_at) VALUES ('s', 'paused', '{}', :t)", {"t": now})
    _refused(store, "INSERT INTO metrics (run_id, step, key, value, wall_time) VALUES (999999, 1, 'x', 1.0, 0)")
    ck = ("INSERT INTO checkpoints (run_id, step, format, state, prefix, total_bytes, created_at) "
          "VALUES (:r, :s, :f, 'committed', 'p', 0, :t)")
    _refused(store, ck, {"r": rid, "s": -5, "f": "tf1-saver", "t": now})
    _refused(store, ck, {"r": rid, "s": 5, "f": "", "t": now})  # any registered format's name, not none
    with store.write() as conn:
        conn.execute(text(ck), {"r": rid, "s": 5, "f": "tf1-saver", "t": now})
    _refused(store, ck, {"r": rid, "s": 5, "f": "tf2-checkpoint", "t": now})  # one per (run, step)
    # An alias names exactly one target.
    _refused(store, "INSERT INTO aliases (name, checkpoint_id, export_id, updated_at) VALUES ('a', NULL, NULL, :t)", {"t": now})


def test_deleting_a_run_row_cascades_and_an_alias_pins_its_checkpoint(store):
    with store.start_run("r", tags={"k": "v"}) as run:
        run.log(1, loss=1.0)
    rid = store.get_run("r").id
    now = "2026-01-01 00:00:00+00:00"
    with store.write() as conn:
        conn.execute(
            text("INSERT INTO checkpoints (run_id, step, format, state, prefix, total_bytes, created_at) "
                 "VALUES (:r, 1, 'tf1-saver', 'committed', 'p', 0, :t)"), {"r": rid, "t": now})
        cid = conn.execute(text("SELECT id FROM checkpoints")).scalar_one()
        conn.execute(text("INSERT INTO aliases (name, checkpoint_id, updated_at) VALUES ('prod', :c, :t)"), {"c": cid, "t": now})
    # RESTRICT: the aliased checkpoint (and so its run) cannot go.
    _refused(store, "DELETE FROM checkpoints WHERE id = :c", {"c": cid})
    _refused(store, "DELETE FROM runs WHERE id = :r", {"r": rid})
    with store.write() as conn:
        conn.execute(text("DELETE FROM aliases"))
        conn.execute(text("DELETE FROM runs WHERE id = :r"), {"r": rid})
    for table in ("metrics", "run_tags", "checkpoints"):
        assert _count(store, table) == 0, table
