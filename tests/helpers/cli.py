"""Running the command line as a user does: ``python -m ckptstore ...`` in a real subprocess.

``ok`` / ``as_json`` expect success, ``fails`` a user error (exit 1, one ``error:`` line, no
traceback), ``unexpected`` an unexpected failure (exit 1, one line naming the exception's type
and pointing at ``CKPTSTORE_DEBUG=1``), ``bad_usage`` a usage error (exit 2), ``on_terminal``
runs with stdout and stderr on a pseudo-terminal. The snippets below run the CLI with ``code=``
in place of ``-m ckptstore``, to look inside the process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

#: The hint that ends the line of an unexpected failure.
DEBUG_HINT = "(CKPTSTORE_DEBUG=1 shows the traceback)"

#: Runs the CLI, then reports on stderr ("IMPORTED a b ...") which of the heavy modules it imported.
IMPORTS_CHECK = """
import runpy, sys
sys.argv = ["ckptstore", *sys.argv[1:]]
try:
    runpy.run_module("ckptstore", run_name="__main__", alter_sys=True)
finally:
    heavy = ("tensorflow", "keras", "matplotlib", "sqlalchemy", "pydantic", "rich")
    sys.stderr.write("\\nIMPORTED " + " ".join(m for m in heavy if m in sys.modules) + "\\n")
"""

#: Runs the CLI with the library method ``Store.{method}`` replaced by one that raises ``{exc}``
#: (Python source, to fill in with ``.format``): an unexpected failure, simulated.
RAISES = """
import runpy, sys
import sqlalchemy.exc
import ckptstore
def boom(self, *args, **kwargs):
    raise {exc}
ckptstore.Store.{method} = boom
sys.argv = ["ckptstore", *sys.argv[1:]]
runpy.run_module("ckptstore", run_name="__main__", alter_sys=True)
"""

#: Runs the CLI as if matplotlib were not installed.
NO_MATPLOTLIB = """
import runpy, sys
sys.modules["matplotlib"] = None  # as if it were not installed
sys.argv = ["ckptstore", *sys.argv[1:]]
runpy.run_module("ckptstore", run_name="__main__", alter_sys=True)
"""


def imported(stderr: str) -> set[str]:
    """The heavy modules an ``IMPORTS_CHECK`` run reported."""
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("IMPORTED"), stderr
    return set(last.split()[1:])


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # The store comes from --store, never from the environment the tests happen to run in; nor
    # does the table width (pytest-xdist's workers set COLUMNS): a test that wants one sets it.
    dropped = ("CKPTSTORE_URI", "CKPTSTORE_ROOT", "CKPTSTORE_DEBUG", "COLUMNS", "LINES")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.update(extra or {})
    return env


def cli(*args: str, store: str | Path | None = None, env: dict[str, str] | None = None,
        cwd: str | Path | None = None, code: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ckptstore [--store STORE] ARGS`` (or ``code`` with those arguments)."""
    head = [sys.executable, "-m", "ckptstore"] if code is None else [sys.executable, "-c", code]
    opts = ["--store", str(store)] if store is not None else []
    return subprocess.run(
        [*head, *opts, *args], capture_output=True, text=True, env=_env(env), cwd=cwd,
        stdin=subprocess.DEVNULL, timeout=300,
    )


def ok(*args: str, **kw: Any) -> str:
    """Run a command that must succeed; its stdout."""
    r = cli(*args, **kw)
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r.stdout


def as_json(*args: str, **kw: Any) -> Any:
    """Run a command with ``--json``; its output, parsed."""
    return json.loads(ok(*args, "--json", **kw))


def _one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 1, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def fails(*args: str, **kw: Any) -> str:
    """Run a command that must fail as a user error (a CkptstoreError, or a refusal of the CLI's
    own): exit 1, one 'error:' line, no traceback; that line."""
    line = _one_error_line(cli(*args, **kw))
    assert DEBUG_HINT not in line, f"an unexpected failure, not a user error: {line}"
    return line


def unexpected(*args: str, **kw: Any) -> str:
    """Run a command that must end in an unexpected failure: exit 1, one line naming the
    exception's type and ending with the CKPTSTORE_DEBUG hint; that line."""
    line = _one_error_line(cli(*args, **kw))
    assert line.endswith(DEBUG_HINT), line
    return line


def bad_usage(*args: str, **kw: Any) -> str:
    """Run a command that must be refused as bad usage: exit 2, no traceback; the message, flattened."""
    r = cli(*args, **kw)
    assert r.returncode == 2, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert "Traceback" not in r.stderr
    return " ".join(r.stderr.split())


def on_terminal(*args: str, store: str | Path) -> tuple[int, str]:
    """Run ``python -m ckptstore`` with stdout and stderr on a pseudo-terminal; (status, output)."""
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ckptstore", "--store", str(store), *args], stdin=subprocess.DEVNULL,
        stdout=slave, stderr=slave, env=_env({"TERM": "xterm-256color", "COLUMNS": "120"}),
    )
    os.close(slave)
    out = b""
    try:
        while select.select([master], [], [], 300)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
    return proc.wait(timeout=300), out.decode(errors="replace")
