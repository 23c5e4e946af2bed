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

Layout: ``app.py`` holds the Typer app, the global options and the error edge; ``output.py``
the printing (tables, JSON, sizes, dates, progress bars); ``views.py`` what the read commands
print; ``fast.py`` the quick path; ``complete.py`` shell completion; one module per command
group registers its commands on the app (listed in :func:`load_commands`). Command modules
import ``app``, ``output`` and ``views``, never each other; ``app`` imports no command module.

Start-up time is part of the interface (every metadata command on 1,000 runs answers in under
0.3 s): :func:`main` first tries the quick path (``fast.py``: standard library only, no Typer,
no SQLAlchemy), and only a command line it does not take imports Typer and the commands.
SQLAlchemy comes with the store, rich only with a progress bar on a terminal, TensorFlow only
with the commands that need it (``import``, ``demo``, ``restore``), matplotlib only with ``plot``.
"""

import sys
import types
from typing import Any


def load_commands() -> None:
    """Import the command modules: each registers its commands on the app, in this order in --help."""
    from . import metrics, checkpoints, aliases, exports, maintenance, demo, runs, db, space, root, ui, tensorboard  # noqa: F401,I001


def main() -> None:
    """Entry point of the ``ckptstore`` command (and ``python -m ckptstore``): the quick path,
    else Typer (``app.main``, the error edge)."""
    import os
    import sys

    # TensorFlow's C++ start-up chatter would bury the one line a command prints.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from . import tfnoise

    # Some lines come whatever that level says (absl's banner, oneDNN's notice): filtered.
    tfnoise.install()
    from .fast import run_quick

    try:
        status = run_quick(sys.argv[1:])
    except (EOFError, KeyboardInterrupt):
        from .output import error_line

        # What the normal path does with them (Click's Abort), so that both paths end alike.
        sys.stderr.write("\n")
        error_line("aborted")
        sys.exit(1)
    if status is not None:
        sys.exit(status)
    load_commands()
    from .app import main as typer_main

    typer_main()


class _Package(types.ModuleType):
    """This package, whose ``app`` attribute is the Typer app with every command registered.

    Importing the submodule ``app.py`` makes the import system set ``ckptstore.cli.app`` to
    that module; the package used to import the Typer object over it at load time, which would
    import Typer on the quick path. A property answers ``from ckptstore.cli import app``
    instead, loading the commands on first use, whatever was imported before.
    """

    @property
    def app(self) -> Any:
        load_commands()
        return sys.modules[__name__ + ".app"].app

    @app.setter
    def app(self, module: Any) -> None:
        pass  # the import system recording the submodule; the property answers for it


sys.modules[__name__].__class__ = _Package


__all__ = ["app", "main"]
