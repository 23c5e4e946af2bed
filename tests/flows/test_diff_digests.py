"""Variable diffs record digests only of bytes checked against a digest that predates them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ckptstore.errors import CorruptFileError
from tests.helpers.hardening import open_with_area

# =========================================================================== 2. digests only from checked bytes


def _two_runs_sharing_w(store):  # noqa: ANN001, ANN202
    import tensorflow as tf

    def mod(av: float):  # noqa: ANN202
        m = tf.Module()
        m.w = tf.Variable(tf.fill([32768], 1.5), name="w")  # an own piece (128 KiB)
        m.a = tf.Variable([av], name="a")
        return m

    with store.start_run("x") as run:
        c1 = run.save(mod(1.0), 1)
    with store.start_run("y") as run:
        c2 = run.save(mod(2.0), 1)
    return c1, c2


def _rot(store, area_kind: str, digest: str, offset: int) -> None:  # noqa: ANN001
    """Flip one byte of a stored object where it lives (the local file; the bucket's object
    and this host's cached copy)."""
    if area_kind == "local":
        p = store.files.path_of(digest)
        os.chmod(p, 0o644)
        with open(p, "r+b") as f:
            f.seek(offset)
            b = f.read(1)
            f.seek(offset)
            f.write(bytes([b[0] ^ 0xFF]))
        return
    area = store.files
    body = bytearray(area.client.get_object(Bucket=area.bucket, Key=area.key_of(digest))["Body"].read())
    body[offset] ^= 0xFF
    area.client.put_object(Bucket=area.bucket, Key=area.key_of(digest), Body=bytes(body))
    area.cache.discard(digest)


@pytest.mark.parametrize("forget", ["digests", "rows"])
def test_diff_never_records_a_digest_of_rotten_bytes(tmp_path: Path, backend: str, area_kind: str, forget: str,
                                                     request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """``digests``: a tensor's blake3 not recorded yet (only its crc32c); ``rows``: a checkpoint
    saved before tensor-level storage (no tensor rows at all)."""
    from sqlalchemy import text

    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache"))
    _, store = open_with_area(tmp_path, backend, area_kind, request)
    with store:
        c1, c2 = _two_runs_sharing_w(store)
        d1 = next(f for f in c1.files if f.role == "data")
        with store.backend.db.write() as conn:
            if forget == "digests":
                conn.execute(text("UPDATE file_tensors SET digest = NULL"))
            else:
                conn.execute(text("DELETE FROM file_tensors"))
        _rot(store, area_kind, d1.digest, 100)  # inside w's bytes
        with pytest.raises(CorruptFileError):
            store.read_variable(c1.ref, "model/w")
        with pytest.raises(CorruptFileError):
            store.diff_variables(c1.ref, c2.ref)
        # Nothing was recorded from the rotten bytes: reading is still refused.
        with store.backend.db.read() as conn:
            rows = conn.execute(text("SELECT digest FROM file_tensors WHERE file_digest = :d"), {"d": d1.digest}).all()
        assert all(r.digest is None for r in rows), rows
        with pytest.raises(CorruptFileError):
            store.read_variable(c1.ref, "model/w")
