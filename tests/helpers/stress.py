"""The stress harness: concurrent writers and SIGKILLed savers, on SQLite and on PostgreSQL.

``benchmarks/stress.py`` runs it with big numbers from the command line; the tests
(``test_concurrency.py``, ``test_crash.py``) call the same functions with small ones.

* **writers** (:func:`run_writers`) — N processes share one store; each logs V metric values
  (4 keys per step) and saves C checkpoints of a tiny ``tf.Module`` whose values encode
  (writer, checkpoint). Then: no process failed, every value is in the database exactly as
  logged (none lost), every checkpoint restores to exactly the values saved, and ``verify``
  finds nothing wrong.
* **kills** (:func:`run_kills`) — a *victim* process logs metrics and saves checkpoints in a
  loop (retention ``max_to_keep=3`` deletes old ones, and every 7th save it runs ``gc``, so
  kills also land in deletions and collections); the parent SIGKILLs it at a random moment.
  After every kill :func:`check_store_after_crash` opens the store again and checks: ``verify``
  finds no committed checkpoint with a missing or wrong file; after ``gc`` the files in
  ``objects/`` are exactly the ``blobs`` rows and the digests that checkpoints reference, and
  ``staging/`` is empty; the newest checkpoint reads back the values saved and every metric
  logged before it is there.

  Importing TensorFlow costs ~3 s, which would make 200 kills cost 10+ minutes of imports. So a
  *zygote* process (:class:`Zygote`) imports TensorFlow and ckptstore once (and runs no TF op,
  opens no store) and forks one victim per kill; the parent SIGKILLs the victim's pid itself.
  With ``fault=<point>`` a victim sets ``CKPTSTORE_FAULT`` and kills itself at that exact point
  of a save instead.

No orphans: every child has a deadline of its own (``signal.alarm``: writers and the gc loop
after ``timeout``, each victim after ``VICTIM_DEADLINE``, the zygote when no command came for
``idle`` seconds), the parent kills what is left in a ``finally``, and a zygote that ends kills
the victims it has not reaped. The children run this module as ``python -m
tests.helpers.stress _writer|_gc|_zygote ...`` with the repository root on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import math
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers.models import tiny_module

ROOT = Path(__file__).resolve().parents[2]

KEYS = ("loss", "accuracy", "lr", "grad_norm")
VICTIM_RUN = "victim"
VICTIM_BLOCK = 25  # steps logged between two saves of the victim
VICTIM_SHAPE = (256, 256)  # 256 KB: TensorFlow's write takes long enough for kills to land in it
VICTIM_DEADLINE = 120  # seconds a victim may live: killed long before, unless the parent is gone
ZYGOTE_IDLE = 600  # seconds the zygote waits for a command before it gives up on its parent
ZYGOTE_ANSWER = 180  # seconds the parent waits for a line from the zygote (its TF import included)


def _child_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.helpers.stress", *args]


def _child_env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {k: v for k, v in os.environ.items() if k != "CKPTSTORE_FAULT"}
    return {**env, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _set_deadline(seconds: float) -> None:
    """End this process (SIGALRM) after ``seconds``, whatever it is doing then."""
    signal.alarm(max(1, math.ceil(seconds)))


# =========================================================================== writers


def metric_value(writer: int, step: int, j: int) -> float:
    """The value writer ``writer`` logs for key ``j`` at ``step``: exact in float64, unique."""
    return writer * 10_000_000 + step + j / 8


def checkpoint_value(writer: int, k: int) -> float:
    return float(writer * 1000 + k)


def _wait_for_go(gate_dir: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not (gate_dir / "go").exists():  # start together, so the writes really overlap
        if time.monotonic() > deadline:
            raise SystemExit("the gate never opened")
        time.sleep(0.005)


def writer_main(
    uri: str, root: str, index: int, values: int, checkpoints: int, flush_every: int, gate: str, timeout: float
) -> None:
    """One writer process (``_writer``): waits at the gate, then logs and saves."""
    _set_deadline(timeout)
    import ckptstore

    if checkpoints:
        import tensorflow as tf

        model = tiny_module(0.0)
    store = ckptstore.open_store(uri, root=root)
    gate_dir = Path(gate)
    (gate_dir / f"ready-{index}").touch()
    _wait_for_go(gate_dir, timeout)
    steps = values // len(KEYS)
    every = max(1, steps // max(checkpoints, 1))
    t0 = time.perf_counter()
    save_s = 0.0
    saved = 0
    with store.start_run(f"writer-{index}", resume=True, params={"writer": index}, flush_every=flush_every) as run:
        for step in range(1, steps + 1):
            run.log(step, **{k: metric_value(index, step, j) for j, k in enumerate(KEYS)})
            if checkpoints and step % every == 0 and saved < checkpoints:
                saved += 1
                model.w.assign(tf.fill([3, 2], checkpoint_value(index, saved)))
                model.b.assign(tf.fill([2], -checkpoint_value(index, saved)))
                ts = time.perf_counter()
                run.save(model, step)
                save_s += time.perf_counter() - ts
    store.close()
    print(json.dumps({"writer": index, "seconds": time.perf_counter() - t0, "save_seconds": save_s, "saved": saved}))


def gc_loop_main(uri: str, root: str, gate: str, timeout: float) -> None:
    """``_gc``: collect garbage over and over while the writers save, until told to stop.

    A save holds the file area's lock shared from its first object move to its commit, and gc
    takes it exclusively, so no collection may ever remove a file a commit is about to name.
    """
    _set_deadline(timeout)
    import ckptstore

    store = ckptstore.open_store(uri, root=root)
    gate_dir = Path(gate)
    (gate_dir / "ready-gc").touch()
    _wait_for_go(gate_dir, timeout)
    n = removed = 0
    while not (gate_dir / "stop").exists():
        removed += store.gc().removed_objects
        n += 1
        time.sleep(0.01)
    store.close()
    print(json.dumps({"gc_runs": n, "removed_objects": removed}))


@dataclass
class WritersResult:
    backend: str
    procs: int
    values_per_proc: int
    checkpoints_per_proc: int
    errors: list[str] = field(default_factory=list)
    expected_rows: int = 0
    found_rows: int = 0
    lost_rows: int = 0
    wrong_rows: int = 0
    checkpoints_expected: int = 0
    checkpoints_restored: int = 0
    verify_problems: int = 0
    wall_seconds: float = 0.0
    busy_seconds: float = 0.0  # from the gate opening to the last writer finishing
    save_seconds_mean: float = 0.0
    gc_runs: int = 0  # collections run concurrently with the writers

    @property
    def ok(self) -> bool:
        return (
            not self.errors and self.lost_rows == 0 and self.wrong_rows == 0
            and self.found_rows == self.expected_rows
            and self.checkpoints_restored == self.checkpoints_expected and self.verify_problems == 0
        )

    def lines(self) -> list[str]:
        steps = self.values_per_proc // len(KEYS)
        return [
            f"writers on {self.backend}: {self.procs} processes x {self.values_per_proc:,} values "
            f"x {self.checkpoints_per_proc} checkpoints -> {'OK' if self.ok else 'FAILED'}",
            f"  errors {len(self.errors)}; metric rows {self.found_rows:,}/{self.expected_rows:,} "
            f"(lost {self.lost_rows}, wrong {self.wrong_rows}); checkpoints restored and equal "
            f"{self.checkpoints_restored}/{self.checkpoints_expected}; verify problems {self.verify_problems}",
            f"  {self.busy_seconds:.1f} s from the start signal to the last writer done "
            f"({self.procs * self.values_per_proc / max(self.busy_seconds, 1e-9):,.0f} values/s aggregate, "
            f"{steps:,} steps per writer); mean save {self.save_seconds_mean * 1000:.0f} ms; "
            f"wall {self.wall_seconds:.1f} s incl. TF imports and checks; "
            f"{self.gc_runs} gc runs concurrently with the writers",
        ] + [f"  ERROR {e}" for e in self.errors]


def run_writers(
    uri: str,
    root: str | Path,
    *,
    backend: str,
    procs: int = 8,
    values: int = 20_000,
    checkpoints: int = 10,
    flush_every: int = 1_000,
    gc_loop: bool = True,
    timeout: float = 600,
) -> WritersResult:
    """Run ``procs`` writer processes into the store and check everything they wrote.

    With ``gc_loop`` one more process runs ``gc`` in a loop the whole time. Every child ends
    itself after ``timeout`` seconds (a little more for the gc loop, which outlives the writers).
    """
    import numpy as np

    import ckptstore

    if values % len(KEYS):
        raise ValueError(f"values must be a multiple of {len(KEYS)}")
    res = WritersResult(backend, procs, values, checkpoints)
    t_wall = time.perf_counter()
    # Create the schema first: concurrent creation is tested on its own (test_postgres).
    ckptstore.open_store(uri, root=root).close()
    gate = Path(tempfile.mkdtemp(prefix="ckptstore-gate-"))
    env = _child_env()
    children: list[subprocess.Popen] = []
    collector = None
    deadline = time.monotonic() + timeout
    try:
        for i in range(procs):
            children.append(subprocess.Popen(
                _child_command("_writer", uri, str(root), str(i), str(values), str(checkpoints), str(flush_every),
                               str(gate), str(timeout)),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            ))
        if gc_loop:
            collector = subprocess.Popen(
                _child_command("_gc", uri, str(root), str(gate), str(timeout + 90)),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            )
        while len(list(gate.glob("ready-*"))) < procs + bool(gc_loop):
            if time.monotonic() > deadline or any(c.poll() is not None for c in children):
                break
            time.sleep(0.02)
        (gate / "go").touch()
        t_go = time.perf_counter()
        stats = []
        for i, c in enumerate(children):
            try:
                out, err = c.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                c.kill()
                out, err = c.communicate()
                res.errors.append(f"writer {i} did not finish within {timeout:.0f} s")
                continue
            if c.returncode != 0:
                res.errors.append(f"writer {i} exited {c.returncode}: {err.strip().splitlines()[-1] if err.strip() else ''}")
            elif "Traceback" in err:
                res.errors.append(f"writer {i} logged a traceback: {err.strip().splitlines()[-1]}")
            else:
                stats.append(json.loads(out.strip().splitlines()[-1]))
        res.busy_seconds = time.perf_counter() - t_go
        if stats:
            res.save_seconds_mean = sum(s["save_seconds"] for s in stats) / sum(max(1, s["saved"]) for s in stats)
        if collector is not None:
            (gate / "stop").touch()
            try:
                out, err = collector.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                collector.kill()
                out, err = collector.communicate()
            if collector.returncode != 0:
                res.errors.append(f"the gc process exited {collector.returncode}: {err.strip()[-300:]}")
            else:
                res.gc_runs = json.loads(out.strip().splitlines()[-1])["gc_runs"]
    finally:
        for c in [*children, *([collector] if collector is not None else [])]:
            if c.poll() is None:
                c.kill()
            c.wait()
            for stream in (c.stdout, c.stderr):
                if stream is not None:
                    stream.close()
        shutil.rmtree(gate, ignore_errors=True)

    steps = values // len(KEYS)
    every = max(1, steps // max(checkpoints, 1))
    with ckptstore.open_store(uri, root=root, create=False) as store:
        for i in range(procs):
            name = f"writer-{i}"
            res.expected_rows += values
            try:
                got = store.steps(name)
            except ckptstore.UnknownRunError:
                res.lost_rows += values
                continue
            seen = {(sm.step, k): v for sm in got for k, v in sm.metrics.items()}
            res.found_rows += len(seen)
            for step in range(1, steps + 1):
                for j, k in enumerate(KEYS):
                    v = seen.get((step, k))
                    if v is None:
                        res.lost_rows += 1
                    elif v != metric_value(i, step, j):
                        res.wrong_rows += 1
            wanted = [every * k for k in range(1, checkpoints + 1) if every * k <= steps] if checkpoints else []
            res.checkpoints_expected += len(wanted)
            have = {c.step for c in store.checkpoints(name)}
            for k, step in enumerate(wanted, start=1):
                if step not in have:
                    res.errors.append(f"{name}@{step} is missing")
                    continue
                target = tiny_module(0.0)
                store.restore(f"{name}@{step}", target)
                if np.array_equal(target.w.numpy(), np.full([3, 2], checkpoint_value(i, k), np.float32)) and np.array_equal(
                    target.b.numpy(), np.full([2], -checkpoint_value(i, k), np.float32)
                ):
                    res.checkpoints_restored += 1
                else:
                    res.errors.append(f"{name}@{step} restored different values")
        report = store.verify(full=True)
        res.verify_problems = len(report.problems)
        res.errors.extend(f"verify: {p.kind} {p.path} {p.checkpoint}" for p in report.problems)
    res.wall_seconds = time.perf_counter() - t_wall
    return res


# =========================================================================== kills


def victim_main(spec: dict[str, Any]) -> None:
    """Body of a forked victim: resume the run and save in a loop until killed (or ``max_saves``)."""
    _set_deadline(spec.get("deadline", VICTIM_DEADLINE))
    import tensorflow as tf

    import ckptstore

    if spec.get("fault"):
        os.environ["CKPTSTORE_FAULT"] = spec["fault"]
    else:
        os.environ.pop("CKPTSTORE_FAULT", None)
    store = ckptstore.open_store(spec["uri"], root=spec["root"])
    run = store.start_run(VICTIM_RUN, resume=True, retention=ckptstore.Retention(max_to_keep=3), flush_every=10_000)
    last = store.get_run(VICTIM_RUN).last_step or 0
    w = tf.Variable(tf.zeros(VICTIM_SHAPE), name="w")
    model = tf.Module()
    model.w = w
    # Never changes: from the second save on, data files are assembled from stored pieces.
    model.frozen = tf.Variable(tf.ones(VICTIM_SHAPE), name="frozen")
    # "ready" once saving (or after ``warmup_saves`` committed saves, so that a kill cannot come
    # before the victim got some work done however slow the machine is).
    warmup = spec.get("warmup_saves", 0)
    if not warmup:
        os.write(1, f"ready {os.getpid()}\n".encode())
    step = last
    saves = 0
    while spec.get("max_saves") is None or saves < spec["max_saves"]:
        for _ in range(VICTIM_BLOCK):
            step += 1
            run.log(step, loss=1.0 / step, acc=step / 1e6)
        w.assign(tf.fill(VICTIM_SHAPE, float(step)))
        run.save(model, step)
        saves += 1
        if saves == warmup:
            os.write(1, f"ready {os.getpid()}\n".encode())
        if saves % 7 == 0:
            store.gc()
    store.close()


def zygote_main(idle: float = ZYGOTE_IDLE) -> None:
    """``_zygote``: import TF once, then fork a victim per ``spawn`` line on stdin.

    Protocol (one line each way): ``spawn {json}`` -> ``spawned PID``; the victim itself writes
    ``ready PID`` once it is saving (or ``failed PID`` if it raised); ``reap PID`` -> ``reaped
    PID STATUS`` (STATUS -9 for SIGKILL, else the exit code); ``quit``. Without a command for
    ``idle`` seconds the zygote ends (SIGALRM); at ``quit`` or end of input it kills and reaps
    every victim not reaped yet.
    """
    _set_deadline(idle)
    import tensorflow  # noqa: F401 - the point of the zygote

    import ckptstore  # noqa: F401

    sys.stdout.write("zygote-ready\n")
    sys.stdout.flush()
    unreaped: set[int] = set()
    try:
        for line in sys.stdin:
            _set_deadline(idle)
            cmd, _, arg = line.strip().partition(" ")
            if cmd == "spawn":
                spec = json.loads(arg)
                sys.stdout.flush()
                pid = os.fork()
                if pid == 0:
                    code = 0
                    try:
                        victim_main(spec)
                    except BaseException:  # noqa: BLE001 - report, the parent counts it as an error
                        import traceback

                        traceback.print_exc()
                        os.write(1, f"failed {os.getpid()}\n".encode())  # never leave the parent waiting
                        code = 1
                    finally:
                        sys.stderr.flush()
                        os._exit(code)
                unreaped.add(pid)
                sys.stdout.write(f"spawned {pid}\n")
                sys.stdout.flush()
            elif cmd == "reap":
                _, status = os.waitpid(int(arg), 0)
                unreaped.discard(int(arg))
                code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                sys.stdout.write(f"reaped {arg} {code}\n")
                sys.stdout.flush()
            elif cmd == "quit":
                break
    finally:
        for pid in unreaped:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


class Zygote:
    """The parent's handle on a zygote process (see :func:`zygote_main`); a context manager.

    Every read from the zygote waits ``answer_timeout`` seconds at most, so a victim that hangs
    before it says ``ready`` fails the caller instead of blocking it.
    """

    def __init__(self, stderr_path: Path, *, idle: float = ZYGOTE_IDLE, answer_timeout: float = ZYGOTE_ANSWER) -> None:
        self._err = open(stderr_path, "w+")
        self._buf = b""
        self.answer_timeout = answer_timeout
        self.proc = subprocess.Popen(
            _child_command("_zygote", str(idle)), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._err, bufsize=0, env=_child_env(),
        )
        try:
            self._expect("zygote-ready")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + self.answer_timeout
        while b"\n" not in self._buf:
            left = end - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"the zygote said nothing for {self.answer_timeout:.0f} s: {self.stderr_tail()}")
            readable, _, _ = select.select([fd], [], [], left)
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"the zygote died: {self.stderr_tail()}")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode().strip()

    def _expect(self, prefix: str) -> str:
        line = self._line()
        if not line.startswith(prefix):
            raise RuntimeError(f"zygote said {line!r}, expected {prefix!r}")
        return line

    def _send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((text + "\n").encode())

    def spawn(self, **spec: Any) -> int:
        """Fork a victim (see :func:`victim_main` for ``spec``); return its pid."""
        self._send("spawn " + json.dumps(spec))
        return int(self._expect("spawned").split()[1])

    def wait_ready(self, pid: int) -> bool:
        """Wait for the victim's ``ready`` line; False if it died first (its reap line is not read)."""
        line = self._line()
        return line == f"ready {pid}"

    def reap(self, pid: int) -> int:
        self._send(f"reap {pid}")
        while True:
            line = self._line()
            if line.startswith("reaped"):
                return int(line.split()[2])
            # a late "ready" of a victim killed right after it wrote it

    def stderr_tail(self, n: int = 2000) -> str:
        self._err.flush()
        self._err.seek(0)
        return self._err.read()[-n:]

    def close(self) -> None:
        """Ask the zygote to quit (it kills its unreaped victims), or kill it."""
        if self.proc.poll() is None:
            try:
                self._send("quit")
                self.proc.wait(timeout=10)
            except Exception:  # noqa: BLE001
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self._err.close()


