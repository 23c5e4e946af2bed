"""ckptstore.registry: names to implementations, imported on first use, extended from outside."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ckptstore.errors import StoreConfigError
from ckptstore.registry import Registry
from tests.helpers.processes import run_py


def make(known: dict[str, str] | None = None) -> Registry[object]:
    return Registry("thing", "ckptstore.tests-no-such-group", known or {},
                    unknown=lambda n: LookupError(f"no thing {n}"), check=lambda x: x)


def test_register_get_and_clobber() -> None:
    reg = make()
    reg.register("a", 1)
    assert reg.get("a") == 1 and reg.names() == ["a"]
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", 2)
    reg.register("a", 2, clobber=True)
    assert reg.get("a") == 2
    reg.unregister("a")
    with pytest.raises(LookupError, match="no thing a"):
        reg.get("a")


def test_a_path_is_imported_only_when_first_used() -> None:
    reg = make({"dec": "decimal:Decimal"})
    assert reg.names() == ["dec"]
    import decimal

    assert reg.get("dec") is decimal.Decimal
    with pytest.raises(StoreConfigError, match="cannot load the thing 'bad'"):
        reg.register("bad", "ckptstore_no_such_module:Thing")
        reg.get("bad")


def test_a_third_party_backend_is_found_by_its_entry_point_alone(tmp_path: Path) -> None:
    """A package that declares an entry point in group ``ckptstore.areas`` is opened by scheme
    without anyone importing it or editing ckptstore (as fsspec reads ``fsspec.specs``)."""
    site = tmp_path / "site"
    (site / "toyplugin-1.0.dist-info").mkdir(parents=True)
    (site / "toyplugin-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplugin\nVersion: 1.0\n")
    (site / "toyplugin-1.0.dist-info" / "entry_points.txt").write_text("[ckptstore.areas]\ntoyfile = ckptstore_toyplugin:ToyArea\n")
    (site / "ckptstore_toyplugin.py").write_text(textwrap.dedent("""
        from ckptstore.files.local import LocalObjectArea

        class ToyArea(LocalObjectArea):
            @classmethod
            def from_url(cls, url, *, fsync=False):
                return cls(url[len("toyfile://"):], fsync=fsync)

            @property
            def url(self):
                return "toyfile://" + str(self.root)
    """))
    code = textwrap.dedent("""
        import sys, ckptstore
        with ckptstore.open_store(sys.argv[1], root="toyfile://" + sys.argv[2]) as s:
            print(type(s.files).__name__, s.files.url == "toyfile://" + sys.argv[2])
    """)
    out = run_py(code, str(tmp_path / "store"), str(tmp_path / "files"), env={"PYTHONPATH": str(site)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "ToyArea True"
