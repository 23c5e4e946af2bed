"""Shared fixtures: stores on SQLite and on a real, throwaway PostgreSQL server.

``store_uri`` / ``store`` are parametrized over both databases, so every store test runs twice.
The PostgreSQL cluster is created once per test session in a temp dir on a free loopback port
(``initdb`` refuses root, so as root the cluster belongs to the ``postgres`` user) and each test
gets a database of its own. Without ``initdb`` on PATH the PostgreSQL cases are skipped, except
in CI (``CI=true``), where a missing server is a failure. TensorFlow is the same:
:func:`require_tensorflow` skips without it, and fails in CI.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Both `from .conftest import run_py` and `from conftest import run_py` work in test modules.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str | None:
    # CKPTSTORE_PG_BINDIR pins the PostgreSQL binaries (and lets a test pretend there are none).
    pinned = os.environ.get("CKPTSTORE_PG_BINDIR")
    if pinned is not None:
        cand = Path(pinned) / name
        return str(cand) if cand.is_file() else None
    found = shutil.which(name)
    if found:
        return found
    for cand in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(cand)
    return None


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tensorflow() -> Any:
    """TensorFlow, for the test modules that need it: ``tf = require_tensorflow()`` at the top.

    Without TensorFlow the calling module is skipped, as with ``pytest.importorskip``, except in
    CI (``CI=true``): there an import that breaks fails the run, so a broken TensorFlow install
    cannot turn every TensorFlow test into a silent skip and leave CI green.
    """
    try:
        import tensorflow as tf
    except ImportError as exc:
        reason = f"TensorFlow cannot be imported ({type(exc).__name__}: {exc})"
        if _in_ci():
            pytest.fail(f"{reason}; CI must run the TensorFlow tests", pytrace=False)
        pytest.skip(reason, allow_module_level=True)
    return tf


class PgServer:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        self.user = "postgres" if self.as_root else os.environ.get("USER", "postgres")

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self.as_root:
            # initdb refuses to run as root; the cluster belongs to the postgres user instead.
            cmd = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120)
        if out.returncode != 0:
            log = self.base / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}\n{tail}")

    def start(self) -> None:
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if self.as_root:
            shutil.chown(self.base, "postgres", "postgres")
        self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        for attempt in range(3):
            opts = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            try:
                self._run(pg_ctl, "-D", str(self.data), "-o", opts, "-l", str(self.base / "log"), "-w", "start")
                return
            except RuntimeError:
                # The free port may have been taken between probing and binding: try another.
                if attempt == 2:
                    raise
                self.port = _free_port()

    def stop(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory):
    if not (_pg_bin("initdb") and _pg_bin("pg_ctl")):
        if _in_ci():
            pytest.fail("PostgreSQL (initdb, pg_ctl) not found: CI must test PostgreSQL")
        pytest.skip("PostgreSQL (initdb) is not installed")
    import tempfile

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


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store_uri(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, Path]:
    """(uri, file root) of a fresh, empty store on the parametrized backend."""
    if backend == "sqlite":
        return str(tmp_path / "store"), tmp_path / "store"
    server = request.getfixturevalue("pg_server")
    return server.new_database(), tmp_path / "files"


@pytest.fixture
def store(store_uri: tuple[str, Path]):
    import ckptstore

    uri, root = store_uri
    s = ckptstore.open_store(uri, root=root)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path):
    import ckptstore

    s = ckptstore.open_store(str(tmp_path / "store"))
    try:
        yield s
    finally:
        s.close()


def run_py(code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run Python code in a fresh interpreter (real processes for concurrency and crash tests)."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )
