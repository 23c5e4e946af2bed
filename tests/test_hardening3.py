"""Round 3 of the hostile user (issue 24): the S3 cache, digests recorded only from checked
bytes, imports that stay inside the named directory, crafted indexes, dead gc claims, the UI's
Host check, the search language, and TensorFlow's start-up noise on the command line.

Each test names the failure or note of the issue it pins down."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

import ckptstore
from ckptstore.errors import CorruptFileError, DiskFullError, InvalidOptionError
from tests.helpers.hardening import ckpt, ok, one_line_error, shown, tmpfs


@pytest.fixture(params=["local", "s3"])
def area_kind(request: pytest.FixtureRequest) -> str:
    return request.param


def _open(tmp_path: Path, backend: str, area_kind: str, request: pytest.FixtureRequest):  # noqa: ANN202
    uri = str(tmp_path / "store") if backend == "sqlite" else request.getfixturevalue("pg_server").new_database()
    if area_kind == "s3":
        root = f"s3://{request.getfixturevalue('s3_server').new_bucket()}/p"
    else:
        root = str(tmp_path / "files")
    return uri, ckptstore.open_store(uri, root=root)


@pytest.fixture
def s3store(tmp_path: Path, backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache"))
    uri, s = _open(tmp_path, backend, "s3", request)
    s.test_uri = uri  # type: ignore[attr-defined]
    try:
        yield s
    finally:
        s.close()


# =========================================================================== 1. the S3 cache


def _plant(path: Path, data: bytes, *, keep_mtime: bool = True) -> None:
    """Overwrite a cached file in place with bytes of the same size (as another tool or bit rot
    would), putting its mtime back so that only the content (and ctime) changed."""
    st = os.stat(path)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.write(data[: st.st_size])
    os.chmod(path, 0o444)
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _w(store, ref: str) -> str:  # noqa: ANN001
    names = [v.name for v in store.variables(ref)]
    return next(n for n in names if n.split("/")[-1].startswith("w") or "/w/" in n or n == "w")


def test_a_planted_cache_file_is_never_served(s3store, tiny_model, tmp_path: Path) -> None:  # noqa: ANN001
    with s3store.start_run("r") as run:
        ck = run.save(tiny_model(scale=2.0), 1)
    data = next(f for f in ck.files if f.role == "data")
    cached = s3store.files.cache.path_of(data.digest)
    assert cached.exists()  # the save adopted its staged file
    # Weights of another model, same size: planted over the cached copy.
    with s3store.start_run("other") as run:
        planted = run.save(tiny_model(scale=9.0), 1)
    pdata = next(f for f in planted.files if f.role == "data")
    _plant(cached, s3store.files.cache.path_of(pdata.digest).read_bytes())

    target = tiny_model(scale=0.0)
    s3store.restore(ck.ref, target)
    assert np.allclose(target.w.numpy(), 2.0)  # downloaded again, not the planted 9.0
    assert np.allclose(s3store.read_variable(ck.ref, _w(s3store, ck.ref)), 2.0)
    out = s3store.materialize(ck.ref, tmp_path / "out")
    assert Path(str(out) + ".data-00000-of-00001").read_bytes() == cached.read_bytes()


def test_verify_notices_a_damaged_cache_copy(s3store, tiny_model) -> None:  # noqa: ANN001
    with s3store.start_run("r") as run:
        ck = run.save(tiny_model(scale=2.0), 1)
    data = next(f for f in ck.files if f.role == "data")
    cached = s3store.files.cache.path_of(data.digest)
    _plant(cached, b"\xff" * os.path.getsize(cached))
    for full in (False, True):
        if full:
            s3store.restore(ck.ref, tiny_model(0.0))  # downloads it again
            _plant(cached, b"\x01" * os.path.getsize(cached))
        report = s3store.verify(full=full)
        assert not report.ok
        assert any("cached copy" in p.detail for p in report.problems), report.problems
        # The bad copy is gone; the bucket's copy is intact, so the next verify is clean.
        assert not cached.exists()
        assert s3store.verify(full=full).ok


def test_a_planted_cache_file_is_not_restored_by_the_cli(s3_server, tmp_path: Path, tiny_model) -> None:  # noqa: ANN001
    cache = tmp_path / "cache"
    os.environ["CKPTSTORE_CACHE_DIR"] = str(cache)
    try:
        with ckptstore.open_store(tmp_path / "store", root=f"s3://{s3_server.new_bucket()}/p") as s:
            with s.start_run("r") as run:
                ck = run.save(tiny_model(scale=2.0), 1)
            data = next(f for f in ck.files if f.role == "data")
            cached = s.files.cache.path_of(data.digest)
            good = cached.read_bytes()
    finally:
        del os.environ["CKPTSTORE_CACHE_DIR"]
    _plant(cached, b"\x00" * len(good))
    env = {"CKPTSTORE_CACHE_DIR": str(cache)}
    r = ckpt("verify", store=tmp_path / "store", env=env)
    assert r.returncode != 0 and "cached copy" in r.stdout + r.stderr, shown(r)
    _plant(cached, b"\x00" * len(good)) if cached.exists() else None
    ok(ckpt("restore", "r@1", "--to", str(tmp_path / "out"), store=tmp_path / "store", env=env))
    restored = next((tmp_path / "out").glob("*.data-*"))
    assert restored.read_bytes() == good


def test_an_old_cache_without_signatures_is_hashed_once(tmp_path: Path) -> None:
    from ckptstore.files.cache import ObjectCache
    from ckptstore.files.digest import digest_file

    src = tmp_path / "f"
    src.write_bytes(b"abc" * 1000)
    d, n = digest_file(src)
    c = ObjectCache(tmp_path / "c", limit=1 << 20)
    p = c.fill(d, n, lambda tmp: shutil.copyfile(src, tmp))
    sig = p.with_name(p.name + ".sig")
    sig.unlink()  # a cache written before signatures existed
    assert c.get(d, n) == p and sig.exists()
    os.chmod(p, 0o644)
    p.write_bytes(b"xyz" * 1000)
    assert c.get(d, n) is None and not p.exists()
    c.fill(d, n, lambda tmp: shutil.copyfile(src, tmp))
    os.chmod(p, 0o644)
    p.write_bytes(b"xyz" * 1000)
    with pytest.raises(CorruptFileError, match="cached copy"):
        c.checked(d, n)


def test_a_change_right_after_caching_is_still_seen(tmp_path: Path) -> None:
    """A write in the same clock tick as the signature would leave mtime and ctime as recorded
    where the kernel stamps coarsely: the signature is recorded only once the tick is over."""
    from ckptstore.files.cache import ObjectCache
    from ckptstore.files.digest import digest_file

    src = tmp_path / "f"
    src.write_bytes(b"abc" * 1000)
    d, n = digest_file(src)
    c = ObjectCache(tmp_path / "c", limit=1 << 20)
    for _ in range(20):
        p = c.fill(d, n, lambda tmp: shutil.copyfile(src, tmp))
        _plant(p, b"xyz" * 1000)  # at once, mtime put back
        assert c.get(d, n) is None and not p.exists()


# =========================================================================== 4 and a note: the cache's disk and size


@pytest.mark.parametrize("text", ["-5G", "-1", "nan", "inf", "5X"])
def test_a_negative_or_bogus_cache_size_is_refused(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ckptstore.files.cache import ObjectCache

    monkeypatch.setenv("CKPTSTORE_CACHE_SIZE", text)
    with pytest.raises(InvalidOptionError, match="size"):
        ObjectCache(tmp_path / "c")


def test_a_full_cache_disk_is_named_not_the_network(s3_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from tests.helpers.hardening import big_module

    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "writer-cache"))
    with ckptstore.open_store(tmp_path / "store", root=f"s3://{s3_server.new_bucket()}/p") as s:
        with s.start_run("big") as run:
            run.save(big_module(256 * 1024), 1)  # 1 MiB of data
    with tmpfs(tmp_path / "small", "256k") as mnt:
        monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(mnt))
        with ckptstore.open_store(tmp_path / "store") as s:
            with pytest.raises(DiskFullError) as info:
                s.materialize("big@1", tmp_path / "out")
        text = str(info.value)
        assert "space" in text and str(mnt) in text and "http" not in text, text
        r = ckpt("restore", "big@1", "--to", str(tmp_path / "out2"), store=tmp_path / "store", env={"CKPTSTORE_CACHE_DIR": str(mnt)})
        one_line_error(r, "space", str(mnt))


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
    _, store = _open(tmp_path, backend, area_kind, request)
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


# =========================================================================== 5 and 6. imports


def _vanilla(directory: Path, step: int, value: float = 1.0) -> Path:
    """A plain one-shard checkpoint ``ckpt-STEP`` (TensorFlow's format, written TF-free) with
    a float32 tensor ``w`` of four values."""
    from ckptstore.bundle_writer import write_bundle

    directory.mkdir(parents=True, exist_ok=True)
    prefix = directory / f"ckpt-{step}"
    write_bundle(prefix, [("w", 1, (4,), np.full(4, value, np.float32))])
    return prefix


def _craft_index(prefix: Path, shape: tuple[int, ...], *, size: int = 16, offset: int = 0) -> None:
    """Rewrite ``prefix``'s index so that ``w`` claims ``shape``, ``size`` and ``offset``."""
    from ckptstore import bundle_writer as BW

    def varint(n: int) -> bytes:
        return BW._varint(n & ((1 << 64) - 1))

    dims = b"".join(b"\x12" + varint(len(d)) + d for d in ((b"\x08" + varint(n)) if n else b"" for n in shape))
    entry = b"\x08\x01" + b"\x12" + varint(len(dims)) + dims
    entry += (b"\x20" + varint(offset) if offset else b"") + b"\x28" + varint(size)
    Path(str(prefix) + ".index").write_bytes(BW._table([(b"", BW._HEADER), (b"w", entry)]))


def _store_state(store) -> tuple:  # noqa: ANN001
    return tuple(r.name for r in store.runs()), sorted(store.files.digests())


@pytest.mark.parametrize("case", ["huge", "rank", "negative", "too-short", "past-the-end"])
def test_a_crafted_index_is_refused_before_tensorflow_reads_it(case: str, store, tmp_path: Path) -> None:  # noqa: ANN001
    src = tmp_path / "src"
    prefix = _vanilla(src, 1)
    shape, kw = {
        "huge": ((1 << 40, 1 << 40), {}),
        "rank": ((1,) * 100_000, {}),
        "negative": ((-1, 4), {}),
        "too-short": ((1 << 60,), {}),  # 4 EiB of float32 claimed by 16 bytes
        "past-the-end": ((4,), {"offset": 1 << 20}),
    }[case]
    _craft_index(prefix, shape, **kw)
    before = _store_state(store)
    with pytest.raises(ckptstore.errors.NoCheckpointFoundError, match="ckpt-1"):
        store.import_checkpoints(src, run="imported")
    assert _store_state(store) == before


@pytest.mark.parametrize("case", ["huge", "negative"])
def test_a_crafted_index_is_one_line_on_the_command_line(case: str, sqlite_store, tmp_path: Path) -> None:  # noqa: ANN001
    src = tmp_path / "src"
    _craft_index(_vanilla(src, 1), (1 << 40, 1 << 40) if case == "huge" else (-1,))
    r = ckpt("import", str(src), "--run", "imported", store=tmp_path / "store")
    one_line_error(r, "ckpt-1")
    assert "imported" not in [x.name for x in sqlite_store.runs()]


def test_import_refuses_a_symlinked_shard_or_index(store, tmp_path: Path) -> None:  # noqa: ANN001
    secret = tmp_path / "private" / "secret.bin"
    secret.parent.mkdir()
    secret.write_bytes(b"top secret bytes" * 4)
    for which in ("data", "index"):
        src = tmp_path / f"src-{which}"
        prefix = _vanilla(src, 1)
        target = Path(str(prefix) + (".data-00000-of-00001" if which == "data" else ".index"))
        real = tmp_path / f"real-{which}"
        shutil.move(target, real)
        os.symlink(real if which == "index" else secret, target)
        before = _store_state(store)
        with pytest.raises(ckptstore.errors.NoCheckpointFoundError, match="symlink"):
            store.import_checkpoints(src, run="imported")
        assert _store_state(store) == before


def test_import_ignores_a_state_file_pointing_outside_the_directory(store, tmp_path: Path) -> None:  # noqa: ANN001
    outside = _vanilla(tmp_path / "elsewhere", 7, value=7.0)
    src = tmp_path / "src"
    _vanilla(src, 1, value=1.0)
    (src / "checkpoint").write_text(
        f'model_checkpoint_path: "{outside}"\nall_model_checkpoint_paths: "{outside}"\n', encoding="utf-8"
    )
    cks = store.import_checkpoints(src, run="imported")
    assert [c.step for c in cks] == [1]
    assert np.allclose(store.read_variable("imported@1", "w"), 1.0)
    # A relative path climbing out is not followed either.
    (src / "checkpoint").write_text('model_checkpoint_path: "../elsewhere/ckpt-7"\n', encoding="utf-8")
    assert store.import_checkpoints(src, run="again")[0].step == 1


def test_import_refuses_a_data_file_that_does_not_match_its_index(store, tmp_path: Path) -> None:  # noqa: ANN001
    src = tmp_path / "src"
    prefix = _vanilla(src, 1, value=1.0)
    other = _vanilla(tmp_path / "other", 1, value=2.0)  # same size, other bytes
    shutil.copyfile(str(other) + ".data-00000-of-00001", str(prefix) + ".data-00000-of-00001")
    before = _store_state(store)
    with pytest.raises(ckptstore.errors.NoCheckpointFoundError, match="does not match its index"):
        store.import_checkpoints(src, run="imported")
    assert _store_state(store) == before


# =========================================================================== 12. TensorFlow's start-up noise


#: oneDNN forced on (its notice then appears on any CPU) and every C++ log level allowed: the
#: command line must still print only its output or its one error line.
NOISY = {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "0"}


@pytest.mark.slow
@pytest.mark.parametrize("env", [NOISY, {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}], ids=["level-0", "level-3"])
def test_commands_that_load_tensorflow_print_no_startup_noise(env: dict, sqlite_store, tmp_path: Path) -> None:  # noqa: ANN001
    src = tmp_path / "src"
    _vanilla(src, 3, value=3.0)
    store = tmp_path / "store"
    r = ckpt("import", str(src), "--run", "x", store=store, env=env)
    assert r.returncode == 0 and r.stderr == "", shown(r)
    r = ckpt("restore", "x@3", "--to", str(tmp_path / "out"), store=store, env=env)
    assert r.returncode == 0 and r.stderr == "", shown(r)
    # An error after TensorFlow was loaded: still exactly one line.
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "checkpoint").write_text("not ours\n")
    r = ckpt("restore", "x@3", "--to", str(tmp_path / "out2"), store=store, env=env)
    one_line_error(r)


