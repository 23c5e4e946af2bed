"""Store discovery as git finds ``.git`` (``location.discover``): from a subdirectory, the nearest
``.ckptstore`` above is the store; ``--store`` and ``$CKPTSTORE_URI`` still win; the search stops
at a mount boundary. Through the library and real CLI subprocesses (quick path and Typer's)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import ckptstore
from ckptstore.location import DEFAULT_LOCATION, discover
from tests.helpers.cli import cli, ok


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory with a store in ``.ckptstore`` (one run 'top') and ``src/deep`` below."""
    (tmp_path / "src" / "deep").mkdir(parents=True)
    with ckptstore.open_store(tmp_path / DEFAULT_LOCATION) as store:
        with store.start_run("top", params={"lr": 0.1}) as run:
            run.log(0, loss=1.0)
    return tmp_path


def test_discover_finds_the_nearest_store_above(project: Path) -> None:
    assert discover(project) == DEFAULT_LOCATION  # here: the relative name, as before
    assert discover(project / "src" / "deep") == str(project / DEFAULT_LOCATION)
    # A nearer one wins; a directory named .ckptstore without a database is no store.
    (project / "src" / DEFAULT_LOCATION).mkdir()
    assert discover(project / "src" / "deep") == str(project / DEFAULT_LOCATION)
    with ckptstore.open_store(project / "src" / DEFAULT_LOCATION):
        pass
    assert discover(project / "src" / "deep") == str(project / "src" / DEFAULT_LOCATION)


@pytest.mark.parametrize("quick", ["1", "0"], ids=["quick-reader", "typer"])
def test_cli_from_a_subdirectory_uses_the_store_above(project: Path, tmp_path_factory: pytest.TempPathFactory, quick: str) -> None:
    deep = project / "src" / "deep"
    env = {"CKPTSTORE_QUICK": quick}
    assert [line.split()[0] for line in ok("runs", "list", cwd=deep, env=env).splitlines()[1:]] == ["top"]
    assert ok("root", "show", cwd=deep, env=env).strip() == str(project / DEFAULT_LOCATION)
    assert not (deep / DEFAULT_LOCATION).exists()
    # --store and CKPTSTORE_URI still win (an explicit .ckptstore is the one here).
    other = tmp_path_factory.mktemp("other") / "store"
    with ckptstore.open_store(other) as store:
        store.start_run("elsewhere").finish()
    assert "elsewhere" in ok("runs", "list", cwd=deep, env={**env, "CKPTSTORE_URI": str(other)})
    assert "elsewhere" in ok("runs", "list", store=other, cwd=deep, env=env)
    r = cli("runs", "list", store=DEFAULT_LOCATION, cwd=deep, env=env)
    assert r.returncode == 1 and f"no store at {deep / DEFAULT_LOCATION}" in r.stderr


def test_discovery_stops_at_a_mount_boundary(project: Path) -> None:
    mounted = project / "src" / "mnt"
    mounted.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mounted)], capture_output=True, timeout=30)
    except OSError:
        pytest.skip("no mount command")
    if done.returncode != 0:
        pytest.skip("mounting a tmpfs needs privileges this test does not have")
    try:
        (mounted / "sub").mkdir()
        assert discover(mounted / "sub") is None
        r = cli("runs", "list", cwd=mounted / "sub")
        assert r.returncode == 1 and f"no store at {mounted / 'sub' / DEFAULT_LOCATION}" in r.stderr
    finally:
        subprocess.run(["umount", str(mounted)], check=True, timeout=30)
