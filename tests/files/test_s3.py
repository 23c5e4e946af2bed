"""The storage scenarios on both object areas (a local directory and an S3 bucket on moto's
server) and both databases: save, restore, verify, gc, crash and corruption, plus what only a
bucket has (a shared cache, the grace period, faults of the server)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

import ckptstore
from ckptstore.errors import CorruptFileError, ObjectStoreError, StoreConfigError
from tests.helpers.s3 import FAKE_SECRET


@pytest.fixture
def ostore(area_kind: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """An open, empty store on (local | s3) x (sqlite | postgres)."""
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache"))
    uri = str(tmp_path / "store") if backend == "sqlite" else request.getfixturevalue("pg_server").new_database()
    if area_kind == "s3":
        server = request.getfixturevalue("s3_server")
        root = f"s3://{server.new_bucket()}/team/a"
    else:
        root = str(tmp_path / "files")
    s = ckptstore.open_store(uri, root=root)
    s.test_uri = uri  # type: ignore[attr-defined]
    try:
        yield s
    finally:
        s.close()


def _save(store, model, step: int = 1):  # noqa: ANN001, ANN202
    with store.start_run("r") if not store.runs() else _existing(store) as run:
        return run.save(model, step=step)


class _existing:
    def __init__(self, store) -> None:  # noqa: ANN001
        self.run = store.run("r")

    def __enter__(self):  # noqa: ANN204
        return self.run

    def __exit__(self, *a: object) -> None:
        pass


def test_save_restore_verify_gc(ostore, tiny_model, tmp_path: Path) -> None:  # noqa: ANN001
    m = tiny_model(scale=2.0)
    ck = _save(ostore, m)
    target = tiny_model(scale=0.0)
    ostore.restore(ck.ref, target)
    assert np.allclose(target.w.numpy(), 2.0)
    names = [v.name for v in ostore.variables(ck.ref)]
    w = next(n for n in names if n.split("/")[-1].startswith("w") or "/w/" in n or n == "w")
    assert np.allclose(ostore.read_variable(ck.ref, w), 2.0)
    prefix = ostore.materialize(ck.ref, tmp_path / "plain")
    assert Path(str(prefix) + ".index").exists()
    report = ostore.verify()
    assert report.ok, report.problems
    gc = ostore.gc(grace=timedelta(0))
    assert gc.removed_objects == 0
    assert ostore.verify().ok


def test_gc_removes_orphans_past_grace_only(ostore, tiny_model, area_kind: str) -> None:  # noqa: ANN001
    run = ostore.start_run("r")
    run.save(tiny_model(scale=1.0), step=1)
    ck2 = run.save(tiny_model(scale=3.0), step=2)
    run.finish()
    n_before = len(list(ostore.files.digests()))
    ostore.delete_checkpoint(ck2.ref)
    if area_kind == "s3":
        # Within the grace period nothing goes; past it, the orphans do.
        assert ostore.gc().removed_objects == 0
        dry = ostore.gc(grace=timedelta(0), dry_run=True)
        assert dry.removed_objects >= 1 and len(list(ostore.files.digests())) == n_before
    report = ostore.gc(grace=timedelta(0))
    # A local area deletes at once under its lock; a bucket leaves it to gc.
    assert report.removed_objects == (dry.removed_objects if area_kind == "s3" else 0)
    assert len(list(ostore.files.digests())) < n_before
    assert ostore.verify().ok
    target = tiny_model(scale=0.0)
    ostore.restore("r@1", target)
    assert np.allclose(target.w.numpy(), 1.0)


def test_verify_reports_and_restore_refuses_damaged_object(ostore, tiny_model, area_kind: str, s3_server_opt) -> None:  # noqa: ANN001
    ck = _save(ostore, tiny_model(scale=2.0))
    data = next(f for f in ck.files if f.role == "data")
    _damage(ostore, area_kind, data.digest, s3_server_opt)
    report = ostore.verify()
    assert not report.ok
    assert any(p.kind == "corrupt" for p in report.problems)
    with pytest.raises(CorruptFileError):
        ostore.restore(ck.ref, tiny_model(scale=0.0), verify="full")


@pytest.fixture
def s3_server_opt(area_kind: str, request: pytest.FixtureRequest):  # noqa: ANN201
    return request.getfixturevalue("s3_server") if area_kind == "s3" else None


def _damage(store, area_kind: str, digest: str, server) -> None:  # noqa: ANN001
    if area_kind == "local":
        p = store.files.path_of(digest)
        os.chmod(p, 0o644)
        with open(p, "r+b") as f:
            f.write(b"garbage!")
        return
    area = store.files
    body = area.client.get_object(Bucket=area.bucket, Key=area.key_of(digest))["Body"].read()
    server.client().put_object(Bucket=area.bucket, Key=area.key_of(digest), Body=b"garbage!" + body[8:])
    area.cache.discard(digest)


def test_second_restore_reads_nothing_from_the_bucket(s3_server, tmp_path: Path, tiny_model, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache-writer"))
    root = f"s3://{s3_server.new_bucket()}/p"
    with ckptstore.open_store(tmp_path / "store", root=root) as s:
        ck = _save(s, tiny_model(scale=5.0))
    # Another host: its own cache, the database alone names the bucket.
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache-reader"))
    with ckptstore.open_store(tmp_path / "store") as s:
        assert str(s.root) == root
        target = tiny_model(scale=0.0)
        s.restore(ck.ref, target)
        assert np.allclose(target.w.numpy(), 5.0)
        first = s.files.cache.downloads
        assert first >= 1
        before = dict(s.files.requests)
        s.restore(ck.ref, tiny_model(scale=0.0))
        assert s.files.cache.downloads == first
        assert s.files.requests.get("GetObject", 0) == before.get("GetObject", 0)


def test_cache_stays_within_its_limit(tmp_path: Path) -> None:
    from ckptstore.files import cache as C
    from ckptstore.files.digest import digest_file

    c = C.ObjectCache(tmp_path / "c", limit=3000)
    old = C.IN_USE_S
    C.IN_USE_S = 0.0
    try:
        for i in range(5):
            src = tmp_path / f"f{i}"
            src.write_bytes(bytes([i]) * 1000)
            d, n = digest_file(src)
            c.fill(d, n, lambda tmp, src=src: shutil.copyfile(src, tmp))
        assert c.usage() <= 3000
        assert c.downloads == 5
    finally:
        C.IN_USE_S = old


def test_cache_refuses_a_download_that_does_not_match(tmp_path: Path) -> None:
    from ckptstore.files.cache import ObjectCache

    c = ObjectCache(tmp_path / "c", limit=1 << 20)
    with pytest.raises(CorruptFileError):
        c.fill("ab" * 32, 3, lambda tmp: tmp.write_bytes(b"xyz"))
    assert not list((tmp_path / "c" / "objects").rglob("*")) if (tmp_path / "c" / "objects").exists() else True


def test_root_is_recorded_and_a_different_one_refused(s3_server, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache"))
    b = s3_server.new_bucket()
    ckptstore.open_store(tmp_path / "s", root=f"s3://{b}/x").close()
    with pytest.raises(StoreConfigError, match="root copy"):
        ckptstore.open_store(tmp_path / "s", root=f"s3://{b}/y")


@pytest.mark.parametrize("bad", ["s3://Bad_Bucket/x", "s3://u:pw@bucket/x", "s3://bucket/a/../b"])
def test_malformed_bucket_roots_are_one_line(bad: str, tmp_path: Path) -> None:
    with pytest.raises(StoreConfigError) as e:
        ckptstore.open_store(tmp_path / "s", root=bad)
    assert "pw" not in str(e.value)


def test_missing_bucket_and_wrong_credentials_are_one_line(s3_server, tmp_path: Path, tiny_model, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache"))
    with ckptstore.open_store(tmp_path / "s1", root="s3://no-such-bucket-here/x") as s:
        with pytest.raises(StoreConfigError, match="does not exist"):
            _save(s, tiny_model())
        assert s.checkpoints("r") == []


@pytest.mark.slow
def test_http_500_and_slowdown_are_retried(s3_server, tmp_path: Path, tiny_model, monkeypatch) -> None:  # noqa: ANN001
    from tests.helpers.s3 import FaultProxy

    proxy = FaultProxy(s3_server.endpoint)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache"))
        with ckptstore.open_store(tmp_path / "s", root=f"s3://{s3_server.new_bucket()}/p") as s:
            proxy.inject("500", 1, "PUT")
            proxy.inject("slowdown", 1, "PUT")
            ck = _save(s, tiny_model(scale=4.0))
            monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache2"))
        with ckptstore.open_store(tmp_path / "s") as s:
            proxy.inject("slowdown", 1, "GET")
            proxy.inject("truncate", 1, "GET")
            target = tiny_model(scale=0.0)
            s.restore(ck.ref, target)
            assert np.allclose(target.w.numpy(), 4.0)
            # Past the retries: one line, nothing committed.
            proxy.inject("500", 50, "PUT")
            with pytest.raises(ObjectStoreError, match="InternalError|500") as e:
                s.run("r").save(tiny_model(scale=6.0), step=2)
            assert "\n" not in str(e.value) and FAKE_SECRET not in str(e.value)
            assert [c.step for c in s.checkpoints("r")] == [1]
            assert s.verify().ok
    finally:
        proxy.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_many_hosts_share_one_database_and_one_bucket(pg_server, s3_server, tmp_path: Path) -> None:
    """4 hosts (own HOME, cache, staging) save, restore, tag, delete and gc at once, with
    SIGKILLs: nothing committed is lost or broken, and gc past the grace leaves no orphan."""
    from tests.helpers.s3_hosts import run_hosts

    uri = pg_server.new_database()
    result = run_hosts(uri, f"s3://{s3_server.new_bucket()}/shared", tmp_path, hosts=4, seconds=45, kill_every=10)
    assert result.ok, result
    assert result.checkpoints > 0 and result.kills > 0


@pytest.fixture
def proxied(s3_server, tmp_path: Path, monkeypatch):  # noqa: ANN001, ANN201
    """(proxy, root): a bucket reached through a FaultProxy in front of moto."""
    from tests.helpers.s3 import FaultProxy

    proxy = FaultProxy(s3_server.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache"))
    try:
        yield proxy, f"s3://{s3_server.new_bucket()}/p"
    finally:
        proxy.close()


def _big_module(mb: int):  # noqa: ANN202
    import tensorflow as tf

    m = tf.Module()
    m.v = tf.Variable(tf.fill([mb * 256, 1024], 3.0))
    return m


@pytest.mark.slow
def test_server_gone_mid_upload_commits_nothing(proxied, tmp_path: Path, tiny_model) -> None:  # noqa: ANN001
    proxy, root = proxied
    with ckptstore.open_store(tmp_path / "s", root=root) as s:
        run = s.start_run("r")
        run.save(tiny_model(scale=1.0), step=1)
        proxy.go_down_after(4)  # a few HEADs and parts of the 40 MB upload, then nothing
        with pytest.raises(ObjectStoreError) as e:
            run.save(_big_module(40), step=2)
        assert "\n" not in str(e.value) and "did not answer" in str(e.value)
        proxy.come_back()
        assert [c.step for c in s.checkpoints("r")] == [1]
        with s.read() as conn:
            from ckptstore.metadata import intents as I

            assert I.pending_count(conn) == 0
        assert s.verify().ok or all(p.kind == "unexpected" for p in s.verify().problems)
        s.gc(grace=timedelta(0))
        assert s.verify().ok


@pytest.mark.slow
def test_server_gone_mid_download_is_one_line_and_nothing_cached(proxied, tmp_path: Path) -> None:  # noqa: ANN001
    proxy, root = proxied
    with ckptstore.open_store(tmp_path / "s", root=root) as s:
        ck = s.start_run("r").save(_big_module(40), step=1)
    os.environ["CKPTSTORE_CACHE_DIR"] = str(tmp_path / "cache-2")  # monkeypatch restores it
    with ckptstore.open_store(tmp_path / "s") as s:
        target = _big_module(40)
        target.v.assign(target.v * 0)
        proxy.go_down_after(3)
        with pytest.raises(ObjectStoreError) as e:
            s.restore(ck.ref, target)
        assert "\n" not in str(e.value)
        assert float(target.v.numpy()[0, 0]) == 0.0  # untouched
        assert not list((tmp_path / "cache-2" / "cache" / "objects").rglob("*-*")) if (tmp_path / "cache-2" / "cache" / "objects").exists() else True
        proxy.come_back()
        s.restore(ck.ref, target)
        assert float(target.v.numpy()[0, 0]) == 3.0


def test_garbled_object_is_replaced_by_the_next_save_of_that_content(s3_server, tmp_path: Path, tiny_model, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache"))
    with ckptstore.open_store(tmp_path / "s", root=f"s3://{s3_server.new_bucket()}/p") as s:
        run = s.start_run("r")
        ck = run.save(tiny_model(scale=2.0), step=1)
        data = next(f for f in ck.files if f.role == "data")
        _damage(s, "s3", data.digest, s3_server)
        run.save(tiny_model(scale=2.0), step=2)  # same bytes: the fresh copy replaces the bad one
        assert s.verify().ok


_SAVER = """
import sys, ckptstore
from tests.helpers.models import tiny_module
s = ckptstore.open_store(sys.argv[1])
try:
    s.start_run("r")
