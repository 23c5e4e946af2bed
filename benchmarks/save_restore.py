"""Save/restore overhead of ckptstore against raw TensorFlow, on a 256 MB model.

64 float32 variables of 1024x1024, initialised by TF ops. Paired runs, order alternated:
raw ``Saver.save`` vs ``run.save`` (digest, move, commit, retention) and raw ``Saver.restore``
vs ``store.restore`` with verification on (default: stat-signature check, re-hash on change)
and with ``verify="full"`` (re-hash every byte). Peak memory is the peak RSS of two child
processes doing the same save+restore work, one raw and one through the store.

Also the cost of a private restored directory (issue 16): ``materialize`` of the same 256 MB
with ``link="copy"`` (the default: reflinks where the filesystem has them, else an in-kernel
copy) against ``link="hard"`` (hard links, read-only use), and against a plain ``cp -r`` of
the raw TensorFlow directory.

Targets (issue 3): save <= 1.10x, restore <= 1.15x, peak memory <= 64 MB above raw.

    python benchmarks/save_restore.py [--rounds 7]
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


def build():
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        vs = [
            tf.compat.v1.get_variable(f"layer{i}/w", initializer=tf.random.normal([DIM, DIM]))
            for i in range(N_VARS)
        ]
        init = tf.compat.v1.global_variables_initializer()
        # Training changes the weights between saves; without this every save after the first
        # would be deduplicated by content and measure something no user sees.
        bump = tf.group(*[v.assign_add(tf.fill([DIM, DIM], 0.001)) for v in vs])
    sess = tf.compat.v1.Session(graph=g)
    sess.run(init)
    return tf, g, sess, bump


def child(mode: str, work: Path) -> None:
    """Save three times and restore three times, then report peak RSS in MB."""
    tf, g, sess, bump = build()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if mode == "raw":
        with g.as_default():
            saver = tf.compat.v1.train.Saver(max_to_keep=2)
        for i in range(3):
            sess.run(bump)
            with g.as_default():
                p = saver.save(sess, str(work / "raw" / "model.ckpt"), global_step=i)
        for _ in range(3):
            with g.as_default():
                saver.restore(sess, p)
    else:
        import ckptstore

        store = ckptstore.open_store(str(work / "store"))
        run = store.start_run("mem", retention=ckptstore.Retention(max_to_keep=2))
        for i in range(3):
            sess.run(bump)
            run.save(sess, i)
        for _ in range(3):
            store.restore("mem@latest", sess, verify="full")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_mb": peak / 1024, "after_build_mb": base / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--child", choices=["raw", "store"])
    ap.add_argument("--work")
    args = ap.parse_args()
    if args.child:
        child(args.child, Path(args.work))
        return

    import ckptstore

    tf, g, sess, bump = build()
    with tempfile.TemporaryDirectory(prefix="ckptstore-bench-") as tmp:
        work = Path(tmp)
        with g.as_default():
            saver = tf.compat.v1.train.Saver(max_to_keep=3)
        store = ckptstore.open_store(str(work / "store"))
        run = store.start_run("bench", retention=ckptstore.Retention(max_to_keep=3))

        def raw_save(i: int) -> str:
            with g.as_default():
                return saver.save(sess, str(work / "raw" / "model.ckpt"), global_step=i)

        # Warm-up: builds the savers' ops and the page cache for both paths.
        raw_prefix = raw_save(0)
        run.save(sess, 0)
        save_raw, save_store = [], []
        for i in range(1, args.rounds + 1):
            sess.run(bump)
            order = [("raw", raw_save), ("store", lambda i: run.save(sess, i))]
            if i % 2:
                order.reverse()
            for name, fn in order:
                t = time.perf_counter()
                out = fn(i)
                (save_raw if name == "raw" else save_store).append(time.perf_counter() - t)
                if name == "raw":
                    raw_prefix = out
        ref = f"bench@{args.rounds}"

        def raw_restore() -> None:
            with g.as_default():
                saver.restore(sess, raw_prefix)

        rest_raw, rest_store, rest_full = [], [], []
        raw_restore()
        store.restore(ref, sess)
        for i in range(args.rounds):
            fns = [("raw", raw_restore), ("store", lambda: store.restore(ref, sess)),
                   ("full", lambda: store.restore(ref, sess, verify="full"))]
            if i % 2:
                fns.reverse()
            for name, fn in fns:
                t = time.perf_counter()
                fn()
                {"raw": rest_raw, "store": rest_store, "full": rest_full}[name].append(time.perf_counter() - t)

        med = statistics.median
        ratios = [s / r for s, r in zip(save_store, save_raw)]
        print(f"model: {N_VARS} x {DIM}x{DIM} float32 = {N_VARS * DIM * DIM * 4 / 2**20:.0f} MB, {args.rounds} paired rounds")
        print(f"save:    raw {med(save_raw):.3f} s, ckptstore {med(save_store):.3f} s, "
              f"median paired ratio {med(ratios):.3f}x (target <= 1.10x) {'OK' if med(ratios) <= 1.10 else 'MISS'}")
        r1 = [s / r for s, r in zip(rest_store, rest_raw)]
        r2 = [s / r for s, r in zip(rest_full, rest_raw)]
        print(f"restore: raw {med(rest_raw):.3f} s, ckptstore (verify=True) {med(rest_store):.3f} s, "
              f"median paired ratio {med(r1):.3f}x (target <= 1.15x) {'OK' if med(r1) <= 1.15 else 'MISS'}")
        print(f"restore: ckptstore (verify='full', re-hash all 256 MB) {med(rest_full):.3f} s, "
              f"median paired ratio {med(r2):.3f}x")

        import shutil

        mat = {"copy": [], "hard": [], "cp": []}
        raw_dir = Path(raw_prefix).parent
        for i in range(args.rounds):
            for mode in ("copy", "hard", "cp") if i % 2 else ("cp", "hard", "copy"):
                dst = work / f"mat-{mode}-{i}"
                t = time.perf_counter()
                if mode == "cp":
                    shutil.copytree(raw_dir, dst)
                else:
                    store.materialize(ref, dst, link=mode, verify=False)
                mat[mode].append(time.perf_counter() - t)
                shutil.rmtree(dst)
        print(f"materialize 256 MB: copy {med(mat['copy']):.3f} s, hard links {med(mat['hard']):.3f} s, "
              f"plain cp of the raw directory {med(mat['cp']):.3f} s (median of {args.rounds})")

        peaks = {}
        for mode in ("raw", "store"):
            d = work / f"mem-{mode}"
            d.mkdir()
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--work", str(d)],
                check=True, capture_output=True, text=True,
            ).stdout.strip().splitlines()[-1]
            peaks[mode] = json.loads(out)["peak_mb"]
        extra = peaks["store"] - peaks["raw"]
        print(f"peak RSS: raw {peaks['raw']:.0f} MB, ckptstore {peaks['store']:.0f} MB, "
              f"+{extra:.0f} MB (target <= 64 MB) {'OK' if extra <= 64 else 'MISS'}")
        store.close()


if __name__ == "__main__":
    main()
