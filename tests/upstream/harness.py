"""Selects what the ported upstream TensorFlow tests construct: TensorFlow's own classes or the
ckptstore drop-ins, so that the same test file runs against both.

The ported files (``saver_test.py``, ``checkpoint_management_test.py``) differ from upstream only
in the two lines that import ``saver_module`` and ``checkpoint_management``: they take them from
:func:`saver_module` and :func:`checkpoint_management` here. Each returns a stand-in for
TensorFlow's module that forwards every name (reads, ``mock.patch.object`` writes and deletes)
to TensorFlow's module, except the drop-in names when the target is ``"dropin"``:

* ``saver_module.Saver``, ``.import_meta_graph``, ``.export_meta_graph`` -> ``ckptstore.tf1``
* ``checkpoint_management.CheckpointManager`` -> ``ckptstore.tf2``,
  ``checkpoint_management.latest_checkpoint`` -> ``ckptstore.tf1``

With the target ``"module"`` the modules themselves are replaced: ``saver_module`` *is*
``ckptstore.tf1`` and ``checkpoint_management`` *is* ``ckptstore.tf2`` (they stand in for
TensorFlow's modules wholesale, ``dropin.StandIn``; ``mock.patch.object(module, "time")``
included).

:func:`load` executes a ported file as a module of its own for one target (``TARGET`` is read
when the file is executed); the test modules ``test_upstream_*.py`` load each file twice.
With the target ``"dropin"`` the drop-ins record into the default store: the autouse fixture
in ``conftest.py`` points ``$CKPTSTORE_URI`` at a store of the test session.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import unittest
from pathlib import Path
from typing import Any

TARGETS = ("tf", "dropin", "module")
#: The target of the file :func:`load` is executing.
TARGET = "dropin"


class _Forwarding(types.ModuleType):
    """A module stand-in: the overrides, else TensorFlow's module (also for writes)."""

    def __init__(self, real: types.ModuleType, overrides: dict[str, Any]) -> None:
        super().__init__(real.__name__)
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "_overrides", overrides)

    def __getattr__(self, name: str) -> Any:
        overrides = object.__getattribute__(self, "_overrides")
        if name in overrides:
            return overrides[name]
        return getattr(object.__getattribute__(self, "_real"), name)

    def __getattribute__(self, name: str) -> Any:
        if name in ("__dict__", "__class__", "_real", "_overrides") or name.startswith("__") and name.endswith("__"):
            return object.__getattribute__(self, name)
        return type(self).__getattr__(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        overrides = object.__getattribute__(self, "_overrides")
        if name in overrides:
            overrides[name] = value
        else:
            setattr(object.__getattribute__(self, "_real"), name, value)

    def __delattr__(self, name: str) -> None:
        if name not in object.__getattribute__(self, "_overrides"):
            delattr(object.__getattribute__(self, "_real"), name)


def saver_module() -> types.ModuleType:
    from tensorflow.python.training import saver as real

    if TARGET == "tf":
        return real
    import ckptstore.tf1 as tf1

    if TARGET == "module":
        return tf1
    return _Forwarding(real, {"Saver": tf1.Saver, "import_meta_graph": tf1.import_meta_graph,
                              "export_meta_graph": tf1.export_meta_graph})


def checkpoint_management() -> types.ModuleType:
    from tensorflow.python.checkpoint import checkpoint_management as real

    if TARGET == "tf":
        return real
    import ckptstore.tf1 as tf1
    import ckptstore.tf2 as tf2

    if TARGET == "module":
        return tf2
    return _Forwarding(real, {"CheckpointManager": tf2.CheckpointManager, "latest_checkpoint": tf1.latest_checkpoint})


def load(name: str, target: str) -> dict[str, type]:
    """Execute the ported file ``name`` for ``target``; returns its test classes, renamed
    ``<Class>_<target>`` so that both targets' classes live side by side in one test module."""
    global TARGET
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    path = Path(__file__).with_name(f"{name}.py")
    module_name = f"tests.upstream._{name}_{target}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    TARGET = target
    spec.loader.exec_module(module)
    out: dict[str, type] = {}
    for attr, value in vars(module).items():
        if isinstance(value, type) and issubclass(value, unittest.TestCase) and value.__module__ == module_name:
            value.__name__ = value.__qualname__ = f"{attr}_{target}"
            out[value.__name__] = value
    return out
