"""Every table of a store, declared once.

The Alembic revisions in ``migrations/`` are generated from these models and then read by a
person; a test checks that ``upgrade head`` on an empty database yields exactly this schema.

Invariants the database enforces itself (so that no code path can forget them):

* steps are non-negative, names are unique, one checkpoint per (run, step);
* deleting a run cascades to its metrics, checkpoints, files, variables and exports;
* an alias pins its target: a checkpoint or export with an alias cannot be deleted
  (``ON DELETE RESTRICT``), which is what keeps retention and ``gc`` away from named versions.

Relationships are ``lazy="raise"``: the store loads what it needs with explicit queries, and an
accidental N+1 query fails a test instead of slowing the CLI.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints let later migrations drop or alter them on SQLite (batch mode) and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

from ..constants import NAME_MAX, RUN_STATUSES  # noqa: E402  (re-exported)
from ..liveness import PROCESS_MAX  # noqa: E402

CHECKPOINT_FORMATS = ("tf1-saver", "tf2-checkpoint")
CHECKPOINT_STATES = ("committed", "kept")
FILE_ROLES = ("index", "data", "meta")
EXPORT_KINDS = ("tf1-graphdef", "tf2-function", "saved-model", "keras")

# Digests are blake3, hex encoded.
DIGEST_LEN = 64


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="running")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Retention settings live with the run so that any process saving into it applies the same rule.
    retention: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Liveness (revision 0007, see ckptstore/liveness.py): the owning process writes heartbeat_at
    # (the database's clock, seconds since the epoch); readers show a running run whose heartbeat
    # is older than heartbeat_timeout, or whose process is gone, as crashed. Never stored as such.
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    heartbeat_timeout: Mapped[float | None] = mapped_column(Float, nullable=True)
    process: Mapped[str | None] = mapped_column(String(PROCESS_MAX), nullable=True)

    tags: Mapped[list[RunTag]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True, lazy="raise"
    )
    checkpoints: Mapped[list[Checkpoint]] = relationship(
        back_populates="run", passive_deletes=True, lazy="raise"
    )

    __table_args__ = (
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        # Run search (issue 17): newest-first listing and status filters stay index scans.
        Index("ix_runs_created_at", "created_at"),
        Index("ix_runs_status", "status"),
    )


class RunTag(Base):
    """One key=value tag of a run; a table (not JSON) so runs can be filtered by tag in SQL."""

    __tablename__ = "run_tags"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(NAME_MAX), primary_key=True)
    value: Mapped[str] = mapped_column(Text)

    run: Mapped[Run] = relationship(back_populates="tags", lazy="raise")

    __table_args__ = (Index("ix_run_tags_key_value", "key", "value"),)


class Metric(Base):
    """One metric value at one step of one run.

    The primary key (run, step, key) is the "one run's steps" access path; the (step, run) index
    serves "every run at step S". On SQLite the table is WITHOUT ROWID, so the primary key *is*
    the storage order and there is no second copy of each row.
    """

    __tablename__ = "metrics"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(NAME_MAX), primary_key=True)
    # NULL stands for NaN: SQLite cannot store NaN and turns it into NULL anyway.
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    wall_time: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        CheckConstraint("step >= 0", name="step_nonnegative"),
        Index("ix_metrics_step_run", "step", "run_id"),
        {"sqlite_with_rowid": False},
    )


class MetricHistory(Base):
    """A metric value that a later ``log`` of the same (run, step, key) replaced.

    Rows are written by a database trigger on ``metrics`` (migration 0002), so the batched
    driver-level upsert of ``Run.log`` stays one statement and pays nothing when no value is
    replaced. A resumed run that logs its steps again after restoring an older checkpoint keeps
    both: ``metrics`` holds the newest value, this table what it replaced and when.
    """

    __tablename__ = "metric_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(BigInteger)
    key: Mapped[str] = mapped_column(String(NAME_MAX))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    wall_time: Mapped[float] = mapped_column(Float)
    # When the value was replaced: the wall time of the value that replaced it.
    replaced_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_metric_history_run_step_key", "run_id", "step", "key"),)

class MetricRollup(Base):
    """Summary of one metric over one bucket of steps, kept up to date as values are written.

    Level 0 is the whole series (bucket 0): its rows are the run's metric names and point
    counts. Level L >= 1 cuts the steps into buckets of ``16**L`` steps (bucket = step >> 4L).
    Each row keeps the number of values, the last step written (NaN included), and the first,
    lowest, highest and last finite value with their steps, so a chart of a million steps is
    drawn from a few thousand rows without losing a peak (``metadata/rollups.py``). The primary
    key puts the level before the metric so that one run's names are one short range.
    """

    __tablename__ = "metric_rollups"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(NAME_MAX), primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
    end_step: Mapped[int] = mapped_column(BigInteger)
    first_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    first_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    min_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    min_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_value: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = ({"sqlite_with_rowid": False},)


class Blob(Base):
    """A file in the content-addressed file area, stored once whoever references it.

    ``stat_sig`` records (inode, size, mtime, ctime) of the stored file right after it was
    hashed. Stored files are read-only, and any write, truncation, chmod or replacement changes
    ctime or the inode, so a matching signature proves the bytes are those that were hashed,
    without reading them again. ``verify(full=True)`` and ``ckptstore verify`` always re-hash.
    """

    __tablename__ = "blobs"

    digest: Mapped[str] = mapped_column(String(DIGEST_LEN), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    stat_sig: Mapped[str | None] = mapped_column(String(120), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (CheckConstraint("size >= 0", name="size_nonnegative"),)


class Checkpoint(Base):
    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(32))
    # "kept": exempt from max_to_keep (keep_every_n_hours chose it).
    state: Mapped[str] = mapped_column(String(16), default="committed")
    # The checkpoint prefix's basename as TensorFlow wrote it, e.g. "model.ckpt-1000".
    prefix: Mapped[str] = mapped_column(String(255))
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    run: Mapped[Run] = relationship(back_populates="checkpoints", lazy="raise")
    files: Mapped[list[CheckpointFile]] = relationship(
        back_populates="checkpoint", passive_deletes=True, lazy="raise"
    )

    __table_args__ = (
        UniqueConstraint("run_id", "step"),
        CheckConstraint("step >= 0", name="step_nonnegative"),
        CheckConstraint(_in("format", CHECKPOINT_FORMATS), name="format"),
        CheckConstraint(_in("state", CHECKPOINT_STATES), name="state"),
        Index("ix_checkpoints_step", "step"),
    )


class CheckpointFile(Base):
    __tablename__ = "checkpoint_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(
        ForeignKey("checkpoints.id", ondelete="CASCADE")
    )
    role: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    # RESTRICT: a blob is removed only after nothing references it (gc checks this in SQL).
    digest: Mapped[str] = mapped_column(
        ForeignKey("blobs.digest", ondelete="RESTRICT"), index=True
    )

    checkpoint: Mapped[Checkpoint] = relationship(back_populates="files", lazy="raise")

    __table_args__ = (
        UniqueConstraint("checkpoint_id", "file_name"),
        CheckConstraint(_in("role", FILE_ROLES), name="role"),
    )


class Variable(Base):
    __tablename__ = "variables"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(
        ForeignKey("checkpoints.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(1024))
    dtype: Mapped[str] = mapped_column(String(32))
    shape: Mapped[list[int]] = mapped_column(JSON)

    __table_args__ = (UniqueConstraint("checkpoint_id", "name"),)


class Export(Base):
    """A deployment artifact: a frozen GraphDef (.pb), a SavedModel (one deterministic tar) or a .keras file."""

    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    # Lineage survives retention: the export keeps working when its source checkpoint goes.
    checkpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("checkpoints.id", ondelete="SET NULL"), nullable=True
    )
    step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    inputs: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    outputs: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    node_count: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str] = mapped_column(
        ForeignKey("blobs.digest", ondelete="RESTRICT"), index=True
    )
    tf_version: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        CheckConstraint(_in("kind", EXPORT_KINDS), name="kind"),
        CheckConstraint("step IS NULL OR step >= 0", name="step_nonnegative"),
        Index("ix_exports_run_id", "run_id"),
    )


class ExportFile(Base):
    """One file of an export that is a directory (a SavedModel): its path inside the directory
    and its content. The export's own ``digest`` is that of its manifest (every path, size and
    digest), so the directory as a whole is content-addressed too."""

    __tablename__ = "export_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    export_id: Mapped[int] = mapped_column(ForeignKey("exports.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    # RESTRICT, as for checkpoint files: a blob goes only once nothing references it.
    digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest", ondelete="RESTRICT"), index=True)

    __table_args__ = (UniqueConstraint("export_id", "path"),)


class Alias(Base):
    """A named version: points at exactly one checkpoint or one export."""

    __tablename__ = "aliases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX), unique=True)
    checkpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("checkpoints.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    export_id: Mapped[int | None] = mapped_column(
        ForeignKey("exports.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        CheckConstraint(
            "(checkpoint_id IS NULL) <> (export_id IS NULL)", name="one_target"
        ),
    )


class AliasEvent(Base):
    """One move of an alias. Targets are kept as text too, so history outlives its targets."""

    __tablename__ = "alias_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alias_name: Mapped[str] = mapped_column(String(NAME_MAX), index=True)
    action: Mapped[str] = mapped_column(String(8))
    old_target: Mapped[str | None] = mapped_column(String(512), nullable=True)
    new_target: Mapped[str | None] = mapped_column(String(512), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        CheckConstraint(_in("action", ("tag", "move", "untag")), name="action"),
    )


# --------------------------------------------------------------------------- tensor-level storage (0003)
#
# A data file is recorded by its whole-file digest (a ``blobs`` row, which checkpoint files
# reference). Its bytes live either in the object of that digest (every file saved before
# revision 0003, and any file none of whose tensors were stored before), or, when
# ``file_extents`` rows exist for it, as a sequence of byte ranges of other objects: pieces
# stored earlier plus one new object holding only the bytes not stored yet. All three tables
# are keyed by the file's content, so re-imports of the same bytes share them.


class FilePiece(Base):
    """A tensor-aligned piece of a data file: one big tensor, or a run of tiny ones grouped
    (``files.pieces.GROUP_BYTES``). The unit of deduplication across saves, runs and imports."""

    __tablename__ = "file_pieces"

    file_digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest", ondelete="CASCADE"), primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    # NULL until needed: a piece that is one tensor is found by its crc32c (free, from the
    # bundle index) and hashed only to confirm a match (see files.pieces.DataPlan).
    digest: Mapped[str | None] = mapped_column(String(DIGEST_LEN), nullable=True, index=True)
    crc32c: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)


class FileTensor(Base):
    """One saved tensor of a data file, its crc32c and the blake3 digest of its bytes: diffs by
    value compare these, never the bytes."""

    __tablename__ = "file_tensors"

    file_digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(1024), primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)
    # blake3, or NULL until needed; crc32c from the index: a different crc proves a change.
    digest: Mapped[str | None] = mapped_column(String(DIGEST_LEN), nullable=True)
    crc32c: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class FileExtent(Base):
    """Bytes [offset, offset + size) of a file assembled from objects are the object's bytes
    from ``object_offset``. RESTRICT: an object is removed only once no file uses it."""

    __tablename__ = "file_extents"

    file_digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest", ondelete="CASCADE"), primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    object_digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest", ondelete="RESTRICT"), index=True)
    object_offset: Mapped[int] = mapped_column(BigInteger)


class VariableName(Base):
    """The name a person knows a saved variable by (Keras ``variable.path`` such as
    ``hidden/kernel``, a tf.Module attribute path, ``<var>/optimizer/m`` for an optimizer
    slot), recorded at save time while the live object is at hand."""

    __tablename__ = "variable_names"

    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    readable: Mapped[str] = mapped_column(String(1024))


__all__ = [
    "Base",
    "Run",
    "RunTag",
    "Metric",
    "MetricHistory",

    "MetricRollup",
    "Blob",
    "Checkpoint",
    "CheckpointFile",
    "Variable",
    "Export",
    "ExportFile",
    "Alias",
    "AliasEvent",
    "FilePiece",
    "FileTensor",
    "FileExtent",
    "VariableName",
    "RUN_STATUSES",
    "CHECKPOINT_FORMATS",
    "FILE_ROLES",
    "EXPORT_KINDS",
    "NAME_MAX",
]


class StoreSetting(Base):
    """One setting of the store, kept in its database so that every host agrees on it.

    ``root`` is the object area (``s3://bucket/prefix``) chosen when the store was created:
    later commands need only the database URL. ``object_lock`` is a row that the object-intent
    transactions update first, so that they run one after another (see ``metadata.intents``).
    Never a credential: endpoints and keys come from the AWS environment of each host.
    """

    __tablename__ = "store_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")


OBJECT_INTENTS = ("upload", "delete")


class PendingObject(Base):
    """An object that a process is about to upload (``upload``) or delete (``delete``) in a
    shared object area (S3), recorded before it starts and removed when it is done.

    A save's ``upload`` rows are removed in its commit transaction; ``gc`` never deletes an
    object named by one (unless it is older than the grace period: its owner died). A ``delete``
    row makes a save that needs the same object wait until the deletion is over.
    """

    __tablename__ = "pending_objects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(DIGEST_LEN), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (CheckConstraint("kind IN ('upload', 'delete')", name="kind"),)
