"""Asynchronous saves in a training loop over a 256 MB model (issue 14).

64 float32 variables of 1024x1024. A "training step" updates every variable (an ``assign_add``
of the whole model plus a small matmul per variable), which is what an optimizer does to memory.
Three child processes run the same N-step loop so that each one's peak RSS is its own (each
of them ``--rounds`` times, in a rotating order; the ratios use the medians):

* ``none``:  no saves (the loop's own time);
* ``raw``:   a raw synchronous ``Checkpoint.write`` (TF2) / ``Saver.save`` (TF1) every K steps;
* ``async``: ``run.save(..., blocking=False)`` every K steps, then ``run.wait()`` at the end.

Targets (issue 14), each printed with its ratio:

* blocked time per async save <= 0.25 x a raw synchronous save, both medians measured in the
  same ``async`` child (one raw save is timed there before the loop);
* wall time of the ``async`` loop (through the last commit) <= 1.1 x (``none`` loop + one raw save);
* peak RSS of ``async`` above ``raw`` <= model size + 64 MB (the snapshot).

    python benchmarks/async_save.py [--steps 60] [--every 20] [--tf1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
N_VARS, DIM = 64, 1024
MODEL_MB = N_VARS * DIM * DIM * 4 / 2**20


def build_tf2():
    import tensorflow as tf

    class Big(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vs = [tf.Variable(tf.random.normal([DIM, DIM]), name=f"w{i}") for i in range(N_VARS)]

    m = Big()
    x = tf.random.normal([8, DIM])

    @tf.function
    def step() -> None:
        for v in m.vs:
            v.assign_add(0.001 * tf.tanh(tf.reduce_mean(tf.matmul(x, v))) + tf.fill([DIM, DIM], 0.001))

    ckpt = tf.train.Checkpoint(model=m)
    return step, (lambda d, i: ckpt.write(str(d / f"raw-{i}"))), m


def build_tf1():
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        vs = [tf.compat.v1.get_variable(f"w{i}", initializer=tf.random.normal([DIM, DIM])) for i in range(N_VARS)]
        x = tf.random.normal([8, DIM])
        bump = tf.group(*[v.assign_add(0.001 * tf.tanh(tf.reduce_mean(tf.matmul(x, v))) + tf.fill([DIM, DIM], 0.001)) for v in vs])
        init = tf.compat.v1.global_variables_initializer()
        saver = tf.compat.v1.train.Saver(max_to_keep=2)
    sess = tf.compat.v1.Session(graph=g)
    sess.run(init)

    def raw(d: Path, i: int) -> None:
        with g.as_default():
            saver.save(sess, str(d / "raw"), global_step=i, write_meta_graph=False)

    return (lambda: sess.run(bump)), raw, sess


def child(mode: str, work: Path, steps: int, every: int, tf1: bool) -> None:
    step, raw_save, target = (build_tf1 if tf1 else build_tf2)()
    for _ in range(3):  # warm-up: tracing, allocations
        step()
    raw_dir = work / "raw"
    raw_dir.mkdir(exist_ok=True)
    out: dict[str, object] = {}
    run = None
    if mode == "async":
        import ckptstore

        store = ckptstore.open_store(str(work / "store"))
        run = store.start_run("bench", retention=ckptstore.Retention(max_to_keep=2))
        # A raw synchronous save timed in this same process, the yardstick for blocked time.
        raw_times = []
        for i in range(2):
            t = time.perf_counter()
            raw_save(raw_dir, 10_000 + i)
            raw_times.append(time.perf_counter() - t)
        out["raw_save_s"] = min(raw_times)
        # The first async save traces and builds what later ones reuse.
        run.save(target, 0, blocking=False)
        run.wait()
    elif mode == "raw":
        raw_save(raw_dir, 99_999)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    blocked: list[float] = []
    t0 = time.perf_counter()
    for i in range(1, steps + 1):
        step()
        if i % every == 0:
            t = time.perf_counter()
            if mode == "raw":
                raw_save(raw_dir, i)
            elif mode == "async":
                run.save(target, i, blocking=False)
            blocked.append(time.perf_counter() - t)
    if run is not None:
        run.wait()
    out["wall_s"] = time.perf_counter() - t0
    out["blocked_s"] = blocked
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["base_mb"] = base / 1024
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--tf1", action="store_true", help="a TF1 Session and Saver instead of TF2")
    ap.add_argument("--rounds", type=int, default=3, help="times each child runs (the ratios use medians)")
    ap.add_argument("--child", choices=["none", "raw", "async"])
    ap.add_argument("--work")
    args = ap.parse_args()
    if args.child:
        child(args.child, Path(args.work), args.steps, args.every, args.tf1)
        return
    # Separate processes running the same work differ by up to ~15% on a shared 2-core machine
    # (the loop without saves measured 8.1-10.5 s in three runs), which is more than the 10%
    # margin under test: so the three children run --rounds times, in a rotating order, and the
    # ratios use each mode's median.
    runs: dict[str, list[dict]] = {"none": [], "raw": [], "async": []}
    modes = ["none", "raw", "async"]
    with tempfile.TemporaryDirectory(prefix="ckptstore-bench-async-") as tmp:
        for r in range(args.rounds):
            for mode in modes[r % 3:] + modes[:r % 3]:
                d = Path(tmp) / f"{mode}-{r}"
                d.mkdir()
                cmd = [sys.executable, __file__, "--child", mode, "--work", str(d), "--steps", str(args.steps), "--every", str(args.every)]
                if args.tf1:
                    cmd.append("--tf1")
                # Each child starts with no dirty pages of earlier children: otherwise the
                # kernel's writeback of their checkpoints lands in whichever child runs 30 s
                # later (on these virtual machines that I/O slows training on the same cores).
                os.sync()
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
                runs[mode].append(json.loads(out))
    med = statistics.median
    api = "TF1 Saver.save" if args.tf1 else "TF2 Checkpoint.write"
    saves = args.steps // args.every
    raw_s = med([a["raw_save_s"] for a in runs["async"]])
    blocked = med([b for a in runs["async"] for b in a["blocked_s"]])
    print(f"model: {N_VARS} x {DIM}x{DIM} float32 = {MODEL_MB:.0f} MB; {args.steps} steps, a save every {args.every} "
          f"({saves} saves); raw = {api}; median of {args.rounds} rounds")
    r1 = blocked / raw_s
    print(f"blocked per save: async {blocked * 1000:.1f} ms (median), raw synchronous save {raw_s * 1000:.1f} ms, "
          f"ratio {r1:.3f}x (target <= 0.25x) {'OK' if r1 <= 0.25 else 'MISS'}")
    none_wall, async_wall = med([x["wall_s"] for x in runs["none"]]), med([x["wall_s"] for x in runs["async"]])
    r2 = async_wall / (none_wall + raw_s)
    print(f"wall time: async loop incl. last commit {async_wall:.2f} s, loop without saves {none_wall:.2f} s + one raw save "
          f"{raw_s:.2f} s, ratio {r2:.3f}x (target <= 1.10x) {'OK' if r2 <= 1.10 else 'MISS'}; "
          f"raw synchronous loop {med([x['wall_s'] for x in runs['raw']]):.2f} s")
    each = [a["wall_s"] / (n["wall_s"] + a["raw_save_s"]) for n, a in zip(runs["none"], runs["async"])]
    print("  wall-time ratio of each round: " + ", ".join(f"{x:.3f}x" for x in each))
    # Memory: the worst round, not the median.
    extra = max(a["peak_mb"] - w["peak_mb"] for a, w in zip(runs["async"], runs["raw"]))
    limit = MODEL_MB + 64
    print(f"peak RSS: raw loop {max(x['peak_mb'] for x in runs['raw']):.0f} MB, async loop {max(x['peak_mb'] for x in runs['async']):.0f} MB, "
          f"worst round +{extra:.0f} MB (target <= {limit:.0f} MB = model + 64 MB) {'OK' if extra <= limit else 'MISS'}")

if __name__ == "__main__":
    main()
