"""ckptstore on an S3 bucket (moto's server on loopback) against plain boto3, on a 256 MB model.

* save: ``run.save`` of a TF2 module of 64 float32 variables (256 MB in all) onto an s3:// root
  (digest, upload, commit) against boto3 ``upload_file`` of the same bytes (TensorFlow's own
  write to local disk is in both: the raw side saves with ``tf.train.Checkpoint`` first);
* restore, first on a host with an empty cache: ``store.restore`` (download, digest check,
  TensorFlow read) against boto3 ``download_file`` of the same files plus ``Checkpoint.restore``;
* restore, second time (cache hit, no byte from the bucket) against a raw local
  ``Checkpoint.restore``.

Targets (issue 13): save+restore <= 1.2x the plain transfer; cache-hit restore <= 1.15x raw.

    python benchmarks/object_store.py [--mb 256] [--rounds 3]
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
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
        rows: dict[str, list[float]] = {k: [] for k in ("raw_save", "store_save", "raw_restore", "store_restore", "local_restore", "cached_restore")}
        for r in range(args.rounds):
            bucket = server.new_bucket()
            # Raw: TF writes locally, boto3 uploads; boto3 downloads, TF reads.
            raw = base / f"raw{r}"
            t = time.perf_counter()
            prefix = tf.train.Checkpoint(m=module).write(str(raw / "ck"))
            files = sorted(raw.iterdir())
            for f in files:
                client.upload_file(str(f), bucket, f"raw/{f.name}")
            rows["raw_save"].append(time.perf_counter() - t)
            down = base / f"down{r}"
            down.mkdir()
            t = time.perf_counter()
            for f in files:
                client.download_file(bucket, f"raw/{f.name}", str(down / f.name))
            tf.train.Checkpoint(m=target).read(str(down / "ck")).assert_consumed()
            rows["raw_restore"].append(time.perf_counter() - t)
            t = time.perf_counter()
            tf.train.Checkpoint(m=target).read(prefix).assert_consumed()
            rows["local_restore"].append(time.perf_counter() - t)

            os.environ["CKPTSTORE_CACHE_DIR"] = str(base / f"cache-w{r}")
            with ckptstore.open_store(base / f"store{r}", root=f"s3://{bucket}/ck") as s:
                run = s.start_run("bench")
                t = time.perf_counter()
                ck = run.save(module, step=1)
                rows["store_save"].append(time.perf_counter() - t)
                run.finish()
            os.environ["CKPTSTORE_CACHE_DIR"] = str(base / f"cache-r{r}")  # another host
            with ckptstore.open_store(base / f"store{r}") as s:
                t = time.perf_counter()
                s.restore(ck.ref, target)
                rows["store_restore"].append(time.perf_counter() - t)
                t = time.perf_counter()
                s.restore(ck.ref, target)
                rows["cached_restore"].append(time.perf_counter() - t)
                assert s.files.cache.downloads == len([f for f in ck.files if f.role != "meta"]) or s.files.cache.downloads >= 1
            shutil.rmtree(raw)
            shutil.rmtree(down)
        med = {k: statistics.median(v) for k, v in rows.items()}
        mb = n * 4
        print(f"object_store ({mb} MB, moto on loopback, median of {args.rounds}; loaded machine):")
        for k in ("raw_save", "store_save", "raw_restore", "store_restore", "local_restore", "cached_restore"):
            print(f"  {k:15s} {med[k]:7.2f} s  {mb / med[k]:7.1f} MB/s")
        both_raw = med["raw_save"] + med["raw_restore"]
        both = med["store_save"] + med["store_restore"]
        print(f"  save+restore ratio (store / boto3): {both / both_raw:.2f}x  (target <= 1.2x)")
        print(f"  save ratio {med['store_save'] / med['raw_save']:.2f}x, restore ratio {med['store_restore'] / med['raw_restore']:.2f}x")
        print(f"  cache-hit restore / raw local restore: {med['cached_restore'] / med['local_restore']:.2f}x  (target <= 1.15x)")
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