except ckptstore.errors.ConflictError:
    pass
s.run("r").save(tiny_module(scale=float(sys.argv[2])), step=int(sys.argv[2]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("point", ["staged", "moving", "moved", "committed"])
def test_sigkill_at_each_point_of_an_s3_save(point: str, s3_server, tmp_path: Path, tiny_model, monkeypatch) -> None:  # noqa: ANN001
    import signal

    from ckptstore.metadata import queries as Q

    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache"))
    ckptstore.open_store(tmp_path / "s", root=f"s3://{s3_server.new_bucket()}/p").close()
    repo = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": repo, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", _SAVER, str(tmp_path / "s"), "1"], env=env, check=True, timeout=300)
    r = subprocess.run([sys.executable, "-c", _SAVER, str(tmp_path / "s"), "2"], env={**env, "CKPTSTORE_FAULT": point}, timeout=300)
    assert r.returncode == -signal.SIGKILL
    with ckptstore.open_store(tmp_path / "s") as s:
        assert [c.step for c in s.checkpoints("r")] == ([1, 2] if point == "committed" else [1])
        report = s.verify()
        assert not [p for p in report.problems if p.kind not in ("unexpected", "stale-staging")]
        s.gc(grace=timedelta(0))
        with s.read() as conn:
            known = Q.existing_blobs(conn)
        assert set(s.files.digests()) == known  # 0 orphans, nothing referenced is missing
        assert s.files.stale_staging() == []
        for c in s.checkpoints("r"):
            target = tiny_model(scale=0.0)
            s.restore(c.ref, target, verify="full")
            assert np.allclose(target.w.numpy(), float(c.step))


