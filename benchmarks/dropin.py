"""What a user sees when swapping TensorFlow's Saver / CheckpointManager for the drop-ins.

A 256 MB model (64 float32 variables of 1024x1024). The weights change before every save
(outside the timing: training does that, and unchanged weights would be deduplicated by content,
which no user sees); each round saves with every side, order alternating, all keeping 3:

* TF1 (graph mode): ``tf.compat.v1.train.Saver(max_to_keep=3).save(sess, dir/model, step)``
  against ``ckptstore.tf1.Saver(max_to_keep=3).save(...)``, same arguments: TensorFlow's files,
  meta graph and state file on both sides, plus the record in the store on the drop-in's.
* TF2 (eager): ``tf.train.CheckpointManager(ckpt, dir, max_to_keep=3).save()`` against
  ``ckptstore.tf2.CheckpointManager(...)``; raw ``Checkpoint.write`` is shown as a floor too.

A third side records with ``record="background"`` (``save`` returns when TensorFlow's files are
complete; the record follows on a thread, waited for outside the timing so that it does not run
into the next side's save).

Restore: ``saver.restore(sess, path)`` / ``ckpt.restore(path)`` of each side's newest checkpoint
(the drop-in's is TensorFlow's own restore of TensorFlow's files), and, for information,
``store.restore(ref)`` from the store (verification on).

Why this and not ``save_restore.py``: that benchmark times ``run.save(sess, step)``, the store's
own save into its staging area, against a raw Saver; a user of a drop-in calls ``Saver.save`` /
``manager.save`` in their own code, and with the old store-only drop-in paid for more than
``run.save`` there. Here both sides run the same user code and only the class differs, so
every cost the user pays (TensorFlow's write, meta graph and state file, retention's deletions,
the record in the store) is inside the timing.

Targets (issue 23): sync save <= 1.05x raw, restore <= 1.05x raw.

    python benchmarks/dropin.py [--rounds 7] [--tf1-only | --tf2-only]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
N_VARS, DIM = 64, 1024
MB = N_VARS * DIM * DIM * 4 / 2**20


def _paired(rounds: int, bump, sides: dict) -> dict[str, list[float]]:
    """Time each side's save once per round, weights changed first, order alternating."""
    times: dict[str, list[float]] = {k: [] for k in sides}
    names = list(sides)
    for i in range(1, rounds + 1):
        order = names if i % 2 else names[::-1]
        for name in order:
            # Before every save, not once a round: the drop-in sides share a store, and the
            # second to save equal weights would be deduplicated, which no training run sees.
            bump()
            fn, after = sides[name] if isinstance(sides[name], tuple) else (sides[name], None)
            t = time.perf_counter()
            fn(i)
            times[name].append(time.perf_counter() - t)
            if after is not None:
                after()  # untimed: a background record must not run into the next side's timing
    return times


def _report(what: str, times: dict[str, list[float]], base: str, target: float) -> None:
    med = statistics.median
    for name, ts in times.items():
        if name == base:
            continue
        ratios = [a / b for a, b in zip(ts, times[base])]
        ok = "OK" if med(ratios) <= target else "MISS"
        print(f"{what}: {base} {med(times[base]):.3f} s, {name} {med(ts):.3f} s, "
              f"median paired ratio {med(ratios):.3f}x (target <= {target:.2f}x) {ok}")


def _time_recording() -> list[float]:
    """Wrap ``dropin.record_with`` (what the drop-ins add to TensorFlow's save: the digest
    follower's tail, staging links, the commit) and collect its durations: an absolute cost in
    the save call, much steadier than ratios on a shared machine."""
    from ckptstore import dropin

    spent: list[float] = []
    inner = dropin.record_with

    def timed(recorder, run, prefix, follower):
        t = time.perf_counter()
        try:
            return inner(recorder, run, prefix, follower)
        finally:
            if recorder.mode == "sync":
                spent.append(time.perf_counter() - t)

    dropin.record_with = timed
    return spent


def _report_recording(spent: list[float], times: dict[str, list[float]], raw: str) -> None:
    ms = statistics.median(spent) * 1000
    base = statistics.median(times[raw])
    print(f"  record : median {ms:.1f} ms inside the sync save (the follower's tail, links, commit): "
          f"{ms / 1000 / base:.1%} of the raw save's median {base:.3f} s")


