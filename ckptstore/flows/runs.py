"""Runs: starting (or resuming) one, and deleting one with everything it stored."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import retry
from ..metadata import queries as Q
from ..metadata import writes as W
from . import run_deletion
from .backend import Backend


def start_run(
    backend: Backend,
    name: str,
    params: dict[str, Any],
    tags: Mapping[str, str],
    retention: dict[str, Any] | None,
    *,
    resume: str = "allow",
    update_params: bool = False,
    process: str | None = None,
    heartbeat_timeout: float | None = None,
) -> tuple[int, int | None]:
    """Create the run or (as ``resume`` allows) set it running again; returns (id, the resumed
    run's last step, or None for a new run or a resumed one with no step yet). ``process`` owns
    it from now on (see ``flows/heartbeat.py``)."""

    def once() -> tuple[int, int | None]:
        with backend.db.write() as conn:
            rid, resumed = W.start_run(
                conn, name, params, tags, retention, resume=resume, update_params=update_params,
                process=process, heartbeat_timeout=heartbeat_timeout,
            )
            return rid, (Q.last_step(conn, rid) if resumed else None)

    # PostgreSQL: another process created the same run between our SELECT and INSERT; the next
    # transaction finds it and resumes it (or refuses, as ``resume`` says).
    return retry.call(once, when=retry.is_race, what=f"start run {name!r}")


def rewind(backend: Backend, run_id: int, step: int) -> int:
    """Move the run's metric values after ``step`` into its history (see ``writes.rewind_metrics``)."""
    with backend.db.write() as conn:
        return W.rewind_metrics(conn, run_id, step)


def delete_run(backend: Backend, name: str) -> int:
    """Delete a run with its metrics, checkpoints and exports; returns checkpoints deleted.

    Refused while an alias points at one of its checkpoints or exports (see
    :func:`.run_deletion.delete_run`, which the CLI's quick path runs too).
    """
    return run_deletion.delete_run(backend.db.sql_write, backend.db.sql_read, backend.area, name)
