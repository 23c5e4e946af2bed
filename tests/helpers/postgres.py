"""A throwaway PostgreSQL cluster for the tests and the stress benchmark.

The cluster lives in a temp dir on a free loopback port (``initdb`` refuses root, so as root the
cluster belongs to the ``postgres`` user); :meth:`PgServer.new_database` hands out one empty
database per test. A watchdog process stops the cluster if the process that started it dies
without stopping it. ``CKPTSTORE_PG_BINDIR`` pins the binaries (and lets a test pretend there are
none).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

# Stops the cluster and removes its directory once the process that started it is gone (a test
# session killed with SIGKILL cannot run its teardown). It notices by being reparented.
_WATCHDOG = """
import os, shutil, subprocess, sys, time
parent, base, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
while os.getppid() == parent:
    time.sleep(1)
subprocess.run(stop, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
shutil.rmtree(base, ignore_errors=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin(name: str) -> str | None:
    """The path of a PostgreSQL program (``initdb``, ``pg_ctl``), or None when it is not installed."""
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


def have_postgres() -> bool:
    return bool(pg_bin("initdb") and pg_bin("pg_ctl"))


class PgServer:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self.user = "postgres" if self.as_root else os.environ.get("USER", "postgres")
        self._watchdog: subprocess.Popen | None = None

    def _cmd(self, *args: str) -> list[str]:
        if self.as_root:
            # initdb refuses to run as root; the cluster belongs to the postgres user instead.
            return [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "postgres", "--", *args]
        return list(args)

    def _run(self, *args: str) -> None:
        cmd = self._cmd(*args)
        out = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120)
        if out.returncode != 0:
            log = self.base / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}\n{tail}")

    def start(self) -> None:
        initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
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
                stop = self._cmd(pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
                self._watchdog = subprocess.Popen(
                    [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(self.base), *stop],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                return
            except RuntimeError:
                # The free port may have been taken between probing and binding: try another.
                if attempt == 2:
                    raise
                self.port = free_port()

    def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"
