"""Shared fixtures: stores on SQLite and on a real, throwaway PostgreSQL server, the tiny
TensorFlow models, and child processes that cannot outlive their test.

``store_uri`` / ``store`` are parametrized over both databases, so every store test runs twice.
The PostgreSQL cluster is created once per test session (:mod:`tests.helpers.postgres`) and
each test gets a database of its own. Without ``initdb`` on PATH the PostgreSQL cases are
skipped, except in CI (``CI=true``), where a missing server is a failure. TensorFlow is the
same: :func:`tests.helpers.skips.require_tensorflow` skips without it, and fails in CI.

Tiers: ``make test-fast`` runs ``pytest -m "not slow"``; tests of more than a couple of seconds
(crashes, many processes, packaging, the PostgreSQL half of ``backend``) carry
``@pytest.mark.slow``.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.postgres import PgServer, have_postgres
from tests.helpers.processes import ChildProcesses
from tests.helpers.skips import in_ci, require_tensorflow

# --------------------------------------------------------------------------- databases and stores


@pytest.fixture(scope="session")
def pg_server():
    if not have_postgres():
        if in_ci():
            pytest.fail("PostgreSQL (initdb, pg_ctl) not found: CI must test PostgreSQL")
        pytest.skip("PostgreSQL (initdb) is not installed")
    # Not under pytest's tmp dir: its parents are 0700 root, which the postgres user cannot traverse.
    base = Path(tempfile.mkdtemp(prefix="ckptstore-pg-"))
    server = PgServer(base)
    try:
        server.start()
    except Exception:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(base, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


# The PostgreSQL half of every store test is in the slow tier: a database of its own and its
# schema cost ~0.7 s per test here against ~0.1 s for a SQLite file, and there are hundreds of
# them. The fast tier still reaches PostgreSQL through test_postgres.py and test_migrations.py.
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store_uri(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, Path]:
    """(uri, file root) of a fresh, empty store on the parametrized backend."""
    if backend == "sqlite":
        return str(tmp_path / "store"), tmp_path / "store"
    server = request.getfixturevalue("pg_server")
    return server.new_database(), tmp_path / "files"


@pytest.fixture(scope="session")
def new_sqlite_store_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory of a SQLite store as ``open_store`` creates it (schema at head, no runs),
    made once per session. Creating one runs the Alembic migrations (~50 ms and more on a busy
    machine); the store fixtures copy this one instead. Creation itself is tested on its own
    (test_migrations.py, test_runs.py)."""
    import ckptstore

    path = tmp_path_factory.mktemp("new-store") / "store"
    ckptstore.open_store(str(path)).close()
    return path


@pytest.fixture
def store(store_uri: tuple[str, Path], backend: str, new_sqlite_store_files: Path):
    """An open, empty store at ``store_uri`` on the parametrized backend."""
    import ckptstore

    uri, root = store_uri
    if backend == "sqlite":
        shutil.copytree(new_sqlite_store_files, root)
    s = ckptstore.open_store(uri, root=root)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path, new_sqlite_store_files: Path):
    """An open, empty SQLite store in ``tmp_path / "store"``."""
    import ckptstore

    shutil.copytree(new_sqlite_store_files, tmp_path / "store")
    s = ckptstore.open_store(str(tmp_path / "store"))
    try:
        yield s
    finally:
        s.close()


# --------------------------------------------------------------------------- child processes


@pytest.fixture
def children():
    """Start child processes through this (:class:`tests.helpers.processes.ChildProcesses`):
    each has a deadline of its own, and whatever still runs when the test ends is killed."""
    procs = ChildProcesses()
    try:
        yield procs
    finally:
        procs.kill_all()


# --------------------------------------------------------------------------- tiny TensorFlow models


@pytest.fixture(scope="session")
def seed_session():
    """The seed's TF1 graph (``op_to_store = x * y + b``, b = 1, and ``diff = x - y``) in one
    session shared by the whole test session. Save, freeze and read it; never change ``b`` or add
    to the graph (take ``new_seed_graph`` for that)."""
    require_tensorflow()
    from tests.helpers.models import seed_graph

    seed = seed_graph()
    try:
        yield seed.sess
    finally:
        seed.sess.close()


@pytest.fixture
def new_seed_graph() -> Callable[..., Any]:
    """``new_seed_graph(b=1.0)`` -> a :class:`tests.helpers.models.SeedGraph` of the test's own
    (graph, session, variable ``b``), to change at will; its session is closed after the test."""
    require_tensorflow()
    from tests.helpers.models import seed_graph

    made = []

    def make(b: float = 1.0) -> Any:
        made.append(seed_graph(b))
        return made[-1]

    yield make
    for seed in made:
        seed.sess.close()


@pytest.fixture(scope="session")
def tiny_model() -> Callable[..., Any]:
    """``tiny_model(scale=1.0, bias=0.0)`` -> a new TF2 ``tf.Module`` with ``w`` (3x2, filled with
    ``scale``) and ``b`` (2, filled with ``bias``)."""
    require_tensorflow()
    from tests.helpers.models import tiny_module

    return tiny_module


# --------------------------------------------------------------------------- object storage (S3)


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on a free loopback port for the whole session (tests.helpers.s3); the
    AWS variables that point clients at it are set in this process, so child processes inherit
    them: the store finds its endpoint and credentials as it would a real one's."""
    import os

    from tests.helpers.s3 import MotoServer

    server = MotoServer()
    server.start()
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    try:
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Any:
    """Debian's chromium under Playwright, one per session (per xdist worker): Playwright's sync
    API allows one instance at a time, so every browser test shares it (tests.helpers.browser)."""
    from tests.helpers.browser import launch

    yield from launch()


@pytest.fixture(params=["local", "s3"])
def area_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def s3store(tmp_path: Path, backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    from tests.helpers.hardening import open_with_area

    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache"))
    uri, s = open_with_area(tmp_path, backend, "s3", request)
    s.test_uri = uri  # type: ignore[attr-defined]
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def saved(sqlite_store, tiny_model, seed_session):
    """A store with r@1 (the tiny TF2 model, w = 2.0) and export:1 of the seed graph at step 1."""
    run = sqlite_store.start_run("r")
    ck = run.save(tiny_model(2.0, 0.5), 1)
    exp = run.freeze(seed_session, ["op_to_store"], step=1)
    run.finish()
    return sqlite_store, ck, exp
