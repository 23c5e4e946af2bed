"""Every table of a store, declared once, as SQLAlchemy Core tables.

The Alembic revisions in ``migrations/`` are generated from these tables and then read by a
person; a test checks that ``upgrade head`` on an empty database yields exactly this schema.

Core ``Table`` objects rather than ORM classes: every read and write is an explicit statement
(``metadata/queries.py``, ``writes.py``) and no code ever loads a row as an object, so a mapping
would only cost time. Declaring these tables as ORM classes took ~0.1 s more per process (the
ORM's import and mapper configuration, paid by every store open); see the commit message.

Invariants the database enforces itself (so that no code path can forget them):

* steps are non-negative, names are unique, one checkpoint per (run, step);
* deleting a run cascades to its metrics, checkpoints, files, variables and exports;
* an alias pins its target: a checkpoint or export with an alias cannot be deleted
  (``ON DELETE RESTRICT``), which is what keeps retention and ``gc`` away from aliased checkpoints.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ..constants import NAME_MAX, RUN_STATUSES
from ..liveness import PROCESS_MAX

# Named constraints let later migrations drop or alter them on SQLite (batch mode) and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CHECKPOINT_FORMATS = ("tf1-saver", "tf2-checkpoint")  # the built-in ones; the registry may add more
#: What an alias's history records: set (``ckptstore alias`` of a new name), move, remove (0008).
ALIAS_ACTIONS = ("set", "move", "remove")
CHECKPOINT_STATES = ("committed", "kept")
FILE_ROLES = ("index", "data", "meta")
EXPORT_KINDS = ("tf1-graphdef", "tf2-function", "saved-model", "keras")
OBJECT_INTENTS = ("upload", "delete")

# Digests are blake3, hex encoded.
DIGEST_LEN = 64


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _fk(target: str, ondelete: str) -> ForeignKey:
    return ForeignKey(target, ondelete=ondelete)


metadata = MetaData(naming_convention=NAMING_CONVENTION)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(NAME_MAX), unique=True, nullable=False),
    Column("status", String(16), default="running", nullable=False),
    Column("params", JSON, default=dict, nullable=False),
    # Retention settings live with the run so that any process saving into it applies the same rule.
    Column("retention", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), default=utcnow, nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    # Liveness (revision 0007, see ckptstore/liveness.py): the owning process writes heartbeat_at
    # (the database's clock, seconds since the epoch); readers show a running run whose heartbeat
    # is older than heartbeat_timeout, or whose process is gone, as crashed. Never stored as such.
    Column("heartbeat_at", Float, nullable=True),
    Column("heartbeat_timeout", Float, nullable=True),
    Column("process", String(PROCESS_MAX), nullable=True),
    CheckConstraint(_in("status", RUN_STATUSES), name="status"),
    # Run search (issue 17): newest-first listing and status filters stay index scans.
    Index("ix_runs_created_at", "created_at"),
    Index("ix_runs_status", "status"),
)

# One key=value tag of a run; a table (not JSON) so runs can be filtered by tag in SQL.
run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", Integer, _fk("runs.id", "CASCADE"), primary_key=True),
    Column("key", String(NAME_MAX), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_run_tags_key_value", "key", "value"),
)

# One metric value at one step of one run. The primary key (run, step, key) is the "one run's
# steps" access path; the (step, run) index serves "every run at step S". On SQLite the table is
# WITHOUT ROWID, so the primary key *is* the storage order and there is no second copy of each row.
metrics = Table(
    "metrics",
    metadata,
    Column("run_id", Integer, _fk("runs.id", "CASCADE"), primary_key=True),
    Column("step", BigInteger, primary_key=True),
    Column("key", String(NAME_MAX), primary_key=True),
    # NULL stands for NaN: SQLite cannot store NaN and turns it into NULL anyway.
    Column("value", Float, nullable=True),
    Column("wall_time", Float, nullable=False),
    CheckConstraint("step >= 0", name="step_nonnegative"),
    Index("ix_metrics_step_run", "step", "run_id"),
    sqlite_with_rowid=False,
)

# A metric value that a later ``log`` of the same (run, step, key) replaced. Rows are written by
# a database trigger on ``metrics`` (migration 0002), so the batched driver-level upsert of
# ``Run.log`` stays one statement and pays nothing when no value is replaced. A resumed run that
# logs its steps again after restoring an older checkpoint keeps both: ``metrics`` holds the
# newest value, this table what it replaced and when (``replaced_at``: the wall time of the
# value that replaced it).
metric_history = Table(
    "metric_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, _fk("runs.id", "CASCADE"), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("key", String(NAME_MAX), nullable=False),
    Column("value", Float, nullable=True),
    Column("wall_time", Float, nullable=False),
    Column("replaced_at", Float, nullable=False),
    Index("ix_metric_history_run_step_key", "run_id", "step", "key"),
)

# Summary of one metric over one bucket of steps, kept up to date as values are written.
# Level 0 is the whole series (bucket 0): its rows are the run's metric names and point counts.
# Level L >= 1 cuts the steps into buckets of ``16**L`` steps (bucket = step >> 4L). Each row
# keeps the number of values, the last step written (NaN included), and the first, lowest,
# highest and last finite value with their steps, so a chart of a million steps is drawn from a
# few thousand rows without losing a peak (``metadata/rollups.py``). The primary key puts the
# level before the metric so that one run's names are one short range.
metric_rollups = Table(
    "metric_rollups",
    metadata,
    Column("run_id", Integer, _fk("runs.id", "CASCADE"), primary_key=True),
    Column("level", Integer, primary_key=True),
    Column("key", String(NAME_MAX), primary_key=True),
    Column("bucket", BigInteger, primary_key=True),
    Column("n", BigInteger, nullable=False),
    Column("end_step", BigInteger, nullable=False),
    Column("first_step", BigInteger, nullable=True),
    Column("first_value", Float, nullable=True),
    Column("min_step", BigInteger, nullable=True),
    Column("min_value", Float, nullable=True),
    Column("max_step", BigInteger, nullable=True),
    Column("max_value", Float, nullable=True),
    Column("last_step", BigInteger, nullable=True),
    Column("last_value", Float, nullable=True),
    sqlite_with_rowid=False,
)

# A file in the content-addressed file area, stored once whoever references it. ``stat_sig``
# records (inode, size, mtime, ctime) of the stored file right after it was hashed. Stored files
# are read-only, and any write, truncation, chmod or replacement changes ctime or the inode, so a
# matching signature proves the bytes are those that were hashed, without reading them again.
# ``verify(full=True)`` and ``ckptstore verify`` always re-hash.
blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(DIGEST_LEN), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("stat_sig", String(120), nullable=True),
    Column("created_at", DateTime(timezone=True), default=utcnow, nullable=False),
    CheckConstraint("size >= 0", name="size_nonnegative"),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, _fk("runs.id", "CASCADE"), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("format", String(32), nullable=False),
    # "kept": exempt from max_to_keep (keep_every_n_hours chose it).
    Column("state", String(16), default="committed", nullable=False),
    # The checkpoint prefix's basename as TensorFlow wrote it, e.g. "model.ckpt-1000".
    Column("prefix", String(255), nullable=False),
    Column("total_bytes", BigInteger, default=0, nullable=False),
    Column("created_at", DateTime(timezone=True), default=utcnow, nullable=False),
    UniqueConstraint("run_id", "step"),
    CheckConstraint("step >= 0", name="step_nonnegative"),
    # Any name the format registry knows (tf.formats.register_format), so not a fixed list (0008).
    CheckConstraint("format <> ''", name="format"),
    CheckConstraint(_in("state", CHECKPOINT_STATES), name="state"),
    Index("ix_checkpoints_step", "step"),
)

checkpoint_files = Table(
    "checkpoint_files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("checkpoint_id", Integer, _fk("checkpoints.id", "CASCADE"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("file_name", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    # RESTRICT: a blob is removed only after nothing references it (gc checks this in SQL).
    Column("digest", String(DIGEST_LEN), _fk("blobs.digest", "RESTRICT"), index=True, nullable=False),
    UniqueConstraint("checkpoint_id", "file_name"),
    CheckConstraint(_in("role", FILE_ROLES), name="role"),
)

variables = Table(
    "variables",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("checkpoint_id", Integer, _fk("checkpoints.id", "CASCADE"), nullable=False),
    Column("name", String(1024), nullable=False),
    Column("dtype", String(32), nullable=False),
    Column("shape", JSON, nullable=False),
    UniqueConstraint("checkpoint_id", "name"),
)

# A deployment artifact: a frozen GraphDef (.pb), a SavedModel (one deterministic tar) or a .keras file.
exports = Table(
    "exports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, _fk("runs.id", "CASCADE"), nullable=False),
    # Lineage survives retention: the export keeps working when its source checkpoint goes.
    Column("checkpoint_id", Integer, _fk("checkpoints.id", "SET NULL"), nullable=True),
    Column("step", BigInteger, nullable=True),
    Column("kind", String(32), nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("outputs", JSON, nullable=False),
    Column("node_count", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("digest", String(DIGEST_LEN), _fk("blobs.digest", "RESTRICT"), index=True, nullable=False),
    Column("tf_version", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), default=utcnow, nullable=False),
    CheckConstraint(_in("kind", EXPORT_KINDS), name="kind"),
    CheckConstraint("step IS NULL OR step >= 0", name="step_nonnegative"),
    Index("ix_exports_run_id", "run_id"),
)

# One file of an export that is a directory (a SavedModel): its path inside the directory and
# its content. The export's own ``digest`` is that of its manifest (every path, size and
# digest), so the directory as a whole is content-addressed too.
export_files = Table(
    "export_files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("export_id", Integer, _fk("exports.id", "CASCADE"), nullable=False),
    Column("path", String(1024), nullable=False),
    Column("size", BigInteger, nullable=False),
    # RESTRICT, as for checkpoint files: a blob goes only once nothing references it.
    Column("digest", String(DIGEST_LEN), _fk("blobs.digest", "RESTRICT"), index=True, nullable=False),
    UniqueConstraint("export_id", "path"),
)

# An alias: points at exactly one checkpoint or one export.
aliases = Table(
    "aliases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(NAME_MAX), unique=True, nullable=False),
    Column("checkpoint_id", Integer, _fk("checkpoints.id", "RESTRICT"), nullable=True, index=True),
    Column("export_id", Integer, _fk("exports.id", "RESTRICT"), nullable=True, index=True),
    Column("message", Text, nullable=True),
    Column("updated_at", DateTime(timezone=True), default=utcnow, nullable=False),
    CheckConstraint("(checkpoint_id IS NULL) <> (export_id IS NULL)", name="one_target"),
)

# One move of an alias. Targets are kept as text too, so history outlives its targets.
alias_events = Table(
    "alias_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("alias_name", String(NAME_MAX), index=True, nullable=False),
    Column("action", String(8), nullable=False),
    Column("old_target", String(512), nullable=True),
    Column("new_target", String(512), nullable=True),
    Column("message", Text, nullable=True),
    Column("at", DateTime(timezone=True), default=utcnow, nullable=False),
    CheckConstraint(_in("action", ALIAS_ACTIONS), name="action"),
)

# --------------------------------------------------------------------------- tensor-level storage (0003)
#
# A data file is recorded by its whole-file digest (a ``blobs`` row, which checkpoint files
# reference). Its bytes live either in the object of that digest (every file saved before
# revision 0003, and any file none of whose tensors were stored before), or, when
# ``file_extents`` rows exist for it, as a sequence of byte ranges of other objects: pieces
# stored earlier plus one new object holding only the bytes not stored yet. All three tables
# are keyed by the file's content, so re-imports of the same bytes share them.

# A tensor-aligned piece of a data file: one big tensor, or a run of tiny ones grouped
# (``files.pieces.GROUP_BYTES``). The unit of deduplication across saves, runs and imports.
file_pieces = Table(
    "file_pieces",
    metadata,
    Column("file_digest", String(DIGEST_LEN), _fk("blobs.digest", "CASCADE"), primary_key=True),
    Column("offset", BigInteger, primary_key=True),
    Column("size", BigInteger, nullable=False),
    # NULL until needed: a piece that is one tensor is found by its crc32c (free, from the
    # bundle index) and hashed only to confirm a match (see files.pieces.DataPlan).
    Column("digest", String(DIGEST_LEN), nullable=True, index=True),
    Column("crc32c", BigInteger, nullable=True, index=True),
)

# One saved tensor of a data file, its crc32c and the blake3 digest of its bytes: diffs by value
# compare these, never the bytes.
file_tensors = Table(
    "file_tensors",
    metadata,
    Column("file_digest", String(DIGEST_LEN), _fk("blobs.digest", "CASCADE"), primary_key=True),
    Column("name", String(1024), primary_key=True),
    Column("offset", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    # blake3, or NULL until needed; crc32c from the index: a different crc proves a change.
    Column("digest", String(DIGEST_LEN), nullable=True),
    Column("crc32c", BigInteger, nullable=True),
)

# Bytes [offset, offset + size) of a file assembled from objects are the object's bytes from
# ``object_offset``. RESTRICT: an object is removed only once no file uses it.
file_extents = Table(
    "file_extents",
    metadata,
    Column("file_digest", String(DIGEST_LEN), _fk("blobs.digest", "CASCADE"), primary_key=True),
    Column("offset", BigInteger, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("object_digest", String(DIGEST_LEN), _fk("blobs.digest", "RESTRICT"), index=True, nullable=False),
    Column("object_offset", BigInteger, nullable=False),
)

# The name a person knows a saved variable by (Keras ``variable.path`` such as ``hidden/kernel``,
# a tf.Module attribute path, ``<var>/optimizer/m`` for an optimizer slot), recorded at save
# time while the live object is at hand.
variable_names = Table(
    "variable_names",
    metadata,
    Column("checkpoint_id", Integer, _fk("checkpoints.id", "CASCADE"), primary_key=True),
    Column("key", String(1024), primary_key=True),
    Column("readable", String(1024), nullable=False),
)

# One setting of the store, kept in its database so that every host agrees on it. ``root`` is
# the object area (``s3://bucket/prefix``) chosen when the store was created: later commands
# need only the database URL. ``object_lock`` is a row that the object-intent transactions update
# first, so that they run one after another (see ``metadata.intents``). Never a credential:
# endpoints and keys come from the AWS environment of each host.
store_settings = Table(
    "store_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, default="", nullable=False),
)

# An object that a process is about to upload (``upload``) or delete (``delete``) in a shared
# object area (S3), recorded before it starts and removed when it is done. A save's ``upload``
# rows are removed in its commit transaction; ``gc`` never deletes an object named by one (unless
# it is older than the grace period: its owner died). A ``delete`` row makes a save that needs
# the same object wait until the deletion is over.
pending_objects = Table(
    "pending_objects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("digest", String(DIGEST_LEN), index=True, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), default=utcnow, nullable=False),
    CheckConstraint("kind IN ('upload', 'delete')", name="kind"),
)

__all__ = [
    "metadata",
    "runs",
    "run_tags",
    "metrics",
    "metric_history",
    "metric_rollups",
    "blobs",
    "checkpoints",
    "checkpoint_files",
    "variables",
    "exports",
    "export_files",
    "aliases",
    "alias_events",
    "file_pieces",
    "file_tensors",
    "file_extents",
    "variable_names",
    "store_settings",
    "pending_objects",
    "utcnow",
    "RUN_STATUSES",
    "CHECKPOINT_FORMATS",
    "CHECKPOINT_STATES",
    "FILE_ROLES",
    "EXPORT_KINDS",
    "OBJECT_INTENTS",
    "NAME_MAX",
]
