"""Stress: concurrent writers and a randomized SIGKILL loop, on SQLite and on PostgreSQL.

Two scenarios, each bounded in count and in time:

* **writers** — N processes share one store; each logs V metric values (4 keys per step) and
  saves C checkpoints of a tiny ``tf.Module`` whose values encode (writer, checkpoint). Then:
  no process failed, every value is in the database exactly as logged (none lost), every
  checkpoint restores to exactly the values saved, and ``verify`` finds nothing wrong.
* **kills** — a *victim* process logs metrics and saves checkpoints in a loop (retention
  ``max_to_keep=3`` deletes old ones, and every 7th save it runs ``gc``, so kills also land in
  deletions and collections); the parent SIGKILLs it at a random moment. After every kill the
  store is opened again and must hold: ``verify`` finds no committed checkpoint with a missing
  or wrong file; after ``gc`` the files in ``objects/`` are exactly the ``blobs`` rows and the
  digests that checkpoints reference, and ``staging/`` is empty; the newest checkpoint reads
  back the values saved and every metric logged before it is there. Every 10th kill all
  checkpoints are restored in full.

  Importing TensorFlow costs ~3 s, which would make 200 kills cost 10+ minutes of imports. So a
  *zygote* process imports TensorFlow and ckptstore once (and runs no TF op, opens no store) and
  forks one victim per kill; the parent SIGKILLs the victim's pid itself. Each victim is a real
  process that opens the store on its own connections. With ``CKPTSTORE_FAULT=<point>`` set in
  a victim, it kills itself at that exact point of a save instead (used by the tests).

The harness itself lives in ``tests/helpers/stress.py``; the tests (``tests/test_concurrency.py``,
``tests/files/test_commit_crash.py``) call the same functions with smaller numbers. Usage::

    python benchmarks/stress.py                        # everything, both databases (the full run)
    python benchmarks/stress.py writers --backend sqlite --procs 8 --values 20000 --checkpoints 10
    python benchmarks/stress.py kills --backend postgres --kills 200
    python benchmarks/stress.py --pg-url postgresql+psycopg://u@host/db --pg-root /data/files
    python benchmarks/stress.py hosts --hosts 4 --hosts-seconds 120   # one bucket, many hosts

**hosts** (issue 13, ``tests/helpers/s3_hosts.py``) — N worker processes stand in for hosts
(own HOME, cache and staging) sharing only a PostgreSQL URL and a bucket on moto's server; they
save, restore, tag, delete and gc (grace 0) at once while the parent SIGKILLs them. Then: 0
lost or broken committed checkpoints, 0 orphans after gc past the grace period.

Without ``--pg-url`` a throwaway PostgreSQL cluster is started (``initdb``/``pg_ctl`` on PATH).
Exit status 0 only if every check held.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.helpers.postgres import PgServer, have_postgres  # noqa: E402
from tests.helpers.stress import KillsResult, run_kills, run_writers  # noqa: E402


def _pg(args: argparse.Namespace, stack: list[Any], tmp: Path) -> tuple[str, Path]:
    if args.pg_url:
        return args.pg_url, Path(args.pg_root or tempfile.mkdtemp(prefix="pgroot-", dir=tmp))
    if not have_postgres():
        raise SystemExit("PostgreSQL is not installed (initdb not found); pass --pg-url")
    if not stack:
        base = Path(tempfile.mkdtemp(prefix="ckptstore-pg-"))
        server = PgServer(base)
        server.start()
        stack.append(server)
    return stack[0].new_database(), Path(tempfile.mkdtemp(prefix="pgroot-", dir=tmp))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", nargs="?", choices=["all", "writers", "kills", "hosts"], default="all")
    p.add_argument("--hosts", type=int, default=4, help="hosts scenario: worker processes")
    p.add_argument("--hosts-seconds", type=float, default=240)
    p.add_argument("--kill-every", type=float, default=12, help="hosts scenario: mean seconds between SIGKILLs")
    p.add_argument("--backend", choices=["both", "sqlite", "postgres"], default="both")
    p.add_argument("--procs", type=int, default=8)
    p.add_argument("--values", type=int, default=20_000, help="metric values per writer (multiple of 4)")
    p.add_argument("--checkpoints", type=int, default=10)
    p.add_argument("--flush-every", type=int, default=1_000)
    p.add_argument("--kills", type=int, default=200)
    p.add_argument("--max-seconds", type=float, default=1200, help="time bound of each kill loop")
    p.add_argument("--max-delay", type=float, default=1.0, help="kill at uniform(0, this) s after the victim is ready")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--pg-url")
    p.add_argument("--pg-root")
    args = p.parse_args(argv)

    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    stack: list[Any] = []
    results: list[Any] = []
    tmp = Path(tempfile.mkdtemp(prefix="ckptstore-stress-"))
    import platform

    import ckptstore

    print(f"ckptstore {ckptstore.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs, seed {args.seed}")
    try:
        if args.scenario == "hosts":
            from tests.helpers.s3 import MotoServer
            from tests.helpers.s3_hosts import run_hosts

            moto = MotoServer()
            moto.start()
            try:
                os.environ.update(moto.env())
                uri, _ = _pg(args, stack, tmp)
                r = run_hosts(uri, f"s3://{moto.new_bucket()}/stress", tmp, hosts=args.hosts,
                              seconds=args.hosts_seconds, kill_every=args.kill_every, seed=args.seed)
                print("\n".join(r.lines()), flush=True)
                results.append(r)
            finally:
                moto.stop()
            backends = []
        for backend in backends:
            if args.scenario in ("all", "writers"):
                uri, root = (str(tmp / f"w-{backend}"), tmp / f"w-{backend}") if backend == "sqlite" else _pg(args, stack, tmp)
                r = run_writers(uri, root, backend=backend, procs=args.procs, values=args.values,
                                checkpoints=args.checkpoints, flush_every=args.flush_every)
                print("\n".join(r.lines()), flush=True)
                results.append(r)
            if args.scenario in ("all", "kills"):
                uri, root = (str(tmp / f"k-{backend}"), tmp / f"k-{backend}") if backend == "sqlite" else _pg(args, stack, tmp)
                r = run_kills(uri, root, backend=backend, kills=args.kills, max_seconds=args.max_seconds,
                              max_delay=args.max_delay, seed=args.seed, work=tmp)
                print("\n".join(r.lines()), flush=True)
                results.append(r)
    finally:
        for server in stack:
            server.stop()
            shutil.rmtree(server.base, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    ok = all(r.ok for r in results) and all(
        r.kills >= args.kills for r in results if isinstance(r, KillsResult)
    )
    print("summary:", json.dumps([{**asdict(r), "ok": r.ok} | {"errors": len(r.errors)} for r in results]))
    print("ALL CHECKS PASSED" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
