"""Whether a process of this host is still running.

Crash safety leans on it where no lock can tell: an upload intent or a cache reservation names
the process that made it, and one whose process is gone may be dropped.
"""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True if a process with this id exists on this host (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists; we may not signal it
    return True
