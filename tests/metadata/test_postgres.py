"""PostgreSQL-specific behaviour: the psycopg 3 URL, a file root apart from the database,
two processes creating the schema at once (advisory lock), and the server fixture itself.

Everything that must hold on both databases runs through the ``store`` fixture in the other
test modules; migrations up and down on both live in ``test_migrations.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import ckptstore
from ckptstore.constants import HEAD_REVISION
from ckptstore.errors import StoreConfigError, StoreOpenError
from tests.helpers.processes import ROOT, child_env, run_py


def test_the_fixture_server_speaks_psycopg3(pg_server):
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 port={pg_server.port} user=postgres dbname=postgres") as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    assert int(version.split(".")[0]) >= 15


def test_each_test_gets_an_empty_database(pg_server):
    a, b = pg_server.new_database(), pg_server.new_database()
    assert a != b
    s = ckptstore.open_store(a, root="/nonexistent-root-is-not-touched-by-metadata")
    try:
        assert s.dialect == "postgresql"
        assert s.runs() == []
    finally:
        s.close()


def test_postgres_url_with_a_separate_file_root(pg_server, tmp_path):
    url = pg_server.new_database()
    root = tmp_path / "files"
    with ckptstore.open_store(url, root=root) as s:
        with s.start_run("pg") as run:
            run.log(1, loss=0.5)
        assert s.root == root
        assert s.get_run("pg").status == "finished"
    with ckptstore.open_store(url, root=root, create=False) as s:
        assert [r.name for r in s.runs()] == ["pg"]
        assert s.steps("pg")[0].metrics == {"loss": 0.5}


@pytest.mark.slow
def test_postgres_url_and_root_from_the_environment(pg_server, tmp_path):
    url = pg_server.new_database()
    out = run_py(
        "import ckptstore; s = ckptstore.open_store(); print(s.dialect, s.root)",
        env={"CKPTSTORE_URI": url, "CKPTSTORE_ROOT": str(tmp_path / "r")},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["postgresql", str(tmp_path / "r")]


def test_postgres_store_without_a_root_refuses_file_operations(pg_server):
    env_root = os.environ.pop("CKPTSTORE_ROOT", None)
    try:
        with ckptstore.open_store(pg_server.new_database()) as s:
            s.start_run("meta-only").log(1, x=1.0)
            with pytest.raises(StoreConfigError, match="file root"):
                s.files  # noqa: B018 - the property raises
    finally:
        if env_root is not None:
            os.environ["CKPTSTORE_ROOT"] = env_root


def test_unreachable_server_is_a_clear_open_error():
    # Port 1 on loopback: nothing listens there.
    with pytest.raises(StoreOpenError, match="cannot open"):
        ckptstore.open_store("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", root="/tmp/x")


def test_unknown_database_is_a_clear_open_error(pg_server):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{pg_server.port}/no_such_db"
    with pytest.raises(StoreOpenError, match="no_such_db"):
        ckptstore.open_store(url, root="/tmp/x")


CREATE_SCHEMA = textwrap.dedent(
    """
    import sys, time, ckptstore
    url, root, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    while time.time() < start:   # both processes reach open_store at the same moment
        time.sleep(0.001)
    s = ckptstore.open_store(url, root=root)
    with s.start_run("shared", resume=True, overwrite=True) as run:  # two writers, one run
        run.log(int(sys.argv[4]), x=1.0)
    print(s.revision)
    s.close()
    """
)


@pytest.mark.slow
def test_two_processes_create_the_schema_at_once(pg_server, tmp_path, children):
    """The advisory lock serialises the first upgrade: neither process sees a half-made schema."""
    for _ in range(2):  # a race that passes once by luck should not pass twice
        url = pg_server.new_database()
        start = time.time() + 1.2
        procs = [children.python(CREATE_SCHEMA, url, str(tmp_path / "files"), str(start), str(i)) for i in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, err
            assert out.strip() == HEAD_REVISION
        with ckptstore.open_store(url, root=tmp_path / "files") as s:
            assert [r.name for r in s.runs()] == ["shared"]
            assert [st.step for st in s.steps("shared")] == [0, 1]


@pytest.mark.slow
def test_ci_fails_rather_than_skips_without_postgres(tmp_path):
    """In CI a machine without PostgreSQL must fail the suite, never skip it silently."""
    conftest = Path(__file__).resolve().parents[1] / "conftest.py"
    probe = tmp_path / "test_probe.py"
    probe.write_text("def test_needs_pg(pg_server):\n    pass\n")
    (tmp_path / "conftest.py").write_text(conftest.read_text())
    # The copied conftest imports tests.helpers from this checkout.
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = child_env({"CI": "true", "CKPTSTORE_PG_BINDIR": "/nonexistent", "PYTHONPATH": pythonpath})
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert out.returncode != 0, out.stdout
    assert "1 error" in out.stdout or "1 failed" in out.stdout, out.stdout
    env.pop("CI")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert out.returncode == 0 and "1 skipped" in out.stdout, out.stdout


def test_a_read_is_one_snapshot_while_another_process_writes(pg_server, tmp_path):
    """``store.read()`` promises one snapshot: on PostgreSQL's default READ COMMITTED each
    statement would see runs committed since the last one (get_run once saw a run by id that
    its own listing a statement earlier had not: IndexError in a two-process start)."""
    import psycopg

    url = pg_server.new_database()
    with ckptstore.open_store(url, root=tmp_path / "files") as s:
        s.start_run("first").finish()
        with s.read() as conn:
            from ckptstore.metadata import queries as Q

            before = [r.name for r in Q.runs(conn)]
            dsn = url.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(dsn, autocommit=True) as other:  # another process's commit
                other.execute("INSERT INTO runs (name, status, params, created_at) "
                              "SELECT 'second', status, params, created_at FROM runs WHERE name = 'first'")
            assert [r.name for r in Q.runs(conn)] == before == ["first"]
            with pytest.raises(ckptstore.errors.UnknownRunError):
                Q.run_id(conn, "second")
        assert sorted(r.name for r in s.runs()) == ["first", "second"]
        assert s.get_run("second").name == "second"
