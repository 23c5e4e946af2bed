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


def _public_callables():
    from ckptstore.flows import deploy_exports, exports, imports
    from ckptstore.run import FollowerRun, Run
    from ckptstore.store import Store

    for cls in (Store, Run, FollowerRun):
        for name, fn in inspect.getmembers(cls, inspect.isfunction):
            if not name.startswith("_"):
                yield f"{cls.__name__}.{name}", fn
    for module in (deploy_exports, exports, imports):
        for name in module.__all__ if hasattr(module, "__all__") else dir(module):
            fn = getattr(module, name)
            if inspect.isfunction(fn) and fn.__module__ == module.__name__ and not name.startswith("_"):
                yield f"{module.__name__}.{name}", fn


def test_public_functions_take_named_keywords_not_bare_kwargs():
    # ``log(step, **metrics)``: the keywords are the user's metric names, not options.
    allowed = {"Run.log", "FollowerRun.log"}
    bare = [
        name for name, fn in _public_callables()
        if name not in allowed
        and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
    ]
    assert bare == []


def test_a_misspelt_keyword_is_a_type_error_before_anything_runs(sqlite_store):
    # As TensorFlow does: an option nobody takes is not silently dropped.
    for call in (
        lambda: sqlite_store.load_keras("export:1", verfy=False),
        lambda: sqlite_store.restore("a@1", object(), var_lists=None),
        lambda: sqlite_store.export_to("export:1", "out", forse=True),
        lambda: sqlite_store.import_checkpoints("d", run="r", progres=None),
        lambda: sqlite_store.start_run("a", flush_evry=10),
    ):
        with pytest.raises(TypeError, match="unexpected keyword"):
            call()
    assert sqlite_store.runs() == []