@dataclass
class KillsResult:
    backend: str
    kills: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    broken_committed: int = 0  # committed checkpoints verify found missing or wrong
    orphans_after_gc: int = 0  # objects on disk no row names, rows with no object, staging left
    wrong_values: int = 0  # checkpoints or metrics that read back differently from what was saved
    checkpoints_committed: int = 0  # saves that committed over the whole loop (steps advanced)
    kills_with_stale_staging: int = 0  # kills that left a staging directory behind
    kills_with_orphan_objects: int = 0  # kills that left objects no row references
    staging_removed: int = 0
    objects_removed: int = 0
    full_restores: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors and self.broken_committed == 0 and self.orphans_after_gc == 0 and self.wrong_values == 0

    def lines(self) -> list[str]:
        return [
            f"kills on {self.backend}: {self.kills} SIGKILLs in {self.seconds:.0f} s -> {'OK' if self.ok else 'FAILED'}",
            f"  broken committed checkpoints {self.broken_committed}; orphans after gc {self.orphans_after_gc}; "
            f"wrong values {self.wrong_values}; errors {len(self.errors)}",
            f"  {self.checkpoints_committed} checkpoints committed between kills; kills that left a staging dir "
            f"{self.kills_with_stale_staging}, left unreferenced objects {self.kills_with_orphan_objects}; "
            f"gc removed {self.staging_removed} staging dirs, {self.objects_removed} objects; "
            f"{self.full_restores} full restore rounds",
        ] + [f"  ERROR {e}" for e in self.errors[:20]]