def tf1(rounds: int, work: Path) -> None:
    import tensorflow as tf

    import ckptstore
    import ckptstore.tf1

    tf.compat.v1.disable_eager_execution()
    g = tf.Graph()
    with g.as_default():
        vs = [tf.compat.v1.get_variable(f"layer{i}/w", initializer=tf.random.normal([DIM, DIM])) for i in range(N_VARS)]
        init = tf.compat.v1.global_variables_initializer()
        bump_op = tf.group(*[v.assign_add(tf.fill([DIM, DIM], 0.001)) for v in vs])
        raw = tf.compat.v1.train.Saver(max_to_keep=3)
        store = ckptstore.open_store(str(work / "store"))
        dropin = ckptstore.tf1.Saver(max_to_keep=3, store=store)
        background = ckptstore.tf1.Saver(max_to_keep=3, store=store, record="background")
    sess = tf.compat.v1.Session(graph=g)
    sess.run(init)
    paths: dict[str, str] = {}

    def save(saver, name):
        def go(i):
            with g.as_default():
                paths[name] = saver.save(sess, str(work / name / "model"), global_step=i)
        return go

    sides = {"raw Saver.save": save(raw, "raw"), "ckptstore.tf1.Saver.save": save(dropin, "dropin"),
             "ckptstore.tf1.Saver.save (record='background')": (save(background, "background"), background.sync)}
    for fn in sides.values():  # warm-up: builds the ops, fills the page cache
        (fn[0] if isinstance(fn, tuple) else fn)(0)
    background.sync()
    spent = _time_recording()
    times = _paired(rounds, lambda: sess.run(bump_op), sides)
    print(f"TF1 graph mode, {MB:.0f} MB, {rounds} paired rounds, both keeping 3")
    _report("  save   ", times, "raw Saver.save", 1.05)
    _report_recording(spent, times, "raw Saver.save")

    def restore(saver, name):
        def go(_):
            with g.as_default():
                saver.restore(sess, paths[name])
        return go

    ref = f"{dropin._runs[str(work / 'dropin')].name}@latest"  # noqa: SLF001 - the run of that directory
    rsides = {"raw Saver.restore": restore(raw, "raw"), "ckptstore.tf1.Saver.restore": restore(dropin, "dropin"),
              "store.restore (from the store)": lambda _: store.restore(ref, sess)}
    for fn in rsides.values():
        fn(0)
    rtimes = _paired(rounds, lambda: None, rsides)
    _report("  restore", rtimes, "raw Saver.restore", 1.05)
    print(f"  store: {len(store.checkpoints(ref.split('@')[0]))} checkpoints recorded (TF keeps 3)")
    store.close()


def tf2(rounds: int, work: Path) -> None:
    import tensorflow as tf

    import ckptstore
    import ckptstore.tf2

    vs = [tf.Variable(tf.random.normal([DIM, DIM]), name=f"w{i}") for i in range(N_VARS)]
    ckpt = tf.train.Checkpoint(vs=vs)
    store = ckptstore.open_store(str(work / "store"))
    raw = tf.train.CheckpointManager(ckpt, str(work / "raw"), max_to_keep=3)
    dropin = ckptstore.tf2.CheckpointManager(ckpt, str(work / "dropin"), max_to_keep=3, store=store)
    background = ckptstore.tf2.CheckpointManager(ckpt, str(work / "background"), max_to_keep=3, store=store,
                                                 record="background")
    paths: dict[str, str] = {}

    def manager_save(m, name):
        def go(i):
            paths[name] = m.save(checkpoint_number=i)
        return go

    def write(i):
        paths["write"] = ckpt.write(str(work / "write" / f"ckpt-{i}"))

    def bump():
        for v in vs:
            v.assign_add(tf.fill([DIM, DIM], 0.001))

    sides = {"raw CheckpointManager.save": manager_save(raw, "raw"),
             "ckptstore.tf2.CheckpointManager.save": manager_save(dropin, "dropin"),
             "ckptstore.tf2.CheckpointManager.save (record='background')": (manager_save(background, "background"),
                                                                             background.sync),
             "raw Checkpoint.write": write}
    for fn in sides.values():
        (fn[0] if isinstance(fn, tuple) else fn)(0)
    background.sync()
    spent = _time_recording()
    times = _paired(rounds, bump, sides)
    print(f"TF2 eager, {MB:.0f} MB, {rounds} paired rounds, both managers keeping 3")
    _report("  save   ", {k: v for k, v in times.items() if k != "raw Checkpoint.write"}, "raw CheckpointManager.save", 1.05)
    _report_recording(spent, times, "raw CheckpointManager.save")
    _report("  save   ", {k: v for k, v in times.items() if k != "raw CheckpointManager.save"}, "raw Checkpoint.write", 1.05)

    ref = f"{dropin.run.name}@latest"
    rsides = {"raw ckpt.restore": lambda _: ckpt.restore(paths["raw"]).assert_consumed(),
              "ckptstore ckpt.restore(manager path)": lambda _: ckpt.restore(paths["dropin"]).assert_consumed(),
              "store.restore (from the store)": lambda _: store.restore(ref, ckpt)}
    for fn in rsides.values():
        fn(0)
    rtimes = _paired(rounds, lambda: None, rsides)
    _report("  restore", rtimes, "raw ckpt.restore", 1.05)
    print(f"  store: {len(store.checkpoints(dropin.run.name))} checkpoints recorded (TF keeps 3)")
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--tf1-only", action="store_true")
    ap.add_argument("--tf2-only", action="store_true")
    ap.add_argument("--child", choices=["tf1", "tf2"])
    args = ap.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory(prefix="ckptstore-bench-") as tmp:
            (tf1 if args.child == "tf1" else tf2)(args.rounds, Path(tmp))
        return
    import subprocess

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at start: {load} ({os.cpu_count() or 0} CPUs): ratios mean little on a busy machine")
    # Each mode in its own process: TF1 switches eager execution off for the whole process.
    for mode in ("tf1", "tf2"):
        if getattr(args, f"{'tf2' if mode == 'tf1' else 'tf1'}_only"):
            continue
        subprocess.run([sys.executable, __file__, "--child", mode, "--rounds", str(args.rounds)], check=True)


if __name__ == "__main__":
    main()
