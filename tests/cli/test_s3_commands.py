"""The command line on an S3 root: root copy, verify, gc --grace, and errors that are one line
and hold no secret."""

from __future__ import annotations

from pathlib import Path

import pytest

import ckptstore
from tests.helpers.cli import fails, ok
from tests.helpers.s3 import FAKE_SECRET

# Each test runs the CLI in several subprocesses (and the first one TensorFlow).
pytestmark = pytest.mark.slow


@pytest.fixture
def cache_env(tmp_path: Path) -> dict[str, str]:
    return {"CKPTSTORE_CACHE_DIR": str(tmp_path / "cache")}


def test_root_copy_moves_a_local_store_into_a_bucket(s3_server, tmp_path: Path, tiny_model, cache_env, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", cache_env["CKPTSTORE_CACHE_DIR"])
    store = tmp_path / "store"
    with ckptstore.open_store(store) as s:
        with s.start_run("r") as run:
            run.save(tiny_model(scale=7.0), step=1)
    root = f"s3://{s3_server.new_bucket()}/moved"
    out = ok("root", "copy", "--to", root, store=store, env=cache_env)
    assert "copied" in out and root in out
    assert ok("root", "show", store=store, env=cache_env).strip() == root
    # Again: nothing to send, everything checked (a resumed copy looks the same).
    assert "copied 0 file(s)" in ok("root", "copy", "--to", root, store=store, env=cache_env)
    assert "ok" in ok("verify", store=store, env=cache_env)
    assert "removed 0" in ok("gc", "--grace", "0s", store=store, env=cache_env)
    with ckptstore.open_store(store) as s:
        target = tiny_model(scale=0.0)
        s.restore("r@1", target)
        assert float(target.w.numpy()[0, 0]) == 7.0


def test_errors_on_s3_are_one_line_without_secrets(s3_server, tmp_path: Path, cache_env) -> None:  # noqa: ANN001
    ckptstore.open_store(tmp_path / "s", root="s3://no-such-bucket-x/p").close()
    line = fails("gc", "--grace", "0s", "--dry-run", store=tmp_path / "s", env=cache_env)
    assert "does not exist" in line
    ckptstore.open_store(tmp_path / "s2", root=f"s3://{s3_server.new_bucket()}/p").close()
    # No credentials at all (moto's server checks no signatures, so wrong ones pass there).
    nocreds = {**cache_env, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
               "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none"),
               "AWS_EC2_METADATA_DISABLED": "true"}
    line = fails("verify", store=tmp_path / "s2", env=nocreds)
    assert "credentials" in line and FAKE_SECRET not in line
    line = fails("gc", "--grace", "soon", store=tmp_path / "s2", env=cache_env)
    assert "duration" in line


def test_a_postgres_password_never_shows(tmp_path: Path) -> None:
    line = fails("runs", "list", store="postgresql+psycopg://u:hunter2secret@127.0.0.1:1/db")
    assert "hunter2secret" not in line
    line = fails("gc", store="postgresql+psycopg://u:hunter2secret@127.0.0.1:1/db", env={"CKPTSTORE_ROOT": "s3://u:pw-secret@b/x"})
    assert "hunter2secret" not in line and "pw-secret" not in line


def test_du_on_a_bucket_prints_what_it_does_for_a_directory(s3_server, tmp_path: Path, tiny_model, cache_env, monkeypatch) -> None:  # noqa: ANN001
    from tests.helpers.cli import as_json

    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", cache_env["CKPTSTORE_CACHE_DIR"])
    stores = {"local": (tmp_path / "local", None), "s3": (tmp_path / "s3", f"s3://{s3_server.new_bucket()}/p")}
    for where, root in stores.values():
        with ckptstore.open_store(where, root=root) as s:
            with s.start_run("r") as run:
                run.save(tiny_model(scale=1.0), step=1)
                run.save(tiny_model(scale=1.0), step=2)
    local = as_json("du", store=stores["local"][0], env=cache_env)
    bucket = as_json("du", store=stores["s3"][0], env=cache_env)
    assert bucket == local and bucket[0]["stored_bytes"] * 2 == bucket[0]["logical_bytes"]
    table = ok("du", "r", store=stores["s3"][0], env=cache_env).splitlines()
    assert table[0].split() == ["run", "checkpoints", "logical", "stored", "only", "this", "run", "saved"]
    assert table[1].split()[0] == "r" and table[1].split()[-1] == "2.0x"