def _s3_store(s3_server, tmp_path: Path, monkeypatch):  # noqa: ANN001, ANN202
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache"))
    return ckptstore.open_store(tmp_path / "s", root=f"s3://{s3_server.new_bucket()}/p")


def test_gc_keeps_an_object_an_upload_intent_names(s3_server, tmp_path: Path, tiny_model, monkeypatch) -> None:  # noqa: ANN001
    from ckptstore.metadata import intents as I

    with _s3_store(s3_server, tmp_path, monkeypatch) as s:
        run = s.start_run("r")
        ck = run.save(tiny_model(scale=2.0), step=1)
        digests = [f.digest for f in ck.files]
        s.delete_checkpoint(ck.ref)
        with s.write() as conn:  # a save on another host is about to reuse these objects
            ids = I.add(conn, digests, "upload")
        assert s.gc(grace=timedelta(0)).removed_objects == 0
        assert set(digests) <= set(s.files.digests())
        with s.write() as conn:
            I.remove(conn, ids)
        assert s.gc(grace=timedelta(0)).removed_objects == len(set(digests))


@pytest.mark.slow
def test_a_save_waits_while_gc_claims_its_objects(s3_server, tmp_path: Path, tiny_model, monkeypatch) -> None:  # noqa: ANN001
    import threading

    from ckptstore.metadata import intents as I

    with _s3_store(s3_server, tmp_path, monkeypatch) as s:
        run = s.start_run("r")
        ck = run.save(tiny_model(scale=2.0), step=1)
        s.delete_checkpoint(ck.ref)
        with s.write() as conn:  # gc on another host is deleting them right now
            ids = I.add(conn, [f.digest for f in ck.files], "delete")
        model = tiny_model(scale=2.0)
        done: list[object] = []
        t = threading.Thread(target=lambda: done.append(run.save(model, step=2)))
        t.start()
        t.join(1.5)
        assert t.is_alive() and not done  # waiting for the claim to go
        for f in ck.files:  # ... which deletes the objects, then drops the claim
            s.files.delete([f.digest])
        with s.write() as conn:
            I.remove(conn, ids)
        t.join(60)
        assert done
        target = tiny_model(scale=0.0)
        s.restore("r@2", target, verify="full")
        assert np.allclose(target.w.numpy(), 2.0)


