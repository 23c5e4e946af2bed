"""The public API is closed: what the library raises and returns is importable from ``ckptstore``."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
import tomllib

import ckptstore
from ckptstore import errors, records
from tests.helpers.processes import run_py

ROOT = Path(__file__).resolve().parent.parent


def _defined_in(module: object, keep: object) -> dict[str, type]:
    return {
        name: obj for name, obj in vars(module).items()
        if inspect.isclass(obj) and obj.__module__ == module.__name__ and keep(obj)
    }


@pytest.mark.parametrize("module, kind", [
    (errors, lambda c: issubclass(c, BaseException)),
    (records, dataclasses.is_dataclass),
], ids=["errors", "records"])
def test_every_error_and_record_type_is_exported_from_the_package(module, kind):
    defined = _defined_in(module, kind)
    assert defined, module
    missing = sorted(set(defined) - set(module.__all__))
    assert not missing, f"not in {module.__name__}.__all__: {missing}"
    missing = sorted(set(defined) - set(ckptstore.__all__))
    assert not missing, f"not in ckptstore.__all__: {missing}"
    for name, cls in defined.items():
        assert getattr(ckptstore, name) is cls


def test_every_error_the_library_raises_on_purpose_is_a_ckptstore_error():
    for name, cls in _defined_in(errors, lambda c: issubclass(c, BaseException)).items():
        assert issubclass(cls, errors.CkptstoreError), name


def test_every_exported_name_resolves_and_shows_in_dir():
    for name in ckptstore.__all__:
        assert getattr(ckptstore, name) is not None, name
    assert set(ckptstore.__all__) <= set(dir(ckptstore))
    with pytest.raises(AttributeError):
        ckptstore.NoSuchThing  # noqa: B018


def test_a_background_save_handle_is_exported_as_a_future():
    from concurrent.futures import Future

    assert issubclass(ckptstore.PendingSave, Future)


def test_the_strict_type_check_covers_every_public_module():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    strict = next(o["module"] for o in config["tool"]["mypy"]["overrides"] if o.get("disallow_untyped_defs"))
    public = {getattr(ckptstore, name).__module__ for name in ckptstore.__all__ if hasattr(getattr(ckptstore, name), "__module__")}
    public |= {f"ckptstore.{name}" for name in ckptstore._SUBMODULES}
    public.add("ckptstore")
    assert sorted(public - set(strict)) == []


def test_exported_records_load_without_sqlalchemy_or_tensorflow():
    out = run_py(
        "import sys, ckptstore\n"
        "ckptstore.CheckpointInfo, ckptstore.RunExistsError, ckptstore.QuerySyntaxError\n"
        "print(sorted(m for m in ('sqlalchemy', 'tensorflow') if m in sys.modules))\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
