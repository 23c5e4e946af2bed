"""ckptstore: an experiment-tracking checkpoint store for TensorFlow.

>>> import ckptstore
>>> store = ckptstore.open_store()              # ./.ckptstore, or $CKPTSTORE_URI
>>> with store.start_run("mnist", params={"lr": 1e-3}) as run:   # doctest: +SKIP
...     for step in range(1, 1001):
...         run.log(step, loss=...)
...         if step % 100 == 0:
...             run.save(ckpt, step)
>>> store.restore("mnist@latest", ckpt)          # doctest: +SKIP

Importing this package never imports TensorFlow, and imports SQLAlchemy only when a store is
opened (``open_store``, ``Store``, ``Run`` and the other public names load on first use), so the
CLI's quick paths start in a fraction of the time SQLAlchemy's import takes.
"""

from typing import TYPE_CHECKING, Any

from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all

if TYPE_CHECKING:
    from .flows.async_save import PendingSave
    from .names import parse_ref
    from .records import (
        AliasEventInfo,
        AliasInfo,
        CheckpointInfo,
        ExportInfo,
        FileInfo,
        GcReport,
        MetricChange,
        MetricSummary,
        Problem,
        RunAtStep,
        RunComparison,
        RunInfo,
        RunsTable,
        SpaceUsage,
        StepMetrics,
        TensorStats,
        VariableChange,
        VariableDiff,
        VariableInfo,
        VariableStatus,
        VerifyReport,
        to_json,
    )
    from .retention import KeepBest, Retention
    from .run import Run
    from .store import Store, open_store

__version__ = "0.1.0"

# The record types: what the store's queries return (``ckptstore.records``).
_RECORDS = (
    "RunInfo", "StepMetrics", "MetricChange", "MetricSummary", "RunComparison", "RunAtStep", "FileInfo", "RunsTable",
    "VariableInfo", "VariableChange", "TensorStats", "VariableStatus", "VariableDiff", "SpaceUsage",
    "CheckpointInfo", "ExportInfo", "AliasEventInfo", "AliasInfo", "Problem", "VerifyReport", "GcReport",
)
# Every name but the errors loads on first use: the CLI's quick path imports this package on
# each call, and defining the record and retention classes it does not need is a good part of
# its start-up time.
_LAZY = {
    "open_store": "store", "Store": "store", "Run": "run", "PendingSave": "flows.async_save",
    "parse_ref": "names", "to_json": "records", "KeepBest": "retention", "Retention": "retention",
    **{name: "records" for name in _RECORDS},
}
# Submodules reachable as attributes (``ckptstore.keras.StoreCallback`` after ``import
# ckptstore``), imported on first use: ``keras`` imports TensorFlow.
_SUBMODULES = ("keras", "demo", "plot", "preemption", "tf1", "tf2")


def __getattr__(name: str) -> Any:
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ckptstore' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # The lazy names too, as if they were loaded (help(), completion in a shell).
    return sorted({*globals(), *__all__, *_SUBMODULES})


__all__ = [
    "open_store",
    "Store",
    "Run",
    "Retention",
    "KeepBest",
    "PendingSave",
    "parse_ref",
    "to_json",
    "__version__",
    # The record types, spelt out for the static checkers (``_RECORDS`` loads them):
    "RunInfo",
    "RunsTable",
    "StepMetrics",
    "MetricChange",
    "MetricSummary",
    "RunComparison",
    "RunAtStep",
    "FileInfo",
    "VariableInfo",
    "VariableChange",
    "TensorStats",
    "VariableStatus",
    "VariableDiff",
    "SpaceUsage",
    "CheckpointInfo",
    "ExportInfo",
    "AliasEventInfo",
    "AliasInfo",
    "Problem",
    "VerifyReport",
    "GcReport",
    *_errors_all,
]
