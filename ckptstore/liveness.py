"""Whether a process of this host is still running.

Crash safety leans on it where no lock can tell: an upload intent, a gc delete claim or a cache
reservation names the process that made it, and one whose process is gone may be dropped. A pid
alone may have been reused since: :func:`alive_since` also compares the process's start time.
"""

from __future__ import annotations

import os
from typing import Optional


def pid_alive(pid: int) -> bool:
    """True if a process with this id exists on this host (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists; we may not signal it
    return True


def started_at(pid: int) -> Optional[float]:
    """When process ``pid`` of this host started (seconds since the epoch), or None if it does
    not exist or this system does not say (no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open("/proc/stat", "rb") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        # The command name (field 2) may hold spaces and parentheses: count from its end.
        ticks = int(stat[stat.rindex(b")") + 2 :].split()[19])
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def alive_since(pid: int, since: float) -> bool:
    """True if the process that was ``pid`` at time ``since`` (epoch seconds) may still run:
    the pid exists and (where the system tells) started no later than ``since``. A pid reused
    by a process started afterwards is not the one that recorded something at ``since``."""
    if not pid_alive(pid):
        return False
    start = started_at(pid)
    # /proc's start time has clock-tick (10 ms) resolution and btime whole seconds: allow 2 s.
    return start is None or start <= since + 2.0
