"""The ``ckptstore`` command line: a thin Typer shell over the library.

Every command resolves its arguments, calls one library function and formats the result: plain
aligned tables for people (``output.table``: the same for any number of rows, never folding a
name), ``--json`` (the records' fields, via :func:`ckptstore.to_json`) for scripts.

The error edge is ``app.main``, and nothing else catches errors:

* a :class:`~ckptstore.errors.CkptstoreError` (or a subclass), which the library raises for
  anything the user can fix, is printed as one line ``error: <message>`` on stderr; exit 1;
* bad usage (an unknown option, a missing argument, a value out of range: steps are 0 to
  2**63-1, what the databases' 64-bit integers hold) is Click's: one line ending with the help
  to read; exit 2;
* anything else (a ``ValueError`` or ``OSError`` the library did not turn into a
  ``CkptstoreError``, a database connection lost mid-command, a bug) is an unexpected failure:
  one line naming its type, ``error: ValueError: <first line of the message>
  (CKPTSTORE_DEBUG=1 shows the traceback)``; exit 1.

``CKPTSTORE_DEBUG=1`` in the environment lets every error but a usage error end in its
traceback instead, for a bug report.

Layout: ``app.py`` holds the Typer app, the global options, how commands read the store and
the error edge; ``quick.py`` the read commands' plain command lines; ``output.py`` the printing (tables, JSON, sizes, dates, progress bars);
``views.py`` what the read commands print; ``complete.py`` shell completion; one module per
command group registers its commands on the app (imported below, in their order in --help).
Command modules import ``app``, ``output`` and ``views``, never each other; ``app`` imports no
command module.

Start-up time is part of the interface (every metadata command on 1,000 runs answers in under
0.3 s). Every option is defined once, on the Typer commands; a read command's plain command
line is parsed from the Click objects Typer builds from them (``quick.py``: Typer's own parse
converts every value through pydantic, ~0.07 s), any other by Typer. The read commands read a
SQLite store through ``sqlite3`` (``app.read``), since SQLAlchemy's import alone costs ~0.18 s.
SQLAlchemy comes with the store, rich only with a progress bar on a terminal, TensorFlow only
with the commands that need it (``import``, ``demo``, ``restore``), matplotlib only with ``plot``.
"""

from . import quick, tfnoise
from .app import app
from .app import main as typer_main

# Each command module registers its commands on the app when imported, in this order in --help.
# isort: off
from . import metrics, checkpoints, aliases, exports, maintenance, demo, runs, db, space, root, ui, tensorboard  # noqa: F401
# isort: on


def main() -> None:
    """Entry point of the ``ckptstore`` command (and ``python -m ckptstore``)."""
    # TensorFlow's C++ start-up chatter would bury the one line a command prints; some lines
    # come whatever TF_CPP_MIN_LOG_LEVEL says (absl's banner, oneDNN's notice): filtered.
    tfnoise.install()
    typer_main(quick.run)


__all__ = ["app", "main"]
