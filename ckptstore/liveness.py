"""Whether a process, or the run it owns, is still alive.

Crash safety leans on it where no lock can tell: an upload intent, a gc delete claim or a cache
reservation names the process that made it, and one whose process is gone may be dropped. A pid
alone may have been reused since: :func:`alive_since` also compares the process's start time.

**Runs.** A run started with ``start_run`` belongs to one process. That process writes ``runs.heartbeat_at``
every ``$CKPTSTORE_HEARTBEAT`` seconds (default 10; ``flows/heartbeat.py`` does it in a daemon
thread) and records, once, how long readers should wait before giving up on it
(``runs.heartbeat_timeout``, ``$CKPTSTORE_HEARTBEAT_TIMEOUT``, default three intervals) and who it
is (``runs.process``: host, boot, pid namespace, pid, process start time).

**Crashed is derived when read, never written.** A reader shows a run as ``crashed`` when its
stored status is ``running`` and either its heartbeat is older than its timeout (any host: the
process was killed, the host lost power or left the network) or its process is known to be gone
(a process of the reader's own host, boot and pid namespace that no longer exists, or a pid now
held by another process): that needs no writer, so a read-only reader, the CLI's ``sqlite3`` quick
path and the UI all agree, and a process that was only paused (SIGSTOP, a suspended laptop) is
``running`` again at its next heartbeat. Times are the database's clock (``now_sql``), written and
compared on the same server, so hosts with different clocks agree on PostgreSQL. A ``running``
run without a heartbeat (started before revision 0007, or set ``running`` by hand) is shown as
stored: nothing says it died.

Standard library only: the CLI's quick path imports this module.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from .errors import InvalidOptionError

#: What readers show for a ``running`` run whose process is gone (never stored).
CRASHED = "crashed"

DEFAULT_INTERVAL = 10.0

#: Longest ``runs.process`` value (host name up to 64, boot id 36, namespace, two numbers).
PROCESS_MAX = 200


def _seconds(var: str, default: float) -> float:
    raw = os.environ.get(var)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise InvalidOptionError(f"{var} must be a number of seconds > 0, got {raw!r}")
    return value


def interval() -> float:
    """Seconds between two heartbeats of a live run (``$CKPTSTORE_HEARTBEAT``, default 10)."""
    return _seconds("CKPTSTORE_HEARTBEAT", DEFAULT_INTERVAL)


def timeout() -> float:
    """Seconds without a heartbeat after which readers show a run as crashed
    (``$CKPTSTORE_HEARTBEAT_TIMEOUT``, default three heartbeat intervals)."""
    every = interval()
    value = _seconds("CKPTSTORE_HEARTBEAT_TIMEOUT", 3 * every)
    if value <= every:
        raise InvalidOptionError(
            f"CKPTSTORE_HEARTBEAT_TIMEOUT ({value:g} s) must be longer than the heartbeat interval ({every:g} s)"
        )
    return value


def now_sql(dialect: str) -> str:
    """SQL for the database server's time in seconds since the epoch (a float)."""
    if dialect == "postgresql":
        return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
    return "((julianday('now') - 2440587.5) * 86400.0)"


def status_sql(dialect: str, gone: Sequence[int]) -> str:
    """The status a reader shows, as an SQL expression over the ``runs`` columns: ``crashed``
    for a running run whose heartbeat timed out or whose id is in ``gone`` (see :func:`gone_here`)."""
    dead = f"heartbeat_at + heartbeat_timeout < {now_sql(dialect)}"
    if gone:
        dead += f" OR id IN ({', '.join(str(int(i)) for i in gone)})"
    return f"CASE WHEN status = 'running' AND ({dead}) THEN '{CRASHED}' ELSE status END"


#: The running runs that record a process: what :func:`gone_here` is asked about.
RUNNING_PROCESSES_SQL = "SELECT id, process FROM runs WHERE status = 'running' AND process IS NOT NULL"


# --------------------------------------------------------------------------- processes


def pid_alive(pid: int) -> bool:
    """True if a process with this id exists on this host (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists; we may not signal it
    return True


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


@lru_cache(maxsize=1)
def _host() -> tuple[str, str, str]:
    """(host name, boot id, pid namespace) of this machine, as tokens hold them."""
    boot = (_read("/proc/sys/kernel/random/boot_id") or "").strip()
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = ""
    host = os.uname().nodename
    # As written into a token: no spaces, '-' for a part this system does not have.
    return host.replace(" ", "_") or "-", boot.replace(" ", "_") or "-", pidns.replace(" ", "_") or "-"


def _start_time(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of ``pid`` from /proc, None if it has none."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    return (fields[0], fields[19]) if len(fields) > 19 else None


def process_token() -> str:
    """Who this process is, for ``runs.process``: ``host boot pidns pid start``."""
    host, boot, pidns = _host()
    pid = os.getpid()
    found = _start_time(pid)
    token = " ".join((host, boot, pidns, str(pid), found[1] if found else "-"))
    return token[:PROCESS_MAX]


def gone_here(token: str) -> bool:
    """Whether the process ``token`` names is known to be gone: it ran on this host, in this pid
    namespace, and either the host has rebooted since or the pid is free, a zombie, or another
    process's. A process elsewhere (another host, another container's pids) is never judged here:
    its heartbeat decides."""
    parts = token.split(" ")
    if len(parts) != 5:
        return False
    host, boot, pidns, pid_s, start = parts
    my_host, my_boot, my_pidns = _host()
    if host != my_host or pidns != my_pidns or not pid_s.isdigit():
        return False
    if boot != "-" and my_boot != "-" and boot != my_boot:
        return True  # the host restarted: nothing of that boot survives
    pid = int(pid_s)
    if os.path.isdir("/proc/self"):
        found = _start_time(pid)
        if found is None:
            return True
        state, started = found
        return state in ("Z", "X") or (start != "-" and started != start)
    return not pid_alive(pid)


def gone_ids(rows: Iterable[Sequence[Any]]) -> list[int]:
    """The ids among ``(id, process)`` rows (``RUNNING_PROCESSES_SQL``) whose process is gone."""
    return [int(rid) for rid, token in rows if token and gone_here(token)]


def started_at(pid: int) -> float | None:
    """When process ``pid`` of this host started (seconds since the epoch), or None if it does
    not exist or this system does not say (no ``/proc``)."""
    found = _start_time(pid)
    stat = _read("/proc/stat")
    if found is None or stat is None:
        return None
    try:
        btime = next(int(line.split()[1]) for line in stat.splitlines() if line.startswith("btime "))
        return btime + int(found[1]) / os.sysconf("SC_CLK_TCK")
    except (ValueError, IndexError, StopIteration, OSError):
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
