"""Faults of an S3 server seen by a user: wrong credentials against a server that checks them
(a separate moto server enforcing signatures), and every fault of the issue through the command
line: one ``error:`` line, exit 1, no traceback, no secret, nothing committed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import ckptstore
from ckptstore.errors import StoreConfigError
from ckptstore.metadata import intents as I
from tests.helpers.cli import cli, fails, ok
from tests.helpers.s3 import FAKE_SECRET, AuthMotoServer, FaultProxy

WRONG_SECRET = "wrong-secret-must-never-show-0123456789"


@pytest.fixture(scope="module")
def auth_server():
    """A moto server of its own that refuses wrong keys (the shared one accepts any)."""
    server = AuthMotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def authed(auth_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """(server, store directory holding one checkpoint r@1 in the enforcing server's bucket)."""
    for k, v in auth_server.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache-writer"))
    root = f"s3://{auth_server.bucket}/{tmp_path.name}"
    from tests.helpers.models import tiny_module

    with ckptstore.open_store(tmp_path / "s", root=root) as s:
        with s.start_run("r") as run:
            run.save(tiny_module(scale=2.0), step=1)
    return auth_server, tmp_path / "s"


def _wrong(server: AuthMotoServer, which: str) -> dict[str, str]:
    if which == "secret":  # a real key id with a wrong secret: SignatureDoesNotMatch
        return server.env(secret=WRONG_SECRET)
    return server.env(key_id="AKIAUNKNOWNUNKNOWN00", secret=WRONG_SECRET)  # InvalidAccessKeyId


def _no_secret(text: str, server: AuthMotoServer) -> None:
    for s in (WRONG_SECRET, server.secret, FAKE_SECRET):
        assert s not in text


@pytest.mark.slow
@pytest.mark.parametrize("which", ["secret", "key"])
def test_wrong_credentials_are_refused_in_one_line_and_commit_nothing(authed, which: str, tmp_path: Path, monkeypatch, tiny_model) -> None:  # noqa: ANN001
    server, store = authed
    for k, v in _wrong(server, which).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache-other-host"))
    with ckptstore.open_store(store) as s:
        with pytest.raises(StoreConfigError) as e:
            s.run("r").save(tiny_model(scale=3.0), step=2)
        msg = str(e.value)
        assert "denied" in msg and "credentials" in msg and "\n" not in msg
        _no_secret(msg, server)
        assert [c.step for c in s.checkpoints("r")] == [1]
        with s.read() as conn:
            assert I.pending_count(conn) == 0
        with pytest.raises(StoreConfigError, match="denied"):
            s.restore("r@1", tiny_model(scale=0.0))
        with pytest.raises(StoreConfigError, match="denied"):
            s.verify()
        with pytest.raises(StoreConfigError, match="denied"):
            s.gc()
    # The right key again: everything is as it was.
    for k, v in server.env().items():
        monkeypatch.setenv(k, v)
    with ckptstore.open_store(store) as s:
        assert s.verify().ok
        target = tiny_model(scale=0.0)
        s.restore("r@1", target)
        assert np.allclose(target.w.numpy(), 2.0)


@pytest.mark.slow
def test_wrong_credentials_on_the_command_line(authed, tmp_path: Path) -> None:
    server, store = authed
    import tensorflow as tf

    from tests.helpers.models import tiny_module

    tf.train.Checkpoint(m=tiny_module(scale=5.0)).save(str(tmp_path / "tfdir" / "ckpt"))
    for which in ("secret", "key"):
        env = {**_wrong(server, which), "CKPTSTORE_CACHE_DIR": str(tmp_path / f"cache-{which}")}
        for args in (["verify"], ["gc", "--grace", "0s"], ["restore", "r@1", "--to", str(tmp_path / f"out-{which}")],
                     ["import", str(tmp_path / "tfdir"), "--run", "imported"]):
            line = fails(*args, store=store, env=env)
            assert "denied" in line and "check the AWS credentials" in line, (args, line)
            _no_secret(line, server)
        assert not (tmp_path / f"out-{which}").exists()
    # Nothing was committed by the refused import; metadata-only commands need no bucket.
    env = {**server.env(), "CKPTSTORE_CACHE_DIR": str(tmp_path / "cache-ok")}
    with ckptstore.open_store(store) as s:
        assert [c.step for c in s.checkpoints("r")] == [1]
        assert s.checkpoints("imported") == []
    assert "ok" in ok("verify", store=store, env=env)


# --------------------------------------------------------------------------- the other faults, on the CLI


@pytest.fixture
def shared_store(s3_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """(server, store directory with r@1 in a fresh bucket of the shared moto server)."""
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache-writer"))
    from tests.helpers.models import tiny_module

    with ckptstore.open_store(tmp_path / "s", root=f"s3://{s3_server.new_bucket()}/p") as s:
        with s.start_run("r") as run:
            run.save(tiny_module(scale=2.0), step=1)
    return s3_server, tmp_path / "s"


@pytest.mark.slow
def test_a_stopped_server_and_http_errors_are_one_line_on_the_command_line(shared_store, tmp_path: Path) -> None:
    from tests.helpers.postgres import free_port

    server, store = shared_store
    base = {"CKPTSTORE_CACHE_DIR": str(tmp_path / "cache-cli"), "AWS_MAX_ATTEMPTS": "2"}
    # Nobody listens there: the server is down.
    down = {**base, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    for args in (["verify"], ["restore", "r@1", "--to", str(tmp_path / "out1")]):
        line = fails(*args, store=store, env=down)
        assert "did not answer" in line and FAKE_SECRET not in line, line
    proxy = FaultProxy(server.endpoint)
    try:
        env = {**base, "AWS_ENDPOINT_URL": proxy.endpoint}
        proxy.inject("500", 50)
        line = fails("restore", "r@1", "--to", str(tmp_path / "out2"), store=store, env=env)
        assert ("InternalError" in line or "answered 500" in line) and "after retries" in line, line
        proxy.faults.clear()
        proxy.inject("slowdown", 50)
        line = fails("verify", store=store, env=env)
        assert ("SlowDown" in line or "answered 503" in line) and "after retries" in line, line
        proxy.faults.clear()
        # Stopped in the middle of a download: a few requests answered, then nothing.
        proxy.go_down_after(2)
        line = fails("restore", "r@1", "--to", str(tmp_path / "out3"), store=store, env=env)
        assert "did not answer" in line, line
        proxy.come_back()
        # Stopped in the middle of a save (an import: HEADs answered, the uploads not).
        import tensorflow as tf

        from tests.helpers.models import tiny_module

        tf.train.Checkpoint(m=tiny_module(scale=5.0)).save(str(tmp_path / "tfdir" / "ckpt"))
        proxy.go_down_after(3)
        line = fails("import", str(tmp_path / "tfdir"), "--run", "late", store=store, env=env)
        assert "did not answer" in line, line
        proxy.come_back()
        with ckptstore.open_store(store) as s:
            assert [c.step for c in s.checkpoints("r")] == [1]
            assert "late" not in [r.name for r in s.runs()] or s.checkpoints("late") == []
            with s.read() as conn:
                assert I.pending_count(conn) == 0
        # One transient fault of each kind is retried: the restore succeeds.
        proxy.inject("500", 1, "GET")
        proxy.inject("slowdown", 1, "GET")
        ok("restore", "r@1", "--to", str(tmp_path / "out4"), store=store, env=env)
        assert (tmp_path / "out4" / "checkpoint").exists()
    finally:
        proxy.close()
    for d in ("out1", "out2", "out3"):
        assert not (tmp_path / d).exists() or not any((tmp_path / d).iterdir())


@pytest.mark.slow
def test_a_garbled_object_fails_verify_and_restore_on_the_command_line(shared_store, tmp_path: Path) -> None:
    server, store = shared_store
    with ckptstore.open_store(store) as s:
        data = next(f for f in s.checkpoint("r@1").files if f.role == "data")
        bucket, key = s.files.bucket, s.files.key_of(data.digest)
    c = server.client()
    body = c.get_object(Bucket=bucket, Key=key)["Body"].read()
    c.put_object(Bucket=bucket, Key=key, Body=body[: len(body) // 2])  # truncated
    env = {"CKPTSTORE_CACHE_DIR": str(tmp_path / "cache-cli")}
    r = cli("verify", store=store, env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "corrupt" in r.stdout and r.stderr.strip().splitlines() == ["error: verify found 1 damaged file(s) (1 corrupt)"]
    line = fails("restore", "r@1", "--to", str(tmp_path / "out"), store=store, env=env)
    assert data.digest[:12] in line and ("bytes" in line or "digest" in line), line
    c.put_object(Bucket=bucket, Key=key, Body=b"garbled!" + body[8:])  # same size, other bytes
    line = fails("restore", "r@1", "--to", str(tmp_path / "out"), store=store, env={"CKPTSTORE_CACHE_DIR": str(tmp_path / "cache-cli2")})
    assert "digest" in line or "changed" in line, line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.slow
def test_a_missing_bucket_is_one_line_for_every_command(s3_server, tmp_path: Path) -> None:
    env = {"CKPTSTORE_CACHE_DIR": str(tmp_path / "cache")}
    ckptstore.open_store(tmp_path / "s", root="s3://no-such-bucket-y/p").close()
    for args in (["verify"], ["gc", "--grace", "0s"]):
        line = fails(*args, store=tmp_path / "s", env=env)
        assert "bucket 'no-such-bucket-y' does not exist" in line, line
    # A PostgreSQL URL's password never shows, whatever fails.
    line = fails("verify", store="postgresql+psycopg://u:pg-pass-secret@127.0.0.1:1/db", env=env)
    assert "pg-pass-secret" not in line
    assert os.environ.get("AWS_SECRET_ACCESS_KEY", "") not in line or not os.environ.get("AWS_SECRET_ACCESS_KEY")


@pytest.mark.slow
def test_a_paused_server_is_one_line_after_the_read_timeout(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """A server that stops answering but keeps its connections open (SIGSTOP) is given up on
    after the read timeout and the retries, not waited for without end."""
    import signal

    from tests.helpers.models import tiny_module
    from tests.helpers.s3 import MotoServer

    server = MotoServer()  # of its own: the shared one must keep answering
    server.start()
    try:
        for k, v in server.env().items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache"))
        with ckptstore.open_store(tmp_path / "s", root=f"s3://{server.new_bucket()}/p") as s:
            with s.start_run("r") as run:
                run.save(tiny_module(scale=2.0), step=1)
        env = {**server.env(), "CKPTSTORE_CACHE_DIR": str(tmp_path / "cache-2"), "CKPTSTORE_S3_READ_TIMEOUT": "1", "AWS_MAX_ATTEMPTS": "2"}
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            line = fails("restore", "r@1", "--to", str(tmp_path / "out"), store=tmp_path / "s", env=env)
            assert "did not answer" in line and "Timeout" in line, line
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    finally:
        server.stop()
