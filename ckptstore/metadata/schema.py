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
from typing import Any, Optional

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
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

CHECKPOINT_FORMATS = ("tf1-saver", "tf2-checkpoint")
CHECKPOINT_STATES = ("committed", "kept")
FILE_ROLES = ("index", "data", "meta")
EXPORT_KINDS = ("tf1-graphdef", "tf2-function")

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
    retention: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True), nullable=True)

    tags: Mapped[list["RunTag"]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True, lazy="raise"
    )
    checkpoints: Mapped[list["Checkpoint"]] = relationship(
        back_populates="run", passive_deletes=True, lazy="raise"
    )

    __table_args__ = (CheckConstraint(_in("status", RUN_STATUSES), name="status"),)


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
    value: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    wall_time: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        CheckConstraint("step >= 0", name="step_nonnegative"),
        Index("ix_metrics_step_run", "step", "run_id"),
        {"sqlite_with_rowid": False},
    )


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
    first_step: Mapped[Optional[int]] = mapped_column(BigInteger, nullable=True)
    first_value: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    min_step: Mapped[Optional[int]] = mapped_column(BigInteger, nullable=True)
    min_value: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    max_step: Mapped[Optional[int]] = mapped_column(BigInteger, nullable=True)
    max_value: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    last_step: Mapped[Optional[int]] = mapped_column(BigInteger, nullable=True)
    last_value: Mapped[Optional[float]] = mapped_column(Float, nullable=True)

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
    stat_sig: Mapped[Optional[str]] = mapped_column(String(120), nullable=True)
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
    files: Mapped[list["CheckpointFile"]] = relationship(
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
    """A frozen, self-contained GraphDef (.pb) for deployment."""

    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    # Lineage survives retention: the export keeps working when its source checkpoint goes.
    checkpoint_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("checkpoints.id", ondelete="SET NULL"), nullable=True
    )
    step: Mapped[Optional[int]] = mapped_column(BigInteger, nullable=True)
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


class Alias(Base):
    """A named version: points at exactly one checkpoint or one export."""

    __tablename__ = "aliases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX), unique=True)
    checkpoint_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("checkpoints.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    export_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("exports.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    message: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
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
    old_target: Mapped[Optional[str]] = mapped_column(String(512), nullable=True)
    new_target: Mapped[Optional[str]] = mapped_column(String(512), nullable=True)
    message: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        CheckConstraint(_in("action", ("tag", "move", "untag")), name="action"),
    )


__all__ = [
    "Base",
    "Run",
    "RunTag",
    "Metric",
    "MetricRollup",
    "Blob",
    "Checkpoint",
    "CheckpointFile",
    "Variable",
    "Export",
    "Alias",
    "AliasEvent",
    "RUN_STATUSES",
    "CHECKPOINT_FORMATS",
    "FILE_ROLES",
    "EXPORT_KINDS",
    "NAME_MAX",
]
