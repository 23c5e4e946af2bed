"""Space and diff speed of tensor-level storage (issue 12), side by side in one run.

1. Fine-tune series: a 256 MB base checkpoint (61 backbone tensors + a 3-tensor head, float32
   1024x1024 each), then 10 checkpoints where only the head (~5% of the parameters) trains,
   plus its Adam slots (m, v). Bytes for: a plain TF directory, file-level dedup (ckptstore
   before this change: one object per distinct file), a 64 KB content-defined-chunking baseline
   (gear hash, written here: no CDC package on the package list fits), and ours. Target:
   ours <= 1.2 x (base + the sum of changed tensors).
2. Full training series: 4 checkpoints where every tensor changes. Target: ours <= 1.01 x
   file-level. (Save/restore time and memory: ``benchmarks/save_restore.py``.)
3. Diff: digest diff of two 256 MB checkpoints (target <= 50 ms) and ``--stats`` on the 5%
   change (target <= 0.5 s).

    python benchmarks/dedup.py [--mb 256] [--no-cdc]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DIM = 1024
HEAD = 3
CDC_AVG_BITS = 16  # 64 KiB average chunk
CDC_MIN, CDC_MAX = 16 << 10, 256 << 10
CDC_BLOCK = 16 << 20


def gear_table():
    import numpy as np

    rng = np.random.default_rng(12)
    return rng.integers(0, 2**16, size=256, dtype=np.uint16)


def cdc_chunks(path: Path, gear) -> list[tuple[int, int]]:
    """Gear-hash content-defined chunks (offset, size): a boundary where the low 16 bits of the
    rolling gear hash are zero (64 KiB average), with 16 KiB minimum and 256 KiB maximum sizes.

    Only the low 16 bits are tested, and byte i-k contributes ``gear[b] << k`` to them for k < 16
    only, so the hash is computed for a whole block at once with numpy (16 shifted adds)."""
    import numpy as np

    data = np.fromfile(path, dtype=np.uint8)
    n = len(data)
    candidates: list[int] = []
    for start in range(0, n, CDC_BLOCK):
        lo = max(0, start - 15)
        g = gear[data[lo : start + CDC_BLOCK]]
        h = np.zeros(len(g), dtype=np.uint16)
        for k in range(16):
            h[k:] += g[: len(g) - k] << np.uint16(k)
        hits = np.flatnonzero(h == 0) + lo + 1  # a boundary after byte i
        candidates.extend(int(x) for x in hits if x > start)
    out: list[tuple[int, int]] = []
    pos = 0
    ci = 0
    while pos < n:
        end = min(n, pos + CDC_MAX)
        while ci < len(candidates) and candidates[ci] < pos + CDC_MIN:
            ci += 1
        if ci < len(candidates) and candidates[ci] <= end:
            end = candidates[ci]
        out.append((pos, end - pos))
        pos = end
    return out


def cdc_unique_bytes(paths: list[Path]) -> int:
    import blake3
    import numpy as np

    gear = gear_table()
    seen: set[str] = set()
    total = 0
    for p in paths:
        data = np.fromfile(p, dtype=np.uint8)
        for off, size in cdc_chunks(p, gear):
            d = blake3.blake3(data[off : off + size].tobytes()).hexdigest()
            if d not in seen:
                seen.add(d)
                total += size
    return total


def objects_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "objects").rglob("*") if p.is_file())


def gb(n: int) -> str:
    return f"{n / 2**20:8.1f} MB"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=256, help="base checkpoint size (multiple of 4 MB)")
    ap.add_argument("--saves", type=int, default=10)
    ap.add_argument("--no-cdc", action="store_true", help="skip the (slow) CDC baseline")
    args = ap.parse_args()
    import numpy as np
    import tensorflow as tf

    import ckptstore

    n_tensors = args.mb // 4
    work = Path(tempfile.mkdtemp(prefix="ckptstore-dedup-"))
    try:
        rng = np.random.default_rng(0)
        m = tf.Module()
        m.backbone = [tf.Variable(rng.standard_normal((DIM, DIM), dtype=np.float32)) for _ in range(n_tensors - HEAD)]
        m.head = [tf.Variable(rng.standard_normal((DIM, DIM), dtype=np.float32)) for _ in range(HEAD)]
        store = ckptstore.open_store(str(work / "store"))
        raw_dir = work / "raw"

        # ---------------------------------------------------------------- 1. fine-tune series
        with store.start_run("base") as run:
            run.save(m, 0)
        m.m = [tf.Variable(tf.zeros_like(h)) for h in m.head]
        m.v = [tf.Variable(tf.zeros_like(h)) for h in m.head]
        with store.start_run("finetune") as run:
            for step in range(1, args.saves + 1):
                for h, mm, vv in zip(m.head, m.m, m.v):
                    g = tf.random.normal(h.shape, seed=step)
                    mm.assign(0.9 * mm + 0.1 * g)
                    vv.assign(0.999 * vv + 0.001 * g * g)
                    h.assign_sub(1e-3 * mm / (tf.sqrt(vv) + 1e-7))
                run.save(m, step)
        cks = store.checkpoints("base") + store.checkpoints("finetune")
        plain = sum(ck.total_bytes for ck in cks)
        file_level = sum({f.digest: f.size for ck in cks for f in ck.files}.values())
        ours = objects_bytes(work / "store")
        head_bytes = HEAD * DIM * DIM * 4
        base_bytes = cks[0].total_bytes
        changed = args.saves * 3 * head_bytes  # head + m + v, every save
        bound = base_bytes + changed
        print(f"fine-tune series: {args.mb} MB base + {args.saves} checkpoints, head {HEAD}/{n_tensors} tensors "
              f"({100 * HEAD / n_tensors:.1f}%) + Adam slots")
        print(f"  plain TF directory   {gb(plain)}")
        print(f"  file-level dedup     {gb(file_level)}")
        if not args.no_cdc:
            paths = []
            for ck in cks:
                out = store.materialize(ck.ref, raw_dir / ck.ref.replace("@", "-"), link="hard")
                paths += [out.parent / f.file_name for f in ck.files if f.role == "data"]
            t0 = time.perf_counter()
            cdc = cdc_unique_bytes(paths)
            print(f"  64 KB gear CDC       {gb(cdc)}   ({time.perf_counter() - t0:.0f} s to chunk; data files only)")
            shutil.rmtree(raw_dir, ignore_errors=True)
        print(f"  ckptstore (tensors)  {gb(ours)}   = {ours / bound:.3f} x (base + changed tensors = {gb(bound).strip()}); target <= 1.2")

        # ---------------------------------------------------------------- 3. diff
        a, b = "base@0", f"finetune@{args.saves}"
        store.diff_variables(a, b)  # first call: connections, caches
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            d = store.diff_variables(a, b)
            times.append(time.perf_counter() - t0)
        counts: dict[str, int] = {}
        for v in d.variables:
            counts[v.status] = counts.get(v.status, 0) + 1
        print(f"diff {a} vs {b} ({args.mb} MB each): {statistics.median(times) * 1000:.1f} ms median of 5; "
              f"{counts}; target <= 50 ms")
        a2, b2 = f"finetune@{args.saves - 1}", f"finetune@{args.saves}"
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            d = store.diff_variables(a2, b2, stats=True)
            times.append(time.perf_counter() - t0)
        changed_vars = [v for v in d.variables if v.status == "value changed"]
        print(f"diff --stats {a2} vs {b2} ({len(changed_vars)} changed tensors, "
              f"{sum(v.after.shape[0] * v.after.shape[1] * 4 for v in changed_vars) / 2**20:.0f} MB each side): "
              f"{statistics.median(times) * 1000:.0f} ms median of 3; target <= 500 ms")

        # ---------------------------------------------------------------- 2. full training series
        del m.m, m.v
        full = ckptstore.open_store(str(work / "full"))
        with full.start_run("train") as run:
            for step in range(4):
                for v in m.backbone + m.head:
                    v.assign_add(tf.fill(v.shape, 1e-3))
                run.save(m, step)
        cks = full.checkpoints("train")
        file_level = sum({f.digest: f.size for ck in cks for f in ck.files}.values())
        ours = objects_bytes(work / "full")
        print(f"full training series: 4 checkpoints, every tensor changes: file-level {gb(file_level)}, "
              f"ours {gb(ours)} = {ours / file_level:.4f} x; target <= 1.01")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