def test_an_object_gone_from_the_bucket_is_reported_and_refused(s3_server, tmp_path: Path, tiny_model, monkeypatch) -> None:  # noqa: ANN001
    from ckptstore.errors import MissingFileError

    with _s3_store(s3_server, tmp_path, monkeypatch) as s:
        ck = s.start_run("r").save(tiny_model(scale=2.0), step=1)
        data = next(f for f in ck.files if f.role == "data")
        s3_server.client().delete_object(Bucket=s.files.bucket, Key=s.files.key_of(data.digest))
        s.files.cache.discard(data.digest)
        report = s.verify()
        assert [p.kind for p in report.problems] == ["missing"]
        with pytest.raises(MissingFileError) as e:
            s.restore(ck.ref, tiny_model(scale=0.0))
        assert "missing" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow
def test_a_bucket_removed_under_the_store_is_one_line(s3_server, tmp_path: Path, tiny_model, monkeypatch) -> None:  # noqa: ANN001
    with _s3_store(s3_server, tmp_path, monkeypatch) as s:
        ck = s.start_run("r").save(tiny_model(scale=2.0), step=1)
        bucket = s.files.bucket
        c = s3_server.client()
        for obj in c.list_objects_v2(Bucket=bucket).get("Contents", []):
            c.delete_object(Bucket=bucket, Key=obj["Key"])
        c.delete_bucket(Bucket=bucket)
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache-other"))
    with ckptstore.open_store(tmp_path / "s") as s:
        with pytest.raises(StoreConfigError, match="does not exist"):
            s.restore(ck.ref, tiny_model(scale=0.0))
        with pytest.raises(StoreConfigError, match="does not exist"):
            s.verify()


