"""Tensor-level storage on an S3 area: a data file whose tensors are partly in the bucket
already is uploaded as one pack of its new pieces, so an unchanged tensor goes up once across
steps; reads rebuild byte-identical files, and read_variable fetches only the tensor's bytes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

import ckptstore
from ckptstore.metadata import intents as I
from ckptstore.metadata import pieces as MP

ROWS = 128  # 128 x 256 float32 = 128 KiB per tensor: each a piece of its own


def _model(c: float):  # noqa: ANN202
    import tensorflow as tf

    m = tf.Module()
    m.a = tf.Variable(tf.reshape(tf.range(ROWS * 256, dtype=tf.float32), [ROWS, 256]))
    m.b = tf.Variable(tf.fill([ROWS, 256], 2.0))
    m.c = tf.Variable(tf.fill([ROWS, 256], c))
    m.bias = tf.Variable(tf.zeros([4]))
    return m


def _objects(s) -> dict[str, int]:  # noqa: ANN001
    return {d: n for d, n, _ in s.files.listing()}


@pytest.fixture
def s3_store(backend: str, s3_server, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache-writer"))
    uri = str(tmp_path / "store") if backend == "sqlite" else request.getfixturevalue("pg_server").new_database()
    with ckptstore.open_store(uri, root=f"s3://{s3_server.new_bucket()}/p") as s:
        yield s, uri


@pytest.mark.slow
def test_an_unchanged_tensor_is_uploaded_once(s3_store, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    s, uri = s3_store
    run = s.start_run("r")
    ck1 = run.save(_model(c=3.0), step=1)
    data1 = next(f for f in ck1.files if f.role == "data")
    first = _objects(s)
    assert data1.digest in first  # the first save stores the data file whole

    puts = s.files.requests["PutObject"]
    ck2 = run.save(_model(c=4.0), step=2)  # only c changed
    data2 = next(f for f in ck2.files if f.role == "data")
    new = {d: n for d, n in _objects(s).items() if d not in first}
    piece = ROWS * 256 * 4
    # The index, and one pack holding c's new bytes (and the small group that holds the bias).
    assert len(new) == 2 and s.files.requests["PutObject"] - puts == 2
    assert piece <= sum(new.values()) < piece + (64 << 10) + 4096
    assert data2.digest not in new and sum(new.values()) < data2.size / 2
    with s.read() as conn:
        layout = MP.extents(conn, [data2.digest])[data2.digest]
        assert I.pending_count(conn) == 0
    assert {o for _, _, o, _ in layout} <= set(_objects(s))
    assert data1.digest in {o for _, _, o, _ in layout}  # a and b are read from step 1's object

    # The same model again: nothing new goes up (the data file is assembled already).
    puts = s.files.requests["PutObject"]
    run.save(_model(c=4.0), step=3)
    assert s.files.requests["PutObject"] == puts

    # Step 1 gone and gc past the grace: what step 2 re-uses stays.
    s.delete_checkpoint("r@1")
    s.gc(grace=timedelta(0))
    assert data1.digest in _objects(s)
    assert s.verify().ok

    # Another host: a fresh cache. read_variable fetches one tensor's bytes, not the objects.
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache-reader"))
    with ckptstore.open_store(uri) as other:
        names = {v.name.split("/")[1]: v.name for v in other.variables("r@2")}
        gets = other.files.requests["GetObject"]
        c = other.read_variable("r@2", names["c"])
        a = other.read_variable("r@2", names["a"])
        assert np.allclose(c, 4.0) and np.allclose(a, np.arange(ROWS * 256).reshape(ROWS, 256))
        assert other.files.requests["GetObject"] - gets == 2 and other.files.cache.downloads == 0
        target = _model(c=0.0)
        other.restore("r@2", target, verify="full")  # rebuilt from the pieces, digest checked
        assert np.allclose(target.c.numpy(), 4.0) and np.allclose(target.b.numpy(), 2.0)
        prefix = other.materialize("r@2", tmp_path / "plain")
        rebuilt = Path(str(prefix) + ".data-00000-of-00001")
        from ckptstore.files.digest import digest_file

        assert digest_file(rebuilt) == (data2.digest, data2.size)
        # A second restore reads nothing from the bucket.
        gets = other.files.requests["GetObject"]
        other.restore("r@2", _model(c=0.0))
        assert other.files.requests["GetObject"] == gets


@pytest.mark.slow
def test_a_damaged_piece_is_reported_and_refused(s3_store, s3_server, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from ckptstore.errors import CorruptFileError

    s, uri = s3_store
    run = s.start_run("r")
    run.save(_model(c=3.0), step=1)
    before = set(_objects(s))
    run.save(_model(c=4.0), step=2)
    pack = next(d for d in _objects(s) if d not in before and s.files.size_of(d) >= ROWS * 256 * 4)
    c = s3_server.client()
    key = s.files.key_of(pack)
    body = c.get_object(Bucket=s.files.bucket, Key=key)["Body"].read()
    c.put_object(Bucket=s.files.bucket, Key=key, Body=b"\x7f" * 16 + body[16:])
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache-reader"))
    with ckptstore.open_store(uri) as other:
        report = other.verify()
        assert not report.ok and any(p.kind == "corrupt" for p in report.problems)
        names = {v.name.split("/")[1]: v.name for v in other.variables("r@2")}
        with pytest.raises(CorruptFileError):
            other.read_variable("r@2", names["c"])
        with pytest.raises(CorruptFileError):
            other.restore("r@2", _model(c=0.0))
        target = _model(c=0.0)
        other.restore("r@1", target)  # untouched by the damage
        assert np.allclose(target.c.numpy(), 3.0)
