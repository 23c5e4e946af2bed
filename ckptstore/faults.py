"""Crash-test seam: ``CKPTSTORE_FAULT=<point>`` makes the process SIGKILL itself at that point.

The crash tests use it to stop a save at exact moments instead of hoping a random kill lands
there: ``staged`` (after staging), ``moving`` / ``moved`` (during and after the move into the
object area), ``committed`` (after the commit), ``materialized`` (a restore's copy written).
Reading one environment variable costs nanoseconds; nothing happens unless it is set.
"""

from __future__ import annotations

import os
import signal


def fault(point: str) -> None:
    if os.environ.get("CKPTSTORE_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)