_FILLER = """
import sys, time
from pathlib import Path
from ckptstore.files.cache import ObjectCache
root, digest, size, src, log = sys.argv[1:6]
def fetch(tmp):
    with open(log, "a") as f:
        f.write("x")
    time.sleep(0.3)
    tmp.write_bytes(Path(src).read_bytes())
p = ObjectCache(root, limit=1 << 30).fill(digest, int(size), fetch)
assert p.read_bytes() == Path(src).read_bytes()
"""


def test_processes_sharing_a_cache_download_an_object_once(tmp_path: Path) -> None:
    from ckptstore.files.digest import digest_file

    src = tmp_path / "src"
    src.write_bytes(os.urandom(100_000))
    digest, size = digest_file(src)
    log = tmp_path / "log"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [
        subprocess.Popen([sys.executable, "-c", _FILLER, str(tmp_path / "cache"), digest, str(size), str(src), str(log)], env=env)
        for _ in range(4)
    ]
    assert [p.wait(60) for p in procs] == [0, 0, 0, 0]
    assert log.read_text() == "x"


def test_du_counts_what_the_area_holds(ostore, tiny_model) -> None:  # noqa: ANN001
    run = ostore.start_run("r")
    cks = [run.save(tiny_model(scale=1.0), step=1), run.save(tiny_model(scale=1.0), step=2), run.save(tiny_model(scale=4.0), step=3)]
    run.finish()
    per_run, whole = ostore.space()
    assert (per_run.run, per_run.checkpoints, whole.run) == ("r", 3, None)
    assert per_run.logical_bytes == whole.logical_bytes == sum(f.size for c in cks for f in c.files)
    # Stored: the distinct objects, exactly what the area (directory or bucket) holds.
    held = sum(ostore.files.size_of(d) for d in ostore.files.digests())
    assert per_run.stored_bytes == whole.stored_bytes == held
    assert held < per_run.logical_bytes  # step 2 is step 1's bytes again


def test_the_digest_follower_follows_a_tf2_data_file(tmp_path: Path) -> None:
    """tf.train.Checkpoint writes its data file as <prefix>_temp/part-...tempstateN and renames
    it when it merges the shards: the follower hashes it there, so a TF2 save does not read
    its data file a second time, and what it vouches for is the final file's digest."""
    import time

    from ckptstore.files.digest import DigestFollower, digest_file

    follower = DigestFollower(tmp_path, "model.ckpt-1")
    temp = tmp_path / "model.ckpt-1_temp"
    temp.mkdir()
    part = temp / "part-00000-of-00001.data-00000-of-00001.tempstate123"
    with open(part, "wb") as f:
        f.write(os.urandom(1 << 20))
        f.flush()
        deadline = time.monotonic() + 30

        def opened() -> int:
            found = 0
            for fd in os.listdir("/proc/self/fd"):
                try:
                    found += os.path.realpath(f"/proc/self/fd/{fd}") == str(part)
                except OSError:  # closed meanwhile
                    pass
            return found

        # This test's own handle is one; the follower's is the second (counting only ours let
        # the rename come before the follower looked, and it then found nothing to follow).
        while opened() < 2:
            assert time.monotonic() < deadline, "the follower never opened the file"
            time.sleep(0.01)
        f.write(os.urandom(1 << 20))  # written after the follower started
    final = tmp_path / "model.ckpt-1.data-00000-of-00001"
    os.rename(part, final)
    assert follower.finish() == {final.name: digest_file(final)}
