"""Child processes for the tests: fresh interpreters, the command line, and no orphans.

Every child started through this module has a deadline of its own: Python code gets
``signal.alarm(seconds)`` as its first line, so the kernel ends it even when the test that
started it was killed and can no longer clean up. A test that starts children with ``Popen``
takes the ``children`` fixture (a :class:`ChildProcesses`), which kills whatever is still running
when the test ends, passed or failed. ``subprocess.run(..., timeout=...)`` kills on its own.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

DEFAULT_DEADLINE = 300.0


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child: ours, TensorFlow quiet, plus ``extra``."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(extra or {})}


def with_deadline(code: str, seconds: float) -> str:
    """``code`` preceded by a line that makes the process kill itself (SIGALRM) after ``seconds``."""
    return f"import signal as _deadline; _deadline.alarm({max(1, math.ceil(seconds))})\n{code}"


def run_py(
    code: str, *args: str, env: dict[str, str] | None = None, timeout: float = DEFAULT_DEADLINE
) -> subprocess.CompletedProcess[str]:
    """Run Python code in a fresh interpreter and wait for it (real processes for crash tests and
    for checks of what a fresh import loads). The child dies by itself a little after ``timeout``
    if nobody is left to kill it."""
    return subprocess.run(
        [sys.executable, "-c", with_deadline(code, timeout + 5), *args],
        capture_output=True, text=True, env=child_env(env), timeout=timeout,
    )


class ChildProcesses:
    """The children one test starts. :meth:`kill_all` (run by the ``children`` fixture at
    teardown) kills those still running and reaps them all."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen] = []

    def python(
        self, code: str, *args: str, deadline: float = 120, env: dict[str, str] | None = None, **popen: Any
    ) -> subprocess.Popen:
        """Start ``python -c code args...`` with stdout and stderr piped (text); the child ends
        itself after ``deadline`` seconds."""
        popen.setdefault("stdout", subprocess.PIPE)
        popen.setdefault("stderr", subprocess.PIPE)
        popen.setdefault("text", True)
        return self.popen([sys.executable, "-c", with_deadline(code, deadline), *args], env=child_env(env), **popen)

    def popen(self, args: Sequence[str], **popen: Any) -> subprocess.Popen:
        """Start any command; it is killed at teardown if still running (give it a deadline of its own)."""
        proc = subprocess.Popen(list(args), **popen)
        self._procs.append(proc)
        return proc

    def kill_all(self) -> list[int]:
        """Kill every child still running; return the pids that had to be killed."""
        killed = []
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
                killed.append(proc.pid)
        for proc in self._procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
                pass
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        self._procs.clear()
        return killed


# --------------------------------------------------------------------------- the command line


def run_cli(
    *args: str,
    store: str | Path | None = None,
    root: str | Path | None = None,
    env: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``python -m ckptstore [--store STORE] ARGS`` as a user would type it (``prefix`` runs it
    through e.g. ``setpriv``); ``root`` sets ``CKPTSTORE_ROOT``."""
    full = child_env({"COLUMNS": "200", **(env or {})})
    full.pop("CKPTSTORE_URI", None)
    if root is not None:
        full["CKPTSTORE_ROOT"] = str(root)
    cmd = [*prefix, sys.executable, "-m", "ckptstore", *(["--store", str(store)] if store is not None else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=timeout)


def assert_one_line_error(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    """The command failed the way a user error should: exit status 1, one line on stderr, no
    traceback, naming each of ``needles``."""
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    err = out.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