def test_the_noise_filter_keeps_everything_else() -> None:
    from ckptstore.cli.tfnoise import without_noise

    noise = (
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        b"I0000 00:00:1796559514.299130   17437 port.cc:153] oneDNN custom operations are on. You may see ...\n"
        b"I1206 12:15:01.123456   1234 cpu_feature_guard.cc:227] This TensorFlow binary is optimized ...\n"
        b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.\n"
    )
    kept = b"E0000 00:00:1796559514.3   17437 cuda.cc:1] a real error\nsome warning from Python\n"
    assert without_noise(noise + kept + noise) == kept


def test_the_command_line_leaves_onednn_as_tensorflow_chooses(tmp_path: Path) -> None:
    """Numerics stay TensorFlow's: the filter never sets TF_ENABLE_ONEDNN_OPTS."""
    code = (
        "import os, sys\n"
        "from ckptstore.cli import tfnoise\n"
        "tfnoise.install()\n"
        "import tensorflow\n"
        "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), 'tensorflow' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["None", "True"]
    assert "oneDNN" not in r.stderr and "absl::InitializeLog" not in r.stderr, r.stderr


# =========================================================================== 3. a killed gc's claims


CLAIMER = """
import sys, time
import ckptstore
from ckptstore.metadata import intents as I
uri, digests = sys.argv[1], sys.argv[2].split(",")
with ckptstore.open_store(uri) as s:
    with s.backend.db.write() as conn:
        I.take_lock(conn)
        I.add(conn, digests, "delete")  # what gc's transaction C records before deleting
    print("claimed", flush=True)
    time.sleep(600)
"""


def _claim_in_child(uri: str, digests: list[str]):  # noqa: ANN202
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", CLAIMER, uri, ",".join(digests)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "claimed"
    return p


def test_a_save_does_not_wait_for_the_claims_of_a_killed_gc(s3store, tiny_model, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    import signal
    import time

    run = s3store.start_run("r")
    ck = run.save(tiny_model(scale=4.0), 1)
    digests = [f.digest for f in ck.files]
    child = _claim_in_child(s3store.test_uri, digests)
    child.send_signal(signal.SIGKILL)
    child.wait()
    started = time.monotonic()
    ck2 = run.save(tiny_model(scale=4.0), 2)  # the same bytes: the claimed digests
    assert time.monotonic() - started < 30
    assert sorted(f.digest for f in ck2.files) == sorted(digests)
    assert s3store.verify().ok
    with s3store.backend.db.read() as conn:
        from ckptstore.metadata import intents as I

        assert I.pending_count(conn) == 0
    run.finish()


def test_a_save_waiting_for_a_live_gc_says_what_it_waits_for(s3store, tiny_model, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    import logging
    import threading
    import time

    run = s3store.start_run("r")
    ck = run.save(tiny_model(scale=4.0), 1)
    child = _claim_in_child(s3store.test_uri, [f.digest for f in ck.files])
    done: list = []
    try:
        with caplog.at_level(logging.WARNING, logger="ckptstore"):
            t = threading.Thread(target=lambda: done.append(run.save(tiny_model(scale=4.0), 2)))
            t.start()
            deadline = time.monotonic() + 30
            while not any("waiting for gc" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
                time.sleep(0.1)
            line = next(r.getMessage() for r in caplog.records if "waiting for gc" in r.getMessage())
            assert f"pid {child.pid}" in line and "this host" in line and "lapses" in line, line
            assert not done  # still waiting: the claimer is alive
    finally:
        child.kill()
        child.wait()
    t.join(60)
    assert done and done[0].step == 2
    run.finish()


def test_a_claim_whose_pid_was_reused_is_dead(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys
    from datetime import datetime, timezone

    from ckptstore.metadata.intents import Claim

    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = socket.gethostname()[:255]
        five_min_ago = datetime.now(timezone.utc) - timedelta(minutes=5)
        assert Claim(1, "ab", host, later.pid, five_min_ago).dead()  # started after the claim
        assert not Claim(1, "ab", host, os.getpid(), datetime.now(timezone.utc)).dead()
        assert not Claim(1, "ab", "some-other-host", 999_999_999, five_min_ago).dead()  # cannot tell: lapses
    finally:
        later.kill()
        later.wait()


# =========================================================================== 7. the UI's Host check


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_every_loopback_bind_checks_the_host_header(host: str) -> None:
    pytest.importorskip("starlette")
    from ckptstore.ui.server import allowed_hosts, bind

    if host == "::1" and not _ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    sock = bind(host, 0)
    try:
        allowed = allowed_hosts(sock, host)
        assert allowed is not None, host
        assert "evil.example" not in allowed
        bound = sock.getsockname()[0]
        assert (f"[{bound}]" if ":" in bound else bound) in allowed
    finally:
        sock.close()
    any_sock = bind("0.0.0.0", 0)
    try:
        assert allowed_hosts(any_sock, "0.0.0.0") is None
    finally:
        any_sock.close()


@pytest.mark.slow
@pytest.mark.parametrize("host", ["::1", "127.0.0.2", "localhost"])
def test_the_ui_on_any_loopback_refuses_a_rebinding_page(host: str, children, sqlite_store, tmp_path: Path) -> None:  # noqa: ANN001
    import http.client
    import urllib.parse

    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    if host == "::1" and not _ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    from tests.test_ui_cli import start_ui, stop

    proc, url = start_ui(children, "--store", str(tmp_path / "store"), "ui", "--host", host, "--port", "0")
    try:
        u = urllib.parse.urlsplit(url)

        def status(host_header: str) -> int:
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
            c.putrequest("GET", "/api/runs", skip_host=True)
            c.putheader("Host", host_header)
            c.endheaders()
            r = c.getresponse()
            r.read()
            c.close()
            return r.status

        assert status(u.netloc) == 200  # the URL it printed answers
        assert status(f"localhost:{u.port}") == 200
        assert status(f"evil.example:{u.port}") == 400
    finally:
        err = stop(proc)
    assert "warning" not in err


# =========================================================================== 8-10 and notes: search


@pytest.fixture
def searched(store):  # noqa: ANN001, ANN201
    with store.start_run("123", params={"ß": 1, 'a"b': 2, "seed": 18446744073709551615, "lr": 0.01}) as run:
        run.log(100, loss=0.5)
    with store.start_run("other", params={"lr": 0.1}) as run:
        run.log(5, loss=0.9)
    return store


def _names(store, where: str, **kw) -> list[str]:  # noqa: ANN001
    return sorted(r.name for r in store.runs(where=where, **kw))


@pytest.mark.parametrize("where, expected", [
    ("name = 123", ["123"]),
    ("status = 1", []),
    ("last_step = '100'", ["123"]),
    ("last_step >= '6'", ["123"]),
    ("checkpoints = '0'", ["123", "other"]),
])
def test_a_value_of_the_other_type_means_the_same_on_both_databases(searched, where: str, expected: list) -> None:  # noqa: ANN001
    assert _names(searched, where) == expected


@pytest.mark.parametrize("where", ["created > 5", "ended = true", "last_step = 'abc'", "checkpoints < true"])
def test_a_value_that_cannot_compare_is_one_line(searched, where: str) -> None:  # noqa: ANN001
    from ckptstore.errors import QuerySyntaxError

    with pytest.raises(QuerySyntaxError):
        searched.runs(where=where)


@pytest.mark.parametrize("where", ['params."ß" = 1', "params.'a\"b' = 2", "params.seed = 18446744073709551615", "params.seed > 10000000000000000000"])
def test_params_with_any_name_or_a_huge_integer_match(searched, where: str) -> None:  # noqa: ANN001
    assert _names(searched, where) == ["123"]


def test_sorting_by_tag_is_one_line(searched) -> None:  # noqa: ANN001
    from ckptstore.errors import QuerySyntaxError

    with pytest.raises(QuerySyntaxError, match="tag"):
        searched.runs(order_by="tag")
    assert [r.name for r in searched.runs(order_by="params.seed")][0] == "123"


@pytest.mark.parametrize("where", [
    "(" * 400 + "name = 'x'" + ")" * 400,
    "not " * 400 + "name = 'x'",
    " or ".join(f"name = 'r{i}'" for i in range(1000)),
    "name = '" + "x" * 100_000 + "'",
    "name = 'a\x00b'",
    "name = 'a\ud800b'",
    "params.'a\x00' = 1",
])
def test_hostile_where_expressions_are_one_line(searched, where: str) -> None:  # noqa: ANN001
    from ckptstore.errors import QuerySyntaxError

    with pytest.raises(QuerySyntaxError) as info:
        searched.runs(where=where)
    assert "\n" not in str(info.value) and len(str(info.value)) < 1000


def test_many_ors_within_the_limit_still_work(searched) -> None:  # noqa: ANN001
    where = " or ".join(f"name = 'r{i}'" for i in range(190)) + " or name = 'other'"
    assert _names(searched, where) == ["other"]
    assert _names(searched, "(" * 40 + "name = 'other'" + ")" * 40) == ["other"]


def test_tokenizing_is_linear() -> None:
    import time

    from ckptstore.metadata.run_search import MAX_TEXT, QuerySyntaxError, tokenize

    text = "a " * (MAX_TEXT // 2)
    started = time.perf_counter()
    tokenize(text)
    assert time.perf_counter() - started < 1.0
    with pytest.raises(QuerySyntaxError, match="too long"):
        tokenize(text + "xx")


def test_search_errors_are_one_line_on_the_command_line(sqlite_store, tmp_path: Path) -> None:  # noqa: ANN001
    with sqlite_store.start_run("123", params={"ß": 1}) as run:
        run.log(1, loss=1.0)
    store = tmp_path / "store"
    r = ckpt("runs", "list", "--where", 'params."ß" = 1', "--json", store=store)
    assert r.returncode == 0 and '"123"' in r.stdout, shown(r)
    one_line_error(ckpt("runs", "list", "--sort", "tag", store=store), "tag", codes=(1, 2))
    r = ckpt("runs", "list", "--where", "params.seed = 18446744073709551615", store=store)
    assert r.returncode == 0 and "Traceback" not in r.stderr, shown(r)
    one_line_error(ckpt("runs", "list", "--where", "(" * 400 + "name = 'x'" + ")" * 400, store=store), "nested", codes=(1, 2))
    one_line_error(ckpt("runs", "list", "--where", " or ".join(f"name = 'r{i}'" for i in range(1000)), store=store), "comparisons", codes=(1, 2))


# =========================================================================== notes: the UI's inputs, undecodable names


def test_api_inputs_are_bounded(sqlite_store, tmp_path: Path) -> None:  # noqa: ANN001
    pytest.importorskip("starlette")
    import time

    from starlette.testclient import TestClient

    from ckptstore.ui.app import create_app

    with sqlite_store.start_run("a") as run:
        run.log(1, loss=1.0)
    ro = ckptstore.open_store(str(tmp_path / "store"), readonly=True)
    with ro, TestClient(create_app(ro)) as client:
        for path in ("/api/checkpoints", "/api/keys"):
            started = time.perf_counter()
            r = client.get(path + "?" + "&".join(f"run=r{i}" for i in range(3000)))
            assert r.status_code == 400 and "at most" in r.json()["error"], r.text
            assert time.perf_counter() - started < 2.0
            assert client.get(path + "?run=a&run=a").status_code == 200
        r = client.get("/api/runs?name=" + "x" * 10_000)
        assert r.status_code == 400 and "too long" in r.json()["error"]
        r = client.get("/api/runs?" + "&".join(f"tag=k{i}=v" for i in range(50)))
        assert r.status_code == 400


def test_a_run_name_that_is_not_utf8_is_shown_escaped_and_the_rest_listed(sqlite_store, tmp_path: Path) -> None:  # noqa: ANN001
    import json
    import sqlite3

    for name in ("good", "bad"):
        with sqlite_store.start_run(name) as run:
            run.log(1, loss=1.0)
    db = next(p for p in (tmp_path / "store").rglob("*") if p.is_file() and p.suffix in (".db", ".sqlite", ".sqlite3"))
    with sqlite3.connect(db) as raw:  # another tool writes bytes that are not UTF-8
        raw.execute("UPDATE runs SET name = CAST(x'6261640aff' AS TEXT) WHERE name = 'bad'")
    names = sorted(r.name for r in sqlite_store.runs())
    assert names == ["bad\n\\xff", "good"]
    r = ckpt("runs", "list", store=tmp_path / "store")
    assert r.returncode == 0 and "good" in r.stdout and "\\xff" in r.stdout, shown(r)
    r = ckpt("runs", "list", "--json", store=tmp_path / "store")
    assert r.returncode == 0, shown(r)
    assert sorted(x["name"] for x in json.loads(r.stdout)) == ["bad\n\\xff", "good"]
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from ckptstore.ui.app import create_app

    with ckptstore.open_store(str(tmp_path / "store"), readonly=True) as ro, TestClient(create_app(ro)) as client:
        r = client.get("/api/runs")
        assert r.status_code == 200 and sorted(x["name"] for x in r.json()) == ["bad\n\\xff", "good"]


def test_the_cache_keeps_to_its_limit_except_for_files_being_read(tmp_path: Path) -> None:
    from ckptstore.files.cache import ObjectCache
    from ckptstore.files.digest import digest_file

    c = ObjectCache(tmp_path / "c", limit=3000)
    files = []
    for i in range(6):
        src = tmp_path / f"f{i}"
        src.write_bytes(bytes([i]) * 1000)
        d, n = digest_file(src)
        files.append((d, n, src))
    d0, n0, s0 = files[0]
    with c.hold(d0, n0, lambda tmp: shutil.copyfile(s0, tmp)) as held:
        for d, n, src in files[1:]:
            c.fill(d, n, lambda tmp, src=src: shutil.copyfile(src, tmp))
            assert c.usage() <= 3000 + 1000  # the limit, plus the one file being read
        assert held.read_bytes() == s0.read_bytes()  # a held file is never evicted
    c.fill(files[-1][0], files[-1][1], lambda tmp: shutil.copyfile(files[-1][2], tmp))
    c.evict()
    assert c.usage() <= 3000


def test_restores_keep_the_s3_cache_within_its_limit(s3_server, tmp_path: Path, tiny_model, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from tests.helpers.hardening import big_module

    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "writer"))
    with ckptstore.open_store(tmp_path / "store", root=f"s3://{s3_server.new_bucket()}/p") as s:
        with s.start_run("big") as run:
            for step in range(1, 5):
                run.save(big_module(64 * 1024, fill=float(step)), step)  # 256 KiB each
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "reader"))
    monkeypatch.setenv("CKPTSTORE_CACHE_SIZE", "600K")
    with ckptstore.open_store(tmp_path / "store") as s:
        for step in range(1, 5):
            target = big_module(64 * 1024, fill=0.0)
            s.restore(f"big@{step}", target)
            assert float(target.w.numpy()[0]) == float(step)
            assert s.files.cache.usage() <= 600 * 1024 + 300 * 1024
        s.files.cache.evict()
        assert s.files.cache.usage() <= 600 * 1024


def test_a_changed_materialized_copy_is_made_again_before_its_path_is_handed_out(store, tiny_model) -> None:  # noqa: ANN001
    from ckptstore.flows import materialized

    with store.start_run("r") as run:
        ck = run.save(tiny_model(scale=2.0), 1)
    prefix = materialized.cached_prefix(store.backend, ck.ref)
    data = next(prefix.parent.glob(prefix.name + ".data-*"))
    good = data.read_bytes()
    _plant(data, b"\x00" * len(good))
    again = materialized.cached_prefix(store.backend, ck.ref)
    assert again == prefix
    assert next(again.parent.glob(again.name + ".data-*")).read_bytes() == good
    # An untouched copy is reused as it is (not written again).
    ino = os.stat(next(again.parent.glob(again.name + ".data-*"))).st_ino
    materialized.cached_prefix(store.backend, ck.ref)
    assert os.stat(next(again.parent.glob(again.name + ".data-*"))).st_ino == ino
