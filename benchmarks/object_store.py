"""ckptstore on an S3 bucket (moto's server on loopback) against plain boto3, on a 256 MB model.

* save: ``run.save`` of a TF2 module of 64 float32 variables (256 MB in all) onto an s3:// root
  (digest, upload, commit) against boto3 ``upload_file`` of the same bytes (TensorFlow's own
  write to local disk is in both: the raw side saves with ``tf.train.Checkpoint`` first);
* restore, first on a host with an empty cache: ``store.restore`` (download, digest check,
  TensorFlow read) against boto3 ``download_file`` of the same files plus ``Checkpoint.restore``;
* restore, second time (cache hit, no byte from the bucket) against a raw local
  ``Checkpoint.restore``, interleaved (raw, store, store, raw) in each round.

Each round uses a fresh bucket and alternates which save goes first (moto keeps objects in
memory and slows down as it fills).

Targets (issue 13): save+restore <= 1.2x the plain transfer; cache-hit restore <= 1.15x raw.

Wall time on a shared machine swings with the other users' load, so each phase also reports
CPU seconds: this process (every thread) plus moto's server process, which is what the work
costs whatever else runs.

    python benchmarks/object_store.py [--mb 256] [--rounds 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) of this process plus the process ``pid`` (moto's server)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return time.process_time() + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Timer:
    """Wall and CPU seconds of a ``with`` block, appended to ``rows[name]`` / ``cpu[name]``."""

    def __init__(self, rows: dict[str, list[float]], cpu: dict[str, list[float]], pid: int) -> None:
        self.rows, self.cpu, self.pid = rows, cpu, pid

    def __call__(self, name: str) -> _Timer:
        self.name = name
        return self

    def __enter__(self) -> None:
        self.t, self.c = time.perf_counter(), _cpu(self.pid)

    def __exit__(self, *exc: object) -> None:
        self.rows[self.name].append(time.perf_counter() - self.t)
        self.cpu[self.name].append(_cpu(self.pid) - self.c)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()

    import boto3
    import tensorflow as tf

    import ckptstore
    from tests.helpers.s3 import MotoServer

    server = MotoServer()
    server.start()
    os.environ.update(server.env())
    os.environ["AWS_MAX_ATTEMPTS"] = "6"
    base = Path(tempfile.mkdtemp(prefix="ckptstore-bench-s3-"))
    try:
        n = max(1, args.mb // 4)
        module = tf.Module()
        module.vs = [tf.Variable(tf.random.normal([1024, 1024]), name=f"v{i}") for i in range(n)]
        target = tf.Module()
        target.vs = [tf.Variable(tf.zeros([1024, 1024]), name=f"v{i}") for i in range(n)]
        client = boto3.client("s3")
        names = ("raw_save", "store_save", "raw_restore", "store_restore", "local_restore", "cached_restore")
        rows: dict[str, list[float]] = {k: [] for k in names}
        cpu: dict[str, list[float]] = {k: [] for k in names}
        timed = _Timer(rows, cpu, server.proc.pid)
        for r in range(args.rounds):
            bucket = server.new_bucket()
            raw = base / f"raw{r}"
            down = base / f"down{r}"
            down.mkdir()

            # Both run within this round: the defaults only say which round's paths they use.
            def raw_save(raw: Path = raw, bucket: str = bucket) -> list[Path]:
                # Raw: TF writes locally, boto3 uploads.
                with timed("raw_save"):
                    tf.train.Checkpoint(m=module).write(str(raw / "ck"))
                    files = sorted(raw.iterdir())
                    for f in files:
                        client.upload_file(str(f), bucket, f"raw/{f.name}")
                return files

            def store_save(r: int = r, bucket: str = bucket) -> Any:
                os.environ["CKPTSTORE_CACHE_DIR"] = str(base / f"cache-w{r}")
                with ckptstore.open_store(base / f"store{r}", root=f"s3://{bucket}/ck") as s:
                    run = s.start_run("bench")
                    with timed("store_save"):
                        ck = run.save(module, step=1)
                    run.finish()
                return ck

            # moto keeps every object in memory and slows down as it fills, so the side that
            # goes second would pay for the first one's bytes: the order alternates by round.
            if r % 2 == 0:
                files, ck = raw_save(), store_save()
            else:
                ck, files = store_save(), raw_save()
            with timed("raw_restore"):
                for f in files:
                    client.download_file(bucket, f"raw/{f.name}", str(down / f.name))
                tf.train.Checkpoint(m=target).read(str(down / "ck")).assert_consumed()
            os.environ["CKPTSTORE_CACHE_DIR"] = str(base / f"cache-r{r}")  # another host
            with ckptstore.open_store(base / f"store{r}") as s:
                with timed("store_restore"):
                    s.restore(ck.ref, target)
                assert s.files.cache.downloads >= 1
                # Warm restores, from local files either way: interleaved (raw, store, store,
                # raw) so that both see the same page cache and allocator state.
                for which in ("local", "cached", "cached", "local"):
                    with timed(f"{which}_restore"):
                        if which == "local":
                            tf.train.Checkpoint(m=target).read(str(raw / "ck")).assert_consumed()
                        else:
                            s.restore(ck.ref, target)
                assert s.files.cache.downloads == len([f for f in ck.files if f.role != "meta"]) or s.files.cache.downloads >= 1
            for f in files:
                client.delete_object(Bucket=bucket, Key=f"raw/{f.name}")
            shutil.rmtree(raw)
            shutil.rmtree(down)
        med = {k: statistics.median(v) for k, v in rows.items()}
        mc = {k: statistics.median(v) for k, v in cpu.items()}
        mb = n * 4
        load = open("/proc/loadavg").read().split()[0]
        print(f"object_store ({mb} MB, moto on loopback, median of {args.rounds} rounds; load average {load} at the end):")
        for k in names:
            print(f"  {k:15s} {med[k]:7.2f} s  {mb / med[k]:7.1f} MB/s   cpu {mc[k]:6.2f} s (client + moto)")
        both_raw = med["raw_save"] + med["raw_restore"]
        both = med["store_save"] + med["store_restore"]
        print(f"  save+restore ratio (store / boto3): {both / both_raw:.2f}x  (target <= 1.2x)")
        print(f"  save ratio {med['store_save'] / med['raw_save']:.2f}x, restore ratio {med['store_restore'] / med['raw_restore']:.2f}x")
        print(
            f"  cpu: save ratio {mc['store_save'] / mc['raw_save']:.2f}x, restore ratio {mc['store_restore'] / mc['raw_restore']:.2f}x, "
            f"save+restore {(mc['store_save'] + mc['store_restore']) / (mc['raw_save'] + mc['raw_restore']):.2f}x"
        )
        print(f"  cache-hit restore / raw local restore: {med['cached_restore'] / med['local_restore']:.2f}x  (target <= 1.15x)")
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