def check_store_after_crash(uri: str, root: str | Path, res: KillsResult, *, full_restore: bool = False) -> dict[str, Any]:
    """Open the store as a fresh process would and check every invariant; fold findings into ``res``."""
    import numpy as np
    from sqlalchemy import select as sql_select

    import ckptstore
    from ckptstore.metadata import schema as S

    found: dict[str, Any] = {}
    with ckptstore.open_store(uri, root=root) as store:
        report = store.verify(full=True)
        broken = [p for p in report.problems if p.kind in ("missing", "corrupt")]
        res.broken_committed += len(broken)
        res.errors.extend(f"verify: {p.kind} {p.checkpoint} {p.detail}" for p in broken)
        found["stale_staging"] = sum(p.kind == "stale-staging" for p in report.problems)
        found["unexpected"] = sum(p.kind == "unexpected" for p in report.problems)
        gc = store.gc()
        res.staging_removed += gc.removed_staging
        res.objects_removed += gc.removed_objects

        with store.read() as conn:
            blobs = set(conn.execute(sql_select(S.blobs.c.digest)).scalars())
            used = set(conn.execute(sql_select(S.checkpoint_files.c.digest)).scalars())
            used |= set(conn.execute(sql_select(S.exports.c.digest)).scalars())
            # Objects holding pieces of assembled files; assembled files have no object of their own.
            used |= set(conn.execute(sql_select(S.file_extents.c.object_digest)).scalars())
            assembled = set(conn.execute(sql_select(S.file_extents.c.file_digest)).scalars())
        on_disk = {d for d, _ in store.files.object_digests()}
        staging = list(store.files.staging_root.iterdir()) if store.files.staging_root.exists() else []
        bad = len(on_disk - blobs) + len(blobs - assembled - on_disk) + len(blobs ^ used) + len(staging)
        if bad:
            res.orphans_after_gc += bad
            res.errors.append(
                f"after gc: {len(on_disk - blobs)} objects without a row, {len(blobs - on_disk)} rows without an "
                f"object, {len(blobs ^ used)} blob rows out of step with references, {len(staging)} staging entries"
            )

        try:
            cks = store.checkpoints(VICTIM_RUN)
        except ckptstore.UnknownRunError:
            cks = []
        found["steps"] = [c.step for c in cks]
        if cks:
            newest = cks[-1]
            val = store.read_variable(newest.ref, "model/w")
            if not (val.shape == VICTIM_SHAPE and np.all(val == float(newest.step))):
                res.wrong_values += 1
                res.errors.append(f"{newest.ref} reads back other values")
            # Save flushes first: every metric up to the newest checkpoint must be there.
            metrics = store.steps(VICTIM_RUN, stop=newest.step, keys=["loss"])
            if [m.step for m in metrics] != list(range(1, newest.step + 1)):
                res.wrong_values += 1
                res.errors.append(f"metrics before {newest.ref} are incomplete ({len(metrics)} of {newest.step} steps)")
            if full_restore:
                import tensorflow as tf

                for c in cks:
                    m = tf.Module()
                    m.w = tf.Variable(tf.zeros(VICTIM_SHAPE), name="w")
                    store.restore(c.ref, m, verify="full")
                    if not np.all(m.w.numpy() == float(c.step)):
                        res.wrong_values += 1
                        res.errors.append(f"{c.ref} restores other values")
                res.full_restores += 1
    return found


