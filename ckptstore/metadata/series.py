"""One metric of one run as two numpy arrays (steps, values): the read path of charts.

``queries.steps`` builds a record per step, which is right for tables and ``--json`` but takes
seconds for a million steps; even SQLAlchemy's result rows cost several times the driver's own
fetch there. A chart needs two columns only, so this runs one fixed statement on the driver's
cursor, inside the caller's transaction (same snapshot), and fills the arrays from its rows.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import Connection

from ..constants import INT_MAX
from .engine import placeholder

#: Rows fetched per round trip: bounded memory for the row tuples of a long series.
CHUNK = 100_000


def metric_series(
    conn: Connection, rid: int, key: str, *, start: int | None = None, stop: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(steps as int64, values as float64; NaN where NaN was logged) of ``key``, steps in
    [``start``, ``stop``]."""
    if start is not None and start > INT_MAX:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    ph = placeholder(conn.dialect)
    sql = (f"SELECT step, value FROM metrics WHERE run_id = {ph} AND key = {ph} AND step >= {ph} "
           f"AND step <= {ph} ORDER BY step")
    cursor = conn.connection.cursor()
    steps: list[np.ndarray] = []
    values: list[np.ndarray] = []
    try:
        cursor.execute(sql, (rid, key, start or 0, INT_MAX if stop is None else min(stop, INT_MAX)))
        while rows := cursor.fetchmany(CHUNK):
            steps.append(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
            # dtype=float turns the NULLs (how NaN is stored) into NaN.
            values.append(np.array([r[1] for r in rows], dtype=np.float64))
    finally:
        cursor.close()
    if not steps:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    return np.concatenate(steps), np.concatenate(values)
