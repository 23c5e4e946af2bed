"""The one exception family the library raises for anything a user can fix.

The CLI catches :class:`CkptstoreError` once and prints its message as a single line, so every
message here is written to stand alone: it names the thing that was wrong and, where there is
one, the way out.
"""

from __future__ import annotations

import errno

__all__ = [
    "CkptstoreError",
    "StoreConfigError",
    "StoreOpenError",
    "ObjectStoreError",
    "SchemaTooNewError",
    "InvalidNameError",
    "InvalidOptionError",
    "InvalidRefError",
    "UnknownRunError",
    "StepConflictError",
    "ParamsChangedError",
    "NotChiefError",
    "TopologyChangedError",
    "UnknownRefError",
    "UnknownAliasError",
    "MetricValueError",
    "CorruptFileError",
    "MissingFileError",
    "BundleIndexError",
    "RestoreMismatchError",
    "NoCheckpointFoundError",
    "ConflictError",
    "RunExistsError",
    "QuerySyntaxError",
    "ReadOnlyStoreError",
    "TensorFlowMissingError",
    "DiskFullError",
    "AccessDeniedError",
]


class CkptstoreError(Exception):
    """Base of every error the library raises on purpose."""


class StoreConfigError(CkptstoreError):
    """The store location or options cannot work (bad URL, missing file root, ...)."""


class StoreOpenError(CkptstoreError):
    """The database exists but cannot be used (not a database, damaged, unreachable)."""


class SchemaTooNewError(StoreOpenError):
    """The store was written by a newer ckptstore; opening it could corrupt it."""


class ReadOnlyStoreError(StoreOpenError):
    """A write was attempted on a store the process may only read."""


class InvalidNameError(CkptstoreError, ValueError):
    """A run or alias name breaks the naming rules."""


class InvalidOptionError(CkptstoreError, ValueError):
    """An option has a value it cannot take (a retention rule, a status filter, a buffer size)."""


class InvalidRefError(CkptstoreError, ValueError):
    """A reference string is not of the form run@step, run@latest, run@~N, alias or export:ID."""


class UnknownRunError(CkptstoreError, LookupError):
    """No run has that name."""


class UnknownRefError(CkptstoreError, LookupError):
    """The reference is well formed but names no checkpoint or export."""


class UnknownAliasError(UnknownRefError):
    """No alias has that name."""


class MetricValueError(CkptstoreError, ValueError):
    """A logged metric value is not a number, or is non-finite under a refusing policy."""


class CorruptFileError(CkptstoreError):
    """A stored file's content no longer matches its recorded digest or size."""


class MissingFileError(CorruptFileError):
    """A stored file recorded in the database is absent from the file area."""


class BundleIndexError(CorruptFileError):
    """A tensor-bundle ``.index`` file that cannot be parsed: damaged, truncated, or compressed."""


class RestoreMismatchError(CkptstoreError):
    """The checkpoint's variables do not fit the target graph or object."""


class NoCheckpointFoundError(CkptstoreError):
    """A directory given for import holds no complete TensorFlow checkpoint."""


class ConflictError(CkptstoreError):
    """The operation would break an invariant (e.g. delete a checkpoint an alias points at)."""


class RunExistsError(ConflictError):
    """``start_run(name)`` named a run that already exists, without ``resume=True``."""


class StepConflictError(ConflictError, ValueError):
    """A resumed run was asked to log or save a step it already has (``start_run(...,
    overwrite=True)`` or ``Run.rewind(step)`` say that re-writing those steps is meant)."""


class ParamsChangedError(ConflictError, ValueError):
    """Resuming a run with params that differ from the ones it has, without
    ``update_params=True``."""


class TopologyChangedError(ConflictError, ValueError):
    """Resuming a distributed run with another number of workers than it was trained with,
    without ``update_params=True`` (the global batch, and so the training, would change)."""


class NotChiefError(CkptstoreError):
    """A non-chief task of a ``tf.distribute`` job asked for a write only the chief makes
    (see ``ckptstore.distributed``)."""


class QuerySyntaxError(CkptstoreError, ValueError):
    """A ``where``/``order_by`` expression of a run search is malformed (the message points at
    the bad token)."""


class TensorFlowMissingError(CkptstoreError):
    """The operation needs TensorFlow, which is not installed."""


class DiskFullError(CkptstoreError):
    """The disk (or a quota) ran out of space while writing."""


class ObjectStoreError(CkptstoreError):
    """The object store (S3) failed a request after retries, or could not be reached."""


class AccessDeniedError(CkptstoreError):
    """The operating system refused access to a file or directory."""


def from_os_error(what: str, exc: OSError) -> CkptstoreError:
    """An ``OSError`` met while doing ``what`` ("cannot write /x"), as one line naming the file."""
    where = f" ({exc.filename})" if exc.filename and str(exc.filename) not in what else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"{what}: no space left on the device{where}")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return AccessDeniedError(f"{what}: permission denied{where}")
    return CkptstoreError(f"{what}: {exc.strerror or exc}{where}")
