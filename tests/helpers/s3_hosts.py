"""Many hosts on one store: worker processes that share nothing but the PostgreSQL URL and the
bucket (each has its own HOME, cache and staging), saving, restoring, tagging and collecting
garbage at once while the parent SIGKILLs them at random.

:func:`run_hosts` is called by ``tests/files/test_s3.py`` with small numbers and by
``benchmarks/stress.py --hosts`` with big ones. Afterwards :func:`check_hosts_store` asserts:
every committed checkpoint restores to the values its host saved (0 lost or broken), ``verify``
finds no damage, and after ``gc`` past the grace period the bucket holds exactly the objects
rows reference (0 orphans). Children run as ``python -m tests.helpers.s3_hosts _worker ...``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def value_of(host: int, step: int) -> float:
    return float(host * 1000 + step)


def worker_main(host: int, uri: str, seconds: float, seed: int) -> None:
    """One host: save/tag/restore/gc in a loop until ``seconds`` have passed."""
    signal.alarm(int(seconds) + 120)  # never outlive the test
    import numpy as np

    import ckptstore
    from tests.helpers.models import tiny_module

    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    with ckptstore.open_store(uri) as store:  # the root comes from the database
        name = f"h{host}"
        try:
            store.start_run(name)
        except ckptstore.errors.ConflictError:
            pass
        run = store.run(name)
        # Ready to be killed: TensorFlow is imported and the store open (a kill before that
        # would test nothing but start-up).
        Path(os.environ["HOME"], f"ready-{os.getpid()}").touch()
        while time.monotonic() < deadline:
            cks = store.checkpoints(name)
            step = (cks[-1].step + 1) if cks else 1
            ck = run.save(tiny_module(scale=value_of(host, step)), step=step)
            with open(Path(os.environ["HOME"], "saves.log"), "a") as log:
                log.write(f"{step}\n")
            action = rng.random()
            if action < 0.3:
                store.set_alias(f"{name}-best", ck.ref)
            elif action < 0.6:
                others = [r.name for r in store.runs()]
                victim = rng.choice(others)
                vcks = store.checkpoints(victim)
                if vcks:
                    c = rng.choice(vcks)
                    target = tiny_module(scale=0.0)
                    try:
                        store.restore(c.ref, target)
                    except ckptstore.errors.UnknownRefError:
                        continue  # deleted meanwhile by its host
                    h = int(victim[1:])
                    assert np.allclose(target.w.numpy(), value_of(h, c.step)), (victim, c.step)
            elif action < 0.8 and len(cks) > 5:
                old = cks[0]
                if not old.aliases:
                    try:
                        store.delete_checkpoint(old.ref)
                    except ckptstore.errors.ConflictError:
                        pass
            else:
                store.gc(grace=timedelta(0))


@dataclass
class HostsResult:
    kills: int = 0
    saves: int = 0
    checkpoints: int = 0
    lost_or_broken: list[str] = field(default_factory=list)
    orphans: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.lost_or_broken and not self.orphans and not self.failures and self.checkpoints > 0

    @property
    def errors(self) -> list[str]:
        return self.failures + self.lost_or_broken

    def lines(self) -> list[str]:
        head = (f"hosts: {self.saves} saves committed, {self.checkpoints} checkpoints left and checked, {self.kills} SIGKILLs, "
                f"{len(self.lost_or_broken)} lost or broken, {self.orphans} orphans after gc: "
                + ("ok" if self.ok else "FAILED"))
        return [head] + [f"  {e}" for e in self.errors[:20]]


def _spawn(host: int, uri: str, base: Path, seconds: float, seed: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    home = base / f"host{host}"
    home.mkdir(parents=True, exist_ok=True)
    child_env = {**env, "HOME": str(home), "CKPTSTORE_CACHE_DIR": str(home / "cache"),
                 "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    child_env.pop("CKPTSTORE_ROOT", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.s3_hosts", "_worker", str(host), uri, str(seconds), str(seed)],
        env=child_env, stdout=subprocess.DEVNULL, stderr=open(home / "stderr.log", "ab"),
    )


def run_hosts(uri: str, root: str, base: Path, *, hosts: int = 4, seconds: float = 20.0, kill_every: float = 4.0, seed: int = 0) -> HostsResult:
    """Run ``hosts`` workers for ``seconds``, SIGKILLing one every ~``kill_every`` s (and
    starting it again), then check the store."""
    import ckptstore

    ckptstore.open_store(uri, root=root).close()  # records the bucket in the database
    rng = random.Random(seed)
    env = dict(os.environ)
    result = HostsResult()
    procs = {h: _spawn(h, uri, base, seconds, seed + h, env) for h in range(hosts)}
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end - 1:
            time.sleep(max(0.0, min(rng.uniform(0.5, 2 * kill_every), end - 1 - time.monotonic())))
            if time.monotonic() >= end - 1:
                break
            h = rng.randrange(hosts)
            p = procs[h]
            if p.poll() is None and (base / f"host{h}" / f"ready-{p.pid}").exists():
                p.kill()
                p.wait()
                result.kills += 1
            else:
                continue
            left = end - time.monotonic()
            if left > 2:
                procs[h] = _spawn(h, uri, base, left, seed + 100 * result.kills + h, env)
        for h, p in procs.items():
            rc = p.wait(timeout=seconds + 180)
            if rc not in (0, -signal.SIGKILL):
                log = (base / f"host{h}" / "stderr.log").read_text(errors="replace").strip().splitlines()
                result.failures.append(f"host {h} exited {rc}: {log[-1] if log else ''}")
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    for h in range(hosts):
        log = base / f"host{h}" / "saves.log"
        result.saves += len(log.read_text().split()) if log.exists() else 0
    check_hosts_store(uri, result)
    return result


def check_hosts_store(uri: str, result: HostsResult) -> None:
    import numpy as np

    import ckptstore
    from tests.helpers.models import tiny_module

    with ckptstore.open_store(uri) as store:
        for r in store.runs():
            h = int(r.name[1:])
            for ck in store.checkpoints(r.name):
                result.checkpoints += 1
                target = tiny_module(scale=0.0)
                try:
                    store.restore(ck.ref, target, verify="full")
                    if not np.allclose(target.w.numpy(), value_of(h, ck.step)):
                        result.lost_or_broken.append(f"{ck.ref}: wrong values")
                except ckptstore.errors.CkptstoreError as exc:
                    result.lost_or_broken.append(f"{ck.ref}: {exc}")
        report = store.verify()
        result.lost_or_broken += [f"{p.kind}: {p.detail}" for p in report.problems if p.kind not in ("unexpected", "stale-staging")]
        store.gc(grace=timedelta(0))
        with store.read() as conn:
            from ckptstore.metadata import queries as Q

            known = Q.existing_blobs(conn)
        result.orphans = sum(1 for d in store.files.digests() if d not in known)


if __name__ == "__main__":
    if sys.argv[1] == "_worker":
        worker_main(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
    else:
        raise SystemExit(f"unknown command {sys.argv[1]!r}")
