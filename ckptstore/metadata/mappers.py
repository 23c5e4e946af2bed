"""Rows to records: one mapper per record type, used by every query that returns it.

Rows come from SQLAlchemy on SQLite and PostgreSQL and from the standard library's ``sqlite3``
on the CLI's quick path, so the mappers accept both shapes of a value: JSON as text or already
decoded, datetimes as text or as objects. No SQLAlchemy here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from ..records import AliasEventInfo, AliasInfo, CheckpointInfo, ExportInfo, FileInfo, RunInfo


def aware(dt: Any) -> Any:
    """A datetime in UTC with its zone: SQLite drops the zone, and we only ever store UTC."""
    if isinstance(dt, str):
        # SQLAlchemy's SQLite DateTime format, "2026-11-24 11:11:21.402960".
        dt = datetime.fromisoformat(dt)
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt


def json_value(value: Any) -> Any:
    """A JSON column's value: decoded by the driver already, or text (sqlite3)."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def metric_value(v: float | None) -> float:
    """NaN is stored as NULL (neither database keeps NaN faithfully in every driver)."""
    return math.nan if v is None else float(v)


def run_info(row: Sequence[Any], tags: Mapping[str, str]) -> RunInfo:
    """``row`` as selected by ``runs_query.RUN_COLUMNS``."""
    rid, name, status, params, retention, created, ended, last_metric, last_ckpt, n_ckpt = row
    last = max((s for s in (last_metric, last_ckpt) if s is not None), default=None)
    return RunInfo(
        id=rid, name=name, status=status, params=json_value(params) or {}, tags=dict(tags),
        created_at=aware(created), ended_at=aware(ended), last_step=last, checkpoints=n_ckpt,
        retention=json_value(retention),
    )


def file_info(row: Sequence[Any]) -> FileInfo:
    """(role, file_name, size, digest)."""
    role, file_name, size, digest = row
    return FileInfo(role, file_name, size, digest)


def checkpoint_info(row: Any, run: str, files: Sequence[FileInfo], aliases: Sequence[str]) -> CheckpointInfo:
    """``row``: the columns of ``checkpoints``."""
    return CheckpointInfo(
        id=row.id, run=run, step=row.step, format=row.format, state=row.state, prefix=row.prefix,
        total_bytes=row.total_bytes, created_at=aware(row.created_at), aliases=list(aliases),
        files=list(files),
    )


def export_info(row: Any, run: str, aliases: Sequence[str]) -> ExportInfo:
    """``row``: the columns of ``exports``."""
    return ExportInfo(
        id=row.id, run=run, step=row.step, checkpoint_id=row.checkpoint_id, kind=row.kind,
        inputs=json_value(row.inputs), outputs=json_value(row.outputs), node_count=row.node_count,
        size=row.size, digest=row.digest, tf_version=row.tf_version,
        created_at=aware(row.created_at), aliases=list(aliases),
    )


def alias_event_info(row: Any) -> AliasEventInfo:
    return AliasEventInfo(
        action=row.action, old_target=row.old_target, new_target=row.new_target,
        message=row.message, at=aware(row.at),
    )


def checkpoint_ref(run: str, step: int) -> str:
    """The text a checkpoint is referred to by (``run@step``), as aliases' history keeps it."""
    return f"{run}@{step}"


def export_ref(export_id: int) -> str:
    return f"export:{export_id}"


def alias_info(row: Any, history: Sequence[AliasEventInfo]) -> AliasInfo:
    """``row``: name, checkpoint_id, export_id, message, updated_at, run, step."""
    if row.checkpoint_id is not None:
        target, kind = checkpoint_ref(row.run, row.step), "checkpoint"
    else:
        target, kind = export_ref(row.export_id), "export"
    return AliasInfo(
        name=row.name, target=target, kind=kind, message=row.message,
        updated_at=aware(row.updated_at), history=list(history),
    )
