"""Crash-test seam: ``CKPTSTORE_FAULT=<point>`` makes the process SIGKILL itself at that point.

The crash tests use it to stop a save at exact moments (after staging, during and after the
move into the object area, after the commit) instead of hoping a random kill lands there.
Reading one environment variable costs nanoseconds; nothing happens unless it is set.
"""

from __future__ import annotations

import os
import signal

POINTS = ("staged", "moving", "moved", "committed", "materialized")


def fault(point: str) -> None:
    if os.environ.get("CKPTSTORE_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)