def run_kills(
    uri: str,
    root: str | Path,
    *,
    backend: str,
    kills: int = 200,
    max_seconds: float = 1200,
    max_delay: float = 1.0,
    seed: int = 0,
    work: Path | None = None,
    warmup_saves: int = 0,
) -> KillsResult:
    """SIGKILL victims at random moments, checking the store after every kill.

    One kill in ten comes while the victim is still opening the store; the others come up to
    ``max_delay`` seconds after it is ready (saving, or done with ``warmup_saves`` saves).
    """
    rng = random.Random(seed)
    res = KillsResult(backend)
    work = Path(work or tempfile.mkdtemp(prefix="ckptstore-kills-"))
    t0 = time.perf_counter()
    last_steps: list[int] = []
    with Zygote(work / "zygote.err") as zygote:
        try:
            while res.kills < kills and time.perf_counter() - t0 < max_seconds:
                pid = zygote.spawn(uri=uri, root=str(root), warmup_saves=warmup_saves)
                if rng.random() < 0.1:
                    # Sometimes kill it while it is still opening the store and resuming the run.
                    time.sleep(rng.uniform(0, 0.2))
                    ready = True
                else:
                    ready = zygote.wait_ready(pid)
                    time.sleep(rng.uniform(0, max_delay))
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                status = zygote.reap(pid)
                if not ready or status != -signal.SIGKILL:
                    res.errors.append(f"victim {pid} ended with status {status} before the kill: {zygote.stderr_tail(600)}")
                    break
                res.kills += 1
                found = check_store_after_crash(uri, root, res, full_restore=res.kills % 10 == 0)
                res.kills_with_stale_staging += found["stale_staging"] > 0
                res.kills_with_orphan_objects += found["unexpected"] > 0
                if found["steps"]:
                    prev = last_steps[-1] if last_steps else 0
                    res.checkpoints_committed += len([s for s in found["steps"] if s > prev])
                last_steps = found["steps"] or last_steps
                if res.errors:
                    break
        finally:
            res.seconds = time.perf_counter() - t0
    return res


# =========================================================================== child processes


def child_main(argv: list[str]) -> int:
    """The entry point of the children this module starts (``python -m tests.helpers.stress``)."""
    if argv[:1] == ["_writer"]:
        uri, root, i, v, c, fe, gate, timeout = argv[1:9]
        writer_main(uri, root, int(i), int(v), int(c), int(fe), gate, float(timeout))
    elif argv[:1] == ["_gc"]:
        uri, root, gate, timeout = argv[1:5]
        gc_loop_main(uri, root, gate, float(timeout))
    elif argv[:1] == ["_zygote"]:
        zygote_main(float(argv[1]) if len(argv) > 1 else ZYGOTE_IDLE)
    else:
        print(f"usage: python -m tests.helpers.stress _writer|_gc|_zygote ... (got {argv!r})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
